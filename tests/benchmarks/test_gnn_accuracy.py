"""GNN accuracy benchmark: the metrics give known values on constructed cases, the evaluation of a model
equal to the reference is exact, and the command runs end to end on a random-weight checkpoint."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch
from reference_label_helpers import write_reference_set

from adjoint_sampling.benchmarks.gnn_accuracy import (
    LabelledMolecule,
    constant_baseline,
    evaluate_molecules,
    main,
    molecule_errors,
    moved_rmsd,
    relative_energy_mae,
    spearman,
    summarize_errors,
)
from adjoint_sampling.benchmarks.gnn_reference_labels import run_reference_labels
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.gnn import save_gnn_checkpoint
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential


class Lookup(EnergyModel):
    """Returns each molecule's reference labels, energies shifted by ``offset`` kcal/mol."""

    name = "lookup"

    def __init__(self, molecules: list[LabelledMolecule], offset: float = 0.0) -> None:
        self.by_key = {m.system.key: m for m in molecules}
        self.offset = offset

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        mol = self.by_key[system.key]
        assert np.array_equal(positions.numpy(), mol.positions)
        return EnergyResult(energy=torch.from_numpy(mol.energy + self.offset), forces=torch.from_numpy(mol.forces.copy()),
                            ok=torch.ones(mol.num_frames, dtype=torch.bool))


def _molecules(seed: int = 0) -> list[LabelledMolecule]:
    rng = np.random.default_rng(seed)
    out = []
    for k, n_frames in enumerate((5, 4, 2)):
        n_atoms = 3 + k
        out.append(LabelledMolecule(
            mol_id=f"mol-{k}",
            system=AtomicSystem(atomic_numbers=torch.full((n_atoms,), 6), key=f"mol-{k}"),
            sources=np.array(["crest", "crest_perturbed"] * 3)[:n_frames],
            positions=rng.normal(size=(n_frames, n_atoms, 3)),
            energy=rng.normal(size=n_frames) * 3.0 - 1000.0 * k,
            forces=rng.normal(size=(n_frames, n_atoms, 3)),
        ))
    return out


def test_relative_energy_mae_and_spearman_known_values():
    ref = np.array([-1000.0, -998.0, -995.0, -999.0])
    assert relative_energy_mae(ref, ref) == 0.0
    assert relative_energy_mae(ref + 123.4, ref) == pytest.approx(0.0, abs=1e-12)
    assert relative_energy_mae(np.array([0.0, 1.0, 2.0]), np.zeros(3)) == pytest.approx(2.0 / 3.0)
    noisy = ref + np.array([0.5, -0.5, 0.0, 0.0])
    assert relative_energy_mae(noisy + 50.0, ref) == pytest.approx(relative_energy_mae(noisy, ref)) == pytest.approx(0.25)
    assert spearman(ref, ref) == pytest.approx(1.0)
    assert spearman(np.exp(ref - ref.max()), ref) == pytest.approx(1.0)  # monotone transform
    assert spearman(-ref, ref) == pytest.approx(-1.0)
    assert math.isnan(spearman(ref[:2], ref[:2]))  # too few frames
    assert math.isnan(spearman(np.zeros(4), ref))  # constant


def test_summary_pools_forces_and_averages_molecules():
    a = molecule_errors("a", np.array([0.0, 1.0, 2.0]), np.zeros(3), np.ones((3, 2, 3)), np.zeros((3, 2, 3)))
    b = molecule_errors("b", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.zeros((3, 1, 3)),
                        np.full((3, 1, 3), 4.0))
    single = molecule_errors("c", np.array([5.0]), np.array([1.0]), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))
    summary = summarize_errors([a, b, single])
    assert summary["molecules"] == 3 and summary["frames"] == 7
    assert summary["energy_molecules"] == 2 and summary["energy_rel_mae"] == pytest.approx(1.0 / 3.0)
    assert summary["force_mae"] == pytest.approx((18 * 1.0 + 9 * 4.0) / (18 + 9 + 3))
    assert summary["spearman_molecules"] == 1 and summary["spearman_median"] == pytest.approx(1.0)


def test_a_model_equal_to_the_reference_is_exact_and_a_shift_changes_nothing():
    molecules = _molecules()
    exact = evaluate_molecules(Lookup(molecules), molecules)
    shifted = evaluate_molecules(Lookup(molecules, offset=-42.0), molecules)
    for result in (exact, shifted):
        assert result["all"]["energy_rel_mae"] == pytest.approx(0.0, abs=1e-9)
        assert result["all"]["force_mae"] == 0.0
        assert result["all"]["spearman_median"] == pytest.approx(1.0)
        assert result["all"]["molecules"] == 3 and result["all"]["frames"] == 11
        assert result["all"]["spearman_molecules"] == 2  # the 2-frame molecule has none
        assert result["meets_targets"] == {"energy_rel_mae": True, "force_mae": True, "spearman_median": True}
        assert set(result["by_source"]) == {"crest", "crest_perturbed"}
        assert result["by_source"]["crest"]["frames"] == 3 + 2 + 1
    baseline = constant_baseline(molecules)["all"]
    mad = np.mean([np.abs(m.energy - m.energy.mean()).mean() for m in molecules])
    assert baseline["energy_rel_mae"] == pytest.approx(mad)
    assert baseline["force_mae"] == pytest.approx(np.concatenate([np.abs(m.forces).ravel() for m in molecules]).mean())


