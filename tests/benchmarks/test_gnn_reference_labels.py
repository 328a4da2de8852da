"""GFN2-xTB labels of CREST reference conformers: frames equal a direct xtb call, selection and
perturbation are deterministic, a rerun does no work, failed SCFs are skipped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from reference_label_helpers import SMILES, TEST_ID, write_reference_set

from adjoint_sampling.benchmarks.gnn_reference_labels import (
    ReferenceLabelConfig,
    evenly_spaced,
    frames_path,
    record_path,
    run_reference_labels,
)
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.labelling.extxyz import read_frames
from adjoint_sampling.labelling.molecules import canonical_smiles, molecule_id


class Forbidden(EnergyModel):
    name = "forbidden"

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        raise AssertionError("a finished molecule was labelled again")


class FailFirst(EnergyModel):
    """xtb, but the first conformer of every call fails."""

    name = "xtb"

    def __init__(self) -> None:
        self.xtb = build_energy("xtb", num_workers=1)

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        result = self.xtb.energy_and_forces(system, positions)
        ok = result.ok.clone()
        ok[0] = False
        return EnergyResult(energy=result.energy, forces=result.forces, ok=ok, failure_reasons=("scf not converged",))


def test_evenly_spaced_is_deterministic_and_covers_the_file():
    assert evenly_spaced(3, 2).tolist() == [0, 2]
    assert evenly_spaced(2, 24).tolist() == [0, 1]
    assert evenly_spaced(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert evenly_spaced(10, 1).tolist() == [0]
    assert evenly_spaced(0, 3).size == 0


def test_frames_equal_a_direct_xtb_call_and_a_rerun_does_no_work(tmp_path):
    config = write_reference_set(tmp_path)
    out = tmp_path / "labels"
    summary = run_reference_labels(config, out)
    assert (summary.molecules, summary.missing_reference, summary.labelled, summary.frames) == (1, 1, 1, 4)
    assert summary.failed_scf == 0 and summary.cpu_s > 0

    frames = read_frames(frames_path(out, TEST_ID))
    assert [f.source for f in frames] == ["crest", "crest", "crest_perturbed", "crest_perturbed"]
    assert [f.extras["crest_index"] for f in frames] == [0, 2, 0, 2]
    assert [f.conf_id for f in frames] == [0, 1, 2, 3]
    assert {f.split for f in frames} == {"test"}
    assert {f.mol_id for f in frames} == {molecule_id(canonical_smiles(SMILES))}
    assert (frames[0].charge, frames[0].multiplicity) == (0, 1)
    shift = np.stack([f.positions for f in frames[2:]]) - np.stack([f.positions for f in frames[:2]])
    assert 0.02 < shift.std() < 0.1 and np.abs(shift).max() < 0.3

    system = atomic_system(parse_smiles(SMILES))
    direct = build_energy("xtb", num_workers=1).energy_and_forces(
        system, torch.from_numpy(np.stack([f.positions for f in frames]))
    )
    assert direct.ok.all()
    np.testing.assert_allclose([f.energy_kcal_mol for f in frames], direct.energy.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.stack([f.forces_kcal_mol_a for f in frames]), direct.forces.numpy(), atol=1e-4)

    record = json.loads(record_path(out, TEST_ID).read_text())
    assert record["status"] == "ok" and record["xtb_calls"] == 4 and record["crest_indices"] == [0, 2]
    totals = json.loads((out / "summary.json").read_text())
    assert totals["frames"] == 4 and totals["frames_by_source"] == {"crest": 2, "crest_perturbed": 2}

    data = frames_path(out, TEST_ID).read_bytes()
    run_reference_labels(config, tmp_path / "fresh")
    assert frames_path(tmp_path / "fresh", TEST_ID).read_bytes() == data  # same selection and perturbation
    again = run_reference_labels(config, out, energy=Forbidden())
    assert (again.already_done, again.labelled, again.frames) == (1, 0, 0)
    assert frames_path(out, TEST_ID).read_bytes() == data
    with pytest.raises(ConfigError, match="other settings"):
        run_reference_labels(ReferenceLabelConfig(**{**config.__dict__, "sigma": 0.1}), out, energy=Forbidden())


def test_failed_scf_is_skipped_and_counted(tmp_path):
    config = write_reference_set(tmp_path)
    out = tmp_path / "labels"
    summary = run_reference_labels(config, out, energy=FailFirst())
    assert summary.failed_scf == 2 and summary.frames == 2
    frames = read_frames(frames_path(out, TEST_ID))
    assert [(f.source, f.extras["crest_index"]) for f in frames] == [("crest", 2), ("crest_perturbed", 2)]
    record = json.loads(record_path(out, TEST_ID).read_text())
    assert record["failed_scf"] == 2 and record["frames"] == {"crest": 1, "crest_perturbed": 1}
