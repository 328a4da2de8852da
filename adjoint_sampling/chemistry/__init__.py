"""Molecule handling: SMILES parsing and validation, graphs, torsions, structure checks."""

from adjoint_sampling.chemistry.checks import StructureCheck, check_conformers, check_structure, reflect_positions
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import (
    ATOM_FEATURE_DIM,
    BOND_FEATURE_DIM,
    ELEMENTS,
    MolecularGraph,
    atomic_system,
    featurize,
)
from adjoint_sampling.chemistry.parsing import SUPPORTED_ELEMENTS, ParsedMolecule, parse_smiles
from adjoint_sampling.chemistry.torsions import (
    TorsionTopology,
    dihedral_angles,
    find_torsions,
    set_torsions,
    torsion_gradient,
)

__all__ = [
    "ATOM_FEATURE_DIM",
    "BOND_FEATURE_DIM",
    "ELEMENTS",
    "SUPPORTED_ELEMENTS",
    "MolecularGraph",
    "ParsedMolecule",
    "StructureCheck",
    "TorsionTopology",
    "atomic_system",
    "check_conformers",
    "check_structure",
    "dihedral_angles",
    "featurize",
    "find_torsions",
    "local_structure",
    "parse_smiles",
    "reflect_positions",
    "set_torsions",
    "torsion_gradient",
]