def test_moved_rmsd_ignores_rigid_motion():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(2, 6, 3))
    rot = random_orthogonal(3, torch.Generator().manual_seed(0)).numpy()
    rot = rot * np.sign(np.linalg.det(rot))
    moved = start @ rot.T + np.array([1.0, -2.0, 0.5])
    moved[1, 0] += np.array([0.3, 0.0, 0.0])
    rmsd = moved_rmsd(start, moved, np.arange(6))
    assert rmsd[0] == pytest.approx(0.0, abs=1e-6) and 0.05 < rmsd[1] < 0.3


def test_command_runs_end_to_end_on_a_random_checkpoint(tmp_path, capsys):
    config = write_reference_set(tmp_path)
    labels = tmp_path / "labels"
    run_reference_labels(config, labels)
    hp = GNNHParams(num_scalars=8, num_vectors=4, num_layers=2, radial_hidden=8)
    torch.manual_seed(0)
    model = GNNPotential(hp)
    model.energy_scale.fill_(3.0)
    checkpoint = tmp_path / "gnn.pt"
    save_gnn_checkpoint(checkpoint, model)
    out = tmp_path / "accuracy.json"
    assert main([
        "--checkpoint", str(checkpoint), "--spice-labels", str(labels), "--crest-labels", str(labels),
        "--test-list", config.test_list, "--conformer-dir", config.conformer_dir, "--relax-conformers", "2",
        "--relax-steps", "5", "--xtb-relax-conformers", "1", "--output", str(out),
    ]) == 0
    report = json.loads(out.read_text())
    (entry,) = report["checkpoints"]
    assert set(entry["sets"]) == {"spice_xtb test", "crest_test_xtb"}
    crest = entry["sets"]["crest_test_xtb"]
    assert crest["all"]["frames"] == 4 and crest["all"]["molecules"] == 1 and crest["failed_frames"] == 0
    assert crest["all"]["force_mae"] > 0 and crest["model_cpu_ms_per_frame"] > 0
    assert entry["relax"]["conformers"] == 2 and entry["relax"]["rmsd_median"] >= 0
    assert report["mmff_relax"]["conformers"] == 2 and report["mmff_relax"]["rmsd_median"] > 0
    assert report["xtb_relax"]["conformers"] == 1 and entry["relax_vs_xtb"]["conformers"] == 1
    assert report["baselines"]["crest_test_xtb"]["all"]["frames"] == 4
    table = capsys.readouterr().out
    assert "| gnn.pt | crest_test_xtb: crest_perturbed |" in table and "| mmff |" in table


def test_the_validation_split_can_be_evaluated_instead_of_the_test_split(tmp_path, capsys):
    config = write_reference_set(tmp_path)
    labels = tmp_path / "labels"
    run_reference_labels(config, labels)
    (labels / "data" / "validation").mkdir(parents=True)
    for path in (labels / "data" / "test").glob("*.extxyz.gz"):
        text = gzip.decompress(path.read_bytes()).decode().replace("split=test", "split=validation")
        (labels / "data" / "validation" / path.name).write_bytes(gzip.compress(text.encode()))
    torch.manual_seed(0)
    checkpoint = tmp_path / "gnn.pt"
    hp = GNNHParams(num_scalars=8, num_vectors=4, num_layers=2, radial_hidden=8)
    save_gnn_checkpoint(checkpoint, GNNPotential(hp))
    out = tmp_path / "accuracy.json"
    assert main(["--checkpoint", str(checkpoint), "--spice-labels", str(labels), "--spice-split", "validation",
                 "--crest-labels", str(tmp_path / "none"), "--relax-conformers", "0", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    (entry,) = report["checkpoints"]
    assert report["config"]["spice_split"] == "validation"
    assert set(entry["sets"]) == {"spice_xtb validation"}  # the missing CREST labels are left out
    assert entry["sets"]["spice_xtb validation"]["all"]["frames"] == 4
    assert "spice_xtb validation" in capsys.readouterr().out


class SourceShift(Lookup):
    """The reference labels, with the energies of one source's frames shifted by ``shift`` kcal/mol."""

    def __init__(self, molecules: list[LabelledMolecule], source: str, shift: float) -> None:
        super().__init__(molecules)
        self.source, self.shift = source, shift

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        result = super().energy_and_forces(system, positions)
        mol = self.by_key[system.key]
        energy = result.energy + self.shift * torch.from_numpy(mol.sources == self.source)
        return EnergyResult(energy=energy, forces=result.forces, ok=result.ok)


def test_a_source_placed_too_high_shows_as_its_energy_offset():
    molecules = _molecules()
    by_source = evaluate_molecules(SourceShift(molecules, "crest_perturbed", 2.0), molecules)["by_source"]
    # molecule k has frames crest, perturbed, crest, ... : centred on all frames, the perturbed frames sit
    # 2 (1 - share of perturbed frames) too high, the crest frames 2 x share too low
    shares = [2 / 5, 2 / 4, 1 / 2]
    assert by_source["crest_perturbed"]["energy_offset_mean"] == pytest.approx(-2.0 * np.mean([1 - s for s in shares]))
    assert by_source["crest"]["energy_offset_mean"] == pytest.approx(2.0 * np.mean(shares))
    assert by_source["crest"]["energy_offset_mean_abs"] == pytest.approx(2.0 * np.mean(shares))
    exact = evaluate_molecules(Lookup(molecules), molecules)
    assert exact["by_source"]["crest"]["energy_offset_mean_abs"] == pytest.approx(0.0, abs=1e-9)
    assert exact["all"]["energy_offset_mean_abs"] is None  # no offset for whole molecules
