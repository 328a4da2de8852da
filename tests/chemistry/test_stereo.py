"""Enumeration of the stereoisomers left open by a SMILES."""

from __future__ import annotations

from rdkit import Chem

from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.stereo import unspecified_stereoisomers


def _centres(mol: Chem.Mol) -> tuple:
    return tuple(Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False))


def test_two_open_centres_give_four_isomers_in_the_same_atom_order() -> None:
    parsed = parse_smiles("CC(O)C(N)CC")
    isomers = unspecified_stereoisomers(parsed.mol)
    assert len(isomers) == 4
    assert len({_centres(m) for m in isomers}) == 4
    for m in isomers:
        assert [a.GetAtomicNum() for a in m.GetAtoms()] == [a.GetAtomicNum() for a in parsed.mol.GetAtoms()]
        assert all(label in ("R", "S") for _, label in _centres(m))


def test_specified_stereo_is_kept_and_fully_specified_molecule_is_alone() -> None:
    half = unspecified_stereoisomers(parse_smiles("C[C@H](O)C(N)CC").mol)
    assert len(half) == 2
    assert {dict(_centres(m))[1] for m in half} == {"S"}
    assert len(unspecified_stereoisomers(parse_smiles("C[C@H](O)[C@@H](N)CC").mol)) == 1
    assert len(unspecified_stereoisomers(parse_smiles("CCCC").mol)) == 1


def test_open_double_bond_gives_both_geometries() -> None:
    isomers = unspecified_stereoisomers(parse_smiles("CC=CC").mol)
    assert {Chem.MolToSmiles(Chem.RemoveHs(m)) for m in isomers} == {"C/C=C/C", "C/C=C\\C"}
