"""The labelling job end to end on tiny molecules: ASE-readable output, xTB labels, splits, kill and
resume, failed SCFs, CLI errors and the data card."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.labelling.card import write_data_card
from adjoint_sampling.labelling.config import SOURCES, label_config_from_dict
from adjoint_sampling.labelling.extxyz import LabelledFrame, frames_to_text, read_frames
from adjoint_sampling.labelling.job import run_label_job

TINY = Path(__file__).with_name("tiny_label.yaml")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adjoint_sampling.cli", "label", str(TINY), *args]


def _all_frames(out: Path) -> list[LabelledFrame]:
    return [f for path in sorted((out / "data").glob("*/chunk-*.extxyz.gz")) for f in read_frames(path)]


def _data_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): gzip.decompress(p.read_bytes()) for p in sorted((out / "data").rglob("*.gz"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted CLI run of the tiny config."""
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(_cli("--out", str(out)), check=True, env=ENV, capture_output=True, timeout=120)
    return out


def test_outputs_are_ase_readable_xtb_labelled_and_split_by_molecule(reference):
    ase_io = pytest.importorskip("ase.io")
    files = sorted((reference / "data").glob("*/chunk-*.extxyz.gz"))
    assert files
    split_of: dict[str, set[str]] = defaultdict(set)
    sources = set()
    for path in files:
        atoms_list = ase_io.read(path, index=":")
        ours = read_frames(path)
        assert len(atoms_list) == len(ours) > 0
        for atoms, frame in zip(atoms_list, ours):
            for key in ("smiles", "charge", "multiplicity", "source", "split", "energy_kcal_mol", "mol_id"):
                assert key in atoms.info
            assert atoms.info["split"] == path.parent.name
            assert atoms.get_forces().shape == (len(atoms), 3)
            assert abs(atoms.get_potential_energy() * 23.060547830619 - atoms.info["energy_kcal_mol"]) < 1e-6
            np.testing.assert_allclose(atoms.positions, frame.positions)
            split_of[atoms.info["smiles"]].add(atoms.info["split"])
            sources.add(atoms.info["source"])
    assert set(split_of) == {"CCCO", "CC(=O)O", "CCN"}
    assert all(len(splits) == 1 for splits in split_of.values())
    assert sources == set(SOURCES)

    frame = next(f for f in _all_frames(reference) if f.source == "sampler")
    system = atomic_system(parse_smiles(frame.smiles))
    fresh = build_energy("xtb", num_workers=1).energy_and_forces(system, torch.from_numpy(frame.positions[None]))
    assert bool(fresh.ok[0])
    assert abs(float(fresh.energy[0]) - frame.energy_kcal_mol) < 1e-3
    np.testing.assert_allclose(fresh.forces[0].numpy(), frame.forces_kcal_mol_a, atol=1e-3)


