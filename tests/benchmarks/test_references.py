"""Reading the test list and CREST ensembles; matching XYZ atom order onto the SMILES molecule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from adjoint_sampling.benchmarks.conformers.references import (
    BenchmarkMolecule,
    MissingReferenceError,
    ReferenceFormatError,
    load_reference_ensemble,
    match_reference_blocks,
    read_test_list,
    read_xyz_blocks,
)
from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.paths import SHARED_DATA_DIR

SMILES = "C[C@@H](O)c1ccccc1Cl"  # one stereocentre, no heavy-atom symmetry
DATA_DIR = SHARED_DATA_DIR


def xyz_block(symbols: list[str], positions: np.ndarray, comment: str) -> str:
    lines = [str(len(symbols)), comment]
    lines += [f"{s:2s} {x:16.10f} {y:16.10f} {z:16.10f}" for s, (x, y, z) in zip(symbols, positions)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def shuffled_ensemble() -> dict:
    """Five blocks in a shuffled atom order: 2 good, 1 mirrored, 1 broken bond, 1 wrong formula."""
    mol = parse_smiles(SMILES).mol
    conformers = embed_etkdg(mol, 3, seed=7)
    rng = np.random.default_rng(0)
    order = rng.permutation(mol.GetNumAtoms())  # XYZ atom j is molecule atom order[j]
    symbols = [mol.GetAtomWithIdx(int(i)).GetSymbol() for i in order]
    chlorine = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "Cl")
    stretched = conformers[0].copy()
    ring_carbon = mol.GetAtomWithIdx(chlorine).GetNeighbors()[0].GetIdx()
    stretched[chlorine] += 2.5 * (stretched[chlorine] - stretched[ring_carbon])
    wrong = list(symbols)
    wrong[symbols.index("O")] = "N"
    text = "".join(
        [
            xyz_block(symbols, conformers[0][order], "  -10.5"),
            xyz_block(symbols, conformers[1][order], "  -10.25 extra words"),
            xyz_block(symbols, (conformers[2] * np.array([-1.0, 1.0, 1.0]))[order], "-10.0"),
            xyz_block(symbols, stretched[order], "-9.0"),
            xyz_block(wrong, conformers[0][order], "no energy here"),
        ]
    )
    return {"mol": mol, "conformers": conformers, "text": text}


def test_read_xyz_blocks(tmp_path: Path, shuffled_ensemble: dict) -> None:
    path = tmp_path / "crest_conformers.xyz"
    path.write_text(shuffled_ensemble["text"])
    blocks = read_xyz_blocks(path)
    assert len(blocks) == 5
    assert blocks[0].energy == -10.5 and blocks[1].energy == -10.25 and np.isnan(blocks[4].energy)
    assert blocks[0].positions.shape == (shuffled_ensemble["mol"].GetNumAtoms(), 3)


def test_matching_reorders_atoms_and_reports_unmatched(tmp_path: Path, shuffled_ensemble: dict) -> None:
    path = tmp_path / "crest_conformers.xyz"
    path.write_text(shuffled_ensemble["text"])
    mol, conformers = shuffled_ensemble["mol"], shuffled_ensemble["conformers"]
    positions, indices, unmatched = match_reference_blocks(mol, read_xyz_blocks(path))
    assert indices.tolist() == [0, 1]
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    np.testing.assert_allclose(positions[:, heavy], conformers[:2][:, heavy], atol=1e-9)
    # hydrogens land on the right parent (equivalent hydrogens may swap among themselves)
    for atom in mol.GetAtoms():
        hs = [n.GetIdx() for n in atom.GetNeighbors() if n.GetAtomicNum() == 1]
        if hs:
            got = sorted(map(tuple, np.round(positions[0, hs], 6)))
            want = sorted(map(tuple, np.round(conformers[0, hs], 6)))
            assert got == want
    assert [(u.index, u.reason) for u in unmatched] == [
        (2, "stereo_mismatch"),
        (3, "connectivity_mismatch"),
        (4, "formula_mismatch"),
    ]


def test_load_reference_ensemble_caps_and_reports(tmp_path: Path, shuffled_ensemble: dict) -> None:
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "crest_conformers.xyz").write_text(shuffled_ensemble["text"])
    molecule = BenchmarkMolecule(mol_id="m1", smiles=SMILES, rotatable_bonds=1)
    ensemble = load_reference_ensemble(molecule, tmp_path, max_references=1)
    assert ensemble.num_references == 1 and ensemble.num_blocks == 5
    assert ensemble.energies.tolist() == [-10.5]
    assert ensemble.unmatched_counts() == {"stereo_mismatch": 1, "connectivity_mismatch": 1, "formula_mismatch": 1}
    assert Chem.MolToSmiles(Chem.RemoveHs(ensemble.mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(SMILES))
    with pytest.raises(MissingReferenceError, match="m2"):
        load_reference_ensemble(BenchmarkMolecule("m2", SMILES, 1), tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("two\ncomment\nC 0 0 0\n", r":1: expected an atom count, got 'two'"),
        ("2\ncomment\nC 0 0 0\n", r":1: block 0 declares 2 atoms but the file ends after 1 atom lines"),
        ("1\ncomment\nC 0 0\n", r":3: expected 'symbol x y z'"),
        ("1\ncomment\nC 0 zero 0\n", r":3: non-numeric coordinate"),
        ("1\ncomment\nXx 0 0 0\n", r":3: unknown element symbol 'Xx'"),
        ("1\nc\nC 0 0 0\n1\nc\nC nan 0 0\n", r":6: non-finite coordinate"),
        ("\n\n", r"no XYZ block found"),
    ],
)
def test_malformed_xyz_gives_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(ReferenceFormatError, match=message):
        read_xyz_blocks(path)


def test_read_test_list(tmp_path: Path) -> None:
    path = tmp_path / "test.txt"
    path.write_text("Rotatable_Bonds\tSMILES\tHash_Name\n3\tCCO\tm1\n4\tCCCO\tm2\n")
    assert read_test_list(path) == [BenchmarkMolecule("m1", "CCO", 3), BenchmarkMolecule("m2", "CCCO", 4)]
    path.write_text("Rotatable_Bonds\tSMILES\tHash_Name\nthree\tCCO\tm1\n")
    with pytest.raises(ReferenceFormatError, match=r":2: rotatable-bond count 'three'"):
        read_test_list(path)
    path.write_text("3\tCCO\n")
    with pytest.raises(ReferenceFormatError, match=r":1: expected 3 columns"):
        read_test_list(path)
    path.write_text("3\tCCO\tm1\n3\tCCC\tm1\n")
    with pytest.raises(ReferenceFormatError, match="duplicate molecule ids m1"):
        read_test_list(path)


@pytest.mark.skipif(not (DATA_DIR / "spice_test.txt").is_file(), reason="shared SPICE test data not present")
def test_spice_reference_with_isomerised_imine_is_reported() -> None:
    molecules = {m.mol_id: m for m in read_test_list(DATA_DIR / "spice_test.txt")}
    ensemble = load_reference_ensemble(molecules["rot3_7c8d608e6b"], DATA_DIR / "spice_test_conformers")
    # CREST's last four conformers flipped the C=N double bond the SMILES fixes as E/Z
    assert ensemble.num_blocks == 27 and ensemble.num_references == 23
    assert [(u.index, u.reason) for u in ensemble.unmatched] == [(i, "stereo_mismatch") for i in (23, 24, 25, 26)]
