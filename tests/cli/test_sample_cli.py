"""`adjoint-sampling sample`: inputs (SMILES, .smi, SDF), outputs (SDF, XYZ), one-line errors, `--relax gnn`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from molecular_helpers import TINY_SMILES, tiny_job, write_tiny_gnn_checkpoint
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.cli.entry import main
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    run_dir = tmp_path_factory.mktemp("tiny_cli")
    run_training_job(job_config_from_dict(tiny_job("torsional", iterations=1)), run_dir, progress=False)
    return str(run_dir / "model.pt")


def _records(path: Path) -> list[Chem.Mol]:
    return [m for m in Chem.SDMolSupplier(str(path), removeHs=False)]


def test_smiles_to_sdf_with_tags(model, tmp_path, capsys):
    out = tmp_path / "out.sdf"
    rc = main(["sample", TINY_SMILES[1], "-n", "6", "--seed", "4", "-o", str(out), "--model", model])
    assert rc == 0
    mols = _records(out)
    err = capsys.readouterr().err
    assert f"{len(mols)} of 6 conformers" in err and "wrote 1 molecule(s)" in err
    assert 1 <= len(mols) <= 6
    indices = [m.GetIntProp("conformer_index") for m in mols]
    assert indices == sorted(set(indices)) and max(indices) < 6 * 4  # failed draws are replaced, at most 4 x n
    for m in mols:
        assert m.GetIntProp("seed") == 4 and m.GetProp("model_name") == "adjoint-sampling-torsional"
        assert np.isfinite(float(m.GetProp("energy_kcal_mol"))) and m.GetProp("model_version")
        Chem.AssignStereochemistryFrom3D(m)
        assert Chem.MolToSmiles(Chem.RemoveHs(m)) == Chem.MolToSmiles(Chem.MolFromSmiles(TINY_SMILES[1]))


def test_smi_file_with_a_bad_line_and_xyz_output(model, tmp_path, capsys):
    smi = tmp_path / "mols.smi"
    smi.write_text(f"{TINY_SMILES[0]} butanol\nC1CC( broken\nCCOC\n")
    out = tmp_path / "out.xyz"
    rc = main(["sample", str(smi), "-n", "3", "-o", str(out), "--model", model])
    assert rc == 1  # one molecule failed, the others were written
    err = capsys.readouterr().err
    assert "C1CC(: skipped (invalid_smiles)" in err
    lines = out.read_text().splitlines()
    frames = [i for i, line in enumerate(lines) if line.strip().isdigit()]
    smiles_in_comments = {lines[i + 1].split("smiles=")[1] for i in frames}
    assert smiles_in_comments == {TINY_SMILES[0], "CCOC"}


def test_sdf_input_keeps_stereo(model, tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H](O)CC"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    expected = Chem.MolToSmiles(Chem.MolFromSmiles("C[C@H](O)CC"))
    src = tmp_path / "in.sdf"
    with Chem.SDWriter(str(src)) as writer:
        writer.write(mol)
    out = tmp_path / "out.sdf"
    assert main(["sample", str(src), "-n", "2", "-o", str(out), "--model", model]) == 0
    for rec in _records(out):
        assert rec.GetProp("smiles") == expected  # the input's configuration, read from its 3D
        Chem.AssignStereochemistryFrom3D(rec)
        assert Chem.MolToSmiles(Chem.RemoveHs(rec)) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["C1CC("], "RDKit cannot parse SMILES"),
        (["missing.smi"], "input file 'missing.smi' does not exist"),
        (["CCO", "-n", "0"], "-n must be >= 1, got 0"),
        (["CCO", "-n", "100000"], "-n must not exceed the cap of"),
        (["CCO", "--prune-rms", "-1"], "--prune-rms must be > 0"),
        (["CCO", "--relax-steps", "20"], "--relax-steps needs a relaxation"),
        (["CCO", "--relax", "mmff", "--relax-steps", "0"], "--relax-steps must be >= 1"),
        (["C[Se]C"], "unsupported element(s) Se"),
    ],
)
def test_bad_input_is_one_line_error(model, argv, message, capsys):
    rc = main(["sample", *argv, "--model", model, "-o", "-"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("adjoint-sampling sample: error: ") and message in err[-1]


def test_missing_checkpoint_is_one_line_error(tmp_path, capsys):
    assert main(["sample", "CCO", "--model", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_file_of_molecules_shows_progress_unless_asked_not_to(tmp_path, capsys):
    smi = tmp_path / "salts.smi"
    smi.write_text("CCO\nCC(=O)[O-].[Na+]\nCCN\n")
    out = tmp_path / "out.sdf"
    assert main(["sample", str(smi), "-n", "2", "-o", str(out), "--model", "etkdg", "--sort", "--relax", "mmff"]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "mol/s" in err  # the progress bar
    assert "stripped [Na+]" in err and "energies: mmff" in err
    assert main(["sample", str(smi), "-n", "2", "-o", str(out), "--model", "etkdg", "--no-progress"]) == 0
    assert "3/3" not in capsys.readouterr().err
    # --keep-fragments refuses the salt, the others are written
    assert main(["sample", str(smi), "-n", "2", "-o", str(out), "--model", "etkdg", "--keep-fragments"]) == 1
    assert "skipped (multiple_fragments)" in capsys.readouterr().err


def _sdf_energies(path: Path) -> dict[int, tuple[float, np.ndarray]]:
    return {m.GetIntProp("conformer_index"): (float(m.GetProp("energy_kcal_mol")), m.GetConformer().GetPositions())
            for m in _records(path)}


def test_relax_gnn_with_the_shipped_energy_model(tmp_path, capsys):
    from adjoint_sampling.chemistry.graph import atomic_system
    from adjoint_sampling.chemistry.parsing import parse_smiles
    from adjoint_sampling.generation.shipped import load_energy_model

    raw, relaxed = tmp_path / "raw.sdf", tmp_path / "gnn.sdf"
    common = ["sample", "CCCO", "-n", "3", "--seed", "5", "--model", "etkdg"]
    assert main([*common, "-o", str(raw)]) == 0
    assert main([*common, "--relax", "gnn", "-o", str(relaxed)]) == 0
    assert "energies: gnn" in capsys.readouterr().err
    mols = _records(relaxed)
    assert len(mols) == 3 and {m.GetProp("energy_model") for m in mols} == {"gnn"}
    assert {m.GetProp("relax") for m in mols} == {"gnn"} and not any(m.HasProp("warnings") for m in mols)
    before = {m.GetIntProp("conformer_index"): m.GetConformer().GetPositions() for m in _records(raw)}
    after = _sdf_energies(relaxed)
    system = atomic_system(parse_smiles("CCCO"))
    start = load_energy_model().energy(system, torch.from_numpy(np.stack([before[i] for i in after]))).numpy()
    for (index, (energy, positions)), unrelaxed in zip(after.items(), start, strict=True):
        assert np.abs(positions - before[index]).max() > 1e-3 and energy < unrelaxed


def test_relax_gnn_refuses_an_element_of_the_energy_model_in_one_line(tmp_path, capsys):
    checkpoint = write_tiny_gnn_checkpoint(tmp_path / "tiny.pt")  # H C N O
    rc = main(["sample", "CCS", "-n", "2", "--model", "etkdg", "--relax", "gnn", "--energy-model", str(checkpoint)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("adjoint-sampling sample: error: ") and "element(s) S" in err[-1]


@pytest.mark.parametrize(("argv", "message"), [
    (["--relax", "gnn", "--energy-model", "/nonexistent/energy.pt"], "energy model '/nonexistent/energy.pt' does not exist"),
    (["--relax", "mmff", "--energy-model", "/nonexistent/energy.pt"], "--energy-model needs --relax gnn"),
    (["--relax", "gnn", "--energy-model", "{corrupt}"], "cannot be read: corrupt"),
])
def test_a_bad_energy_model_is_a_one_line_error(tmp_path, capsys, argv, message):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint\n")
    argv = [a.replace("{corrupt}", str(corrupt)) for a in argv]
    assert main(["sample", "CCO", "-n", "1", "--model", "etkdg", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_relax_gnn_flags_a_molecule_larger_than_the_training_data(tmp_path, capsys):
    checkpoint = write_tiny_gnn_checkpoint(tmp_path / "tiny.pt", max_atoms=10)
    out = tmp_path / "out.sdf"
    argv = ["sample", "CCCO", "-n", "2", "--model", "etkdg", "--relax", "gnn", "--relax-steps", "2",
            "--energy-model", str(checkpoint), "-o", str(out)]
    assert main(argv) == 0
    assert "warning: gnn_extrapolation: the molecule has 12 atoms" in capsys.readouterr().err
    mols = _records(out)
    assert len(mols) == 2 and all(m.GetProp("warnings").startswith("gnn_extrapolation:") for m in mols)