def test_kill_and_resume_equals_an_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli("--out", str(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "chunks" / "chunk-00000.json"
    deadline = time.time() + 90
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert first.exists()
    assert len(list((out / "chunks").glob("*.json"))) < 3
    done = subprocess.run(_cli("--out", str(out)), env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done before" in done.stdout
    assert _data_bytes(out) == _data_bytes(reference)
    conformers = [(f.mol_id, f.conf_id) for f in _all_frames(out)]
    assert len(conformers) == len(set(conformers))
    assert len({m for m, _ in conformers}) == 3
    rerun = subprocess.run(_cli("--out", str(out)), env=ENV, capture_output=True, text=True, timeout=120)
    assert "3 done before, 0 labelled now" in rerun.stdout


def test_data_card_counts_match_the_data(reference):
    card = write_data_card(reference)
    frames = _all_frames(reference)
    assert card["frames"]["total"] == len(frames)
    assert card["frames"]["counts_match_records"]
    for source in SOURCES:
        assert sum(card["frames"]["per_source_and_split"][source].values()) == sum(f.source == source for f in frames)
    assert card["molecules"]["labelled"] == len({f.mol_id for f in frames}) == 3
    for split, n in card["molecules"]["per_split"].items():
        assert n == len({f.mol_id for f in frames if f.split == split})
    assert card["cpu_s"]["total"] > 0
    assert (reference / "DATA_CARD.md").read_text().startswith("# Data card")


def test_a_failed_scf_is_recorded_and_skipped(tmp_path, monkeypatch):
    from adjoint_sampling.energy.base import EnergyResult
    from adjoint_sampling.energy.xtb import XTBEnergy

    original = XTBEnergy.energy_and_forces

    def first_fails(self, system, positions):
        result = original(self, system, positions)
        ok = result.ok.clone()
        ok[0] = False
        energy = result.energy.clone()
        energy[0] = float("nan")
        return EnergyResult(energy, result.forces, ok, ("xtb failed: SCF not converged",))

    monkeypatch.setattr(XTBEnergy, "energy_and_forces", first_fails)
    config = label_config_from_dict({"smiles": ["CCO"], "sources": {s: 0 for s in SOURCES} | {"etkdg": 3}})
    summary = run_label_job(config, tmp_path)
    assert summary.labelled == 1
    frames = _all_frames(tmp_path)
    card = write_data_card(tmp_path)
    assert card["failed_scf"] == 1
    assert card["sources"]["etkdg"]["xtb_calls"] == 3
    assert len(frames) == card["sources"]["etkdg"]["kept"] == 2
    assert all(np.isfinite(f.energy_kcal_mol) for f in frames)


@pytest.mark.parametrize("args, needle", [
    (["--shard", "2/2"], "--shard"),
    (["--shard", "x"], "--shard"),
    (["--workers", "0"], "--workers"),
])
def test_bad_options_exit_2_with_one_line(args, needle, tmp_path, capsys):
    assert main(["label", str(TINY), "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize("text, needle", [
    ("sources: {etkdg: -1}\n", "sources.etkdg"),
    ("colour: blue\n", "unknown key"),
    ("smiles_file: ../shared/data/spice_test.txt\n", "test list"),
    ("split: {train: 0.5}\n", "split"),
    ("sources: [\n", "invalid YAML"),
])
def test_bad_config_exits_2_with_one_line(text, needle, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["label", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_extxyz_round_trip_keeps_awkward_smiles(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    frame = LabelledFrame(
        atomic_numbers=np.array([6, 8]), positions=np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0]]),
        energy_kcal_mol=-100.5, forces_kcal_mol_a=np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]),
        smiles="C/C=C\\C[C@H](F)O", charge=-1, multiplicity=1, source="thermal", split="test",
        mol_id="mol-0123456789abcdef", conf_id=7, extras={"temperature_k": 512.5, "step": 3},
    )
    path = tmp_path / "x.extxyz"
    path.write_text(frames_to_text([frame]))
    back = read_frames(path)[0]
    assert (back.smiles, back.charge, back.extras, back.conf_id) == (frame.smiles, -1, frame.extras, 7)
    np.testing.assert_allclose(back.forces_kcal_mol_a, frame.forces_kcal_mol_a, atol=1e-4)
    atoms = ase_io.read(path, index=":")[0]
    assert atoms.info["smiles"] == frame.smiles and atoms.info["charge"] == -1


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "labelling").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_labelling_config_parses(path):
    from adjoint_sampling.labelling.config import load_label_config

    config = load_label_config(path)
    assert sum(vars(config.sources).values()) > 0


def test_hash_order_is_a_fixed_sample_whatever_the_file_order():
    from adjoint_sampling.labelling.molecules import molecule_entries

    smiles = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O", "OCCO", "CCCl", "CNC"]
    forward = molecule_entries(label_config_from_dict({"smiles": smiles, "max_molecules": 4}))
    backward = molecule_entries(label_config_from_dict({"smiles": smiles[::-1], "max_molecules": 4}))
    assert [e.canonical for e in forward] == [e.canonical for e in backward]
    in_file_order = molecule_entries(label_config_from_dict({"smiles": smiles, "order": "file"}))
    assert [e.smiles for e in in_file_order] == smiles
    assert [e.canonical for e in forward] != [e.canonical for e in in_file_order][:4]  # not the file's first four
