"""Molecule handling: SMILES parsing and validation, graphs, torsions, structure checks."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "ATOM_FEATURE_DIM": ".graph",
        "BOND_FEATURE_DIM": ".graph",
        "ELEMENTS": ".graph",
        "MolecularGraph": ".graph",
        "ParsedMolecule": ".parsing",
        "SUPPORTED_ELEMENTS": ".parsing",
        "StructureCheck": ".checks",
        "TorsionTopology": ".torsions",
        "atomic_system": ".graph",
        "check_conformers": ".checks",
        "check_structure": ".checks",
        "dihedral_angles": ".torsions",
        "featurize": ".graph",
        "find_torsions": ".torsions",
        "local_structure": ".embedding",
        "parse_mol": ".parsing",
        "parse_smiles": ".parsing",
        "require_elements": ".parsing",
        "reflect_positions": ".checks",
        "set_torsions": ".torsions",
        "torsion_gradient": ".torsions",
    },
)
