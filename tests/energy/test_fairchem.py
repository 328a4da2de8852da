"""fairchem backend on a small random eSEN checkpoint saved and loaded the way a user would."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.energy.fairchem_backend import FairChemEnergy, save_random_esen_checkpoint
from adjoint_sampling.energy.registry import build_energy


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_random_esen_checkpoint(tmp_path_factory.mktemp("fairchem") / "esen_tiny.pt", num_layers=2, channels=16)


@pytest.fixture(scope="module")
def model(checkpoint):
    return build_energy("fairchem", checkpoint_path=checkpoint, dtype="float64")


def test_checkpoint_is_a_fairchem_inference_checkpoint(checkpoint):
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert isinstance(saved, MLIPInferenceCheckpoint)
    assert saved.model_config["backbone"]["num_layers"] == 2
    assert {t["name"] for t in saved.tasks_config} == {"energy", "forces"}


def test_forces_are_minus_the_gradient(model, numerical_forces):
    parsed = parse_smiles("O")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0) + 0.05 * torch.randn(
        2, parsed.num_atoms, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    result = model.energy_and_forces(system, pos)
    assert result.ok.all() and result.energy.shape == (2,) and result.forces.shape == (2, parsed.num_atoms, 3)
    assert result.forces.abs().max() > 1e-3
    numeric = numerical_forces(model, system, pos, h=1e-4)
    assert torch.allclose(result.forces, numeric, atol=1e-5 + 1e-4 * result.forces.abs().max().item())


def test_energy_is_invariant_to_rigid_motion(model):
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    moved = pos @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    energies = model.energy(system, torch.stack([pos, moved]))
    # invariant up to the model's internal float32 constants (~1e-6 relative)
    assert energies[0].item() == pytest.approx(energies[1].item(), rel=1e-5, abs=1e-5)


def test_charge_and_spin_reach_the_model(model):
    anion = parse_smiles("CC(=O)[O-]")
    system = atomic_system(anion)
    data = model._atomic_data(system, local_structure(anion, 0).numpy())
    assert int(data.charge) == -1 and int(data.spin) == 1
    pos = local_structure(anion, 0)[None]
    e_anion = model.energy(system, pos).item()
    e_neutral = model.energy(dataclasses.replace(system, charge=0), pos).item()
    e_triplet = model.energy(dataclasses.replace(system, multiplicity=3), pos).item()
    assert e_anion != pytest.approx(e_neutral, abs=1e-6)
    assert e_anion != pytest.approx(e_triplet, abs=1e-6)


def test_batching_matches_single_conformers(model):
    parsed = parse_smiles("CO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0) + 0.05 * torch.randn(
        3, parsed.num_atoms, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    one_batch = model.energy_and_forces(system, pos)
    model.max_batch_size = 1
    try:
        small_batches = model.energy_and_forces(system, pos)
    finally:
        model.max_batch_size = 64
    assert torch.allclose(small_batches.energy, one_batch.energy, atol=1e-8)
    assert torch.allclose(small_batches.forces, one_batch.forces, atol=1e-8)


def test_loading_keeps_the_callers_random_stream(checkpoint):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FairChemEnergy(checkpoint)
    assert torch.equal(torch.rand(3), expected)


def test_non_finite_positions_fail_only_that_sample(model):
    parsed = parse_smiles("CO")
    pos = local_structure(parsed, 0).repeat(2, 1, 1)
    pos[1, 2, 0] = float("inf")
    result = model.energy_and_forces(atomic_system(parsed), pos)
    assert result.ok.tolist() == [True, False] and result.num_failed == 1


def test_bad_paths_and_options_are_typed_errors(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        FairChemEnergy(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        FairChemEnergy(garbage)
    with pytest.raises(ConfigError, match="task"):
        FairChemEnergy(checkpoint, task_name="omat")
    with pytest.raises(ConfigError):
        FairChemEnergy(checkpoint, dtype="float16")
