"""Structure checks from 3D: connectivity, tetrahedral chirality, E/Z, mirror images."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.chemistry.checks import check_conformers, check_structure, reflect_positions
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.paths import SHARED_DATA_DIR


def _embed(smiles: str, seed: int = 0) -> torch.Tensor:
    """ETKDG coordinates of ``smiles`` (atom order of parse_smiles(smiles))."""
    return local_structure(parse_smiles(smiles), seed)


@pytest.mark.parametrize(
    "smiles",
    [
        "C[C@H](N)C(=O)O",
        "C[C@@H](N)C(=O)O",
        "C[S@@](=O)c1ccccc1",  # three-coordinate centre (lone pair)
        "C[N@@+](CC)(Cl)O",
        "F/C=C(/Cl)Br",
        "F/C=C(\\Cl)Br",
        "N[C@@H](C)[C@H](O)C",
        "C[C@@H]1C[C@H]2CC[C@@H]1C2",
        "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # unspecified centre: never compared
    ],
)
def test_rdkit_conformers_pass(smiles):
    parsed = parse_smiles(smiles)
    for seed in (0, 1):
        result = check_structure(parsed.mol, _embed(smiles, seed))
        assert result.ok and not result.mirrored and result.reason is None


def test_full_mirror_image_is_recognised_and_reflecting_repairs_it():
    smiles = "N[C@@H](C)[C@H](O)C"
    parsed = parse_smiles(smiles)
    mirrored = reflect_positions(_embed(smiles))
    result = check_structure(parsed.mol, mirrored)
    assert (result.ok, result.mirrored, result.reason) == (False, True, "stereo_changed")
    assert check_structure(parsed.mol, reflect_positions(mirrored)).ok


def test_one_inverted_centre_is_not_a_mirror_image():
    parsed = parse_smiles("N[C@@H](C)[C@H](O)C")
    diastereomer = _embed("N[C@@H](C)[C@@H](O)C")  # same atom order, second centre inverted
    result = check_structure(parsed.mol, diastereomer)
    assert (result.ok, result.mirrored, result.reason) == (False, False, "stereo_changed")
    # ...and neither is its reflection (then the other centre is the inverted one).
    assert not check_structure(parsed.mol, reflect_positions(diastereomer)).mirrored


def test_double_bond_flip_is_caught_and_not_repaired_by_reflection():
    parsed = parse_smiles("C/C=C/CO")
    z_isomer = _embed("C/C=C\\CO")
    result = check_structure(parsed.mol, z_isomer)
    assert (result.ok, result.mirrored, result.reason) == (False, False, "stereo_changed")
    assert check_structure(parsed.mol, reflect_positions(z_isomer)).reason == "stereo_changed"
    # A trisubstituted alkene whose stereo atoms are chosen by CIP rank (Br outranks Cl).
    parsed = parse_smiles("F/C=C(/Cl)Br")
    assert check_structure(parsed.mol, _embed("F/C=C(\\Cl)Br")).reason == "stereo_changed"


def test_achiral_molecule_mirror_image_is_fine():
    parsed = parse_smiles("CCOC(=O)C")
    assert check_structure(parsed.mol, reflect_positions(_embed("CCOC(=O)C"))).ok


def test_broken_and_new_bonds_and_clashes():
    parsed = parse_smiles("CCO")
    pos = _embed("CCO")
    hydrogen = next(a.GetIdx() for a in parsed.mol.GetAtoms() if a.GetAtomicNum() == 1)
    carbon = parsed.mol.GetAtomWithIdx(hydrogen).GetNeighbors()[0].GetIdx()
    stretched = pos.clone()
    stretched[hydrogen] = pos[carbon] + 2.5 * (pos[hydrogen] - pos[carbon])
    assert check_structure(parsed.mol, stretched).reason == "connectivity_changed"
    # Oxygen pushed onto a far hydrogen (1.0 A): a new O-H bond appears.
    far_h = max(
        (a.GetIdx() for a in parsed.mol.GetAtoms() if a.GetAtomicNum() == 1),
        key=lambda i: float((pos[i] - pos[2]).norm()),
    )
    direction = (pos[2] - pos[far_h]) / (pos[2] - pos[far_h]).norm()
    moved = pos.clone()
    moved[far_h] = pos[2] - 1.0 * direction
    assert check_structure(parsed.mol, moved).reason == "connectivity_changed"
    moved[far_h] = pos[2] - 0.2 * direction
    assert check_structure(parsed.mol, moved).reason == "clash"


def test_batched_check_agrees_with_single_checks_and_validates_shape():
    smiles = "N[C@@H](C)[C@H](O)C"
    parsed = parse_smiles(smiles)
    batch = torch.stack([_embed(smiles), reflect_positions(_embed(smiles)), _embed("N[C@@H](C)[C@@H](O)C")])
    results = check_conformers(parsed.mol, batch)
    assert results == [check_structure(parsed.mol, x) for x in batch]
    assert [r.ok for r in results] == [True, False, False]
    assert [r.mirrored for r in results] == [False, True, False]
    with pytest.raises(ValueError, match="positions"):
        check_conformers(parsed.mol, batch[:, :3])


def test_agrees_with_rdkit_stereo_perception_on_spice_molecules():
    """Our verdict equals RDKit's: same isomeric SMILES perceived from 3D <=> ok."""
    smiles_list = [line.split("\t")[1] for line in open(_spice_test()).read().splitlines()[1:] if "@" in line][:6]
    assert smiles_list
    for smiles in smiles_list:
        parsed = parse_smiles(smiles)
        pos = local_structure(parsed, 0)
        for candidate, expect_ok in ((pos, True), (reflect_positions(pos), False)):
            mol = Chem.Mol(parsed.mol)
            conf = Chem.Conformer(mol.GetNumAtoms())
            for i, xyz in enumerate(candidate.tolist()):
                conf.SetAtomPosition(i, xyz)
            mol.AddConformer(conf, assignId=True)
            Chem.AssignStereochemistryFrom3D(mol)
            rdkit_same = Chem.MolToSmiles(Chem.RemoveHs(mol)) == parsed.canonical_smiles
            ours = check_structure(parsed.mol, candidate)
            assert ours.ok == expect_ok
            if not _is_meso(parsed.mol):
                assert rdkit_same == ours.ok


def _is_meso(mol: Chem.Mol) -> bool:
    mirror = Chem.Mol(mol)
    for atom in mirror.GetAtoms():
        atom.InvertChirality()
    return Chem.MolToSmiles(mirror) == Chem.MolToSmiles(mol)


def _spice_test() -> str:
    path = SHARED_DATA_DIR / "spice_test.txt"
    if not path.exists():
        pytest.skip("shared SPICE test list not available")
    return str(path)


def test_embedding_with_rdkit_directly_matches_local_structure_atom_order():
    parsed = parse_smiles("C[C@H](N)C(=O)O")
    mol = Chem.Mol(parsed.mol)
    AllChem.EmbedMolecule(mol, randomSeed=3)
    assert check_structure(parsed.mol, torch.tensor(mol.GetConformer().GetPositions())).ok
