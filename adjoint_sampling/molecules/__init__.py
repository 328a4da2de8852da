"""Molecule handling: SMILES parsing and validation, graphs, torsions, structure checks."""

from adjoint_sampling.molecules.parsing import SUPPORTED_ELEMENTS, ParsedMolecule, parse_smiles

__all__ = ["SUPPORTED_ELEMENTS", "ParsedMolecule", "parse_smiles"]
