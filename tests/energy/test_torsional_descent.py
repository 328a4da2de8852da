"""Torsional descent on an energy backend: it lowers the energy and never raises it, moves atoms
only through torsions, matches a finite-difference torsion gradient, is invariant under rigid
motions of its input, and leaves conformers the backend cannot evaluate as they were."""

from __future__ import annotations

import math

import pytest
import torch
from molecular_helpers import random_torsion_conformers
from rdkit import Chem

from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.torsions import dihedral_angles, find_torsions, set_torsions, torsion_gradient
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.torsional_descent import torsional_descent

SMILES = "CCCCOC(=O)c1ccccc1NC(=O)CCC"


@pytest.fixture(scope="module")
def case():
    parsed, topology, pos = random_torsion_conformers(SMILES, 24)
    return parsed, atomic_system(parsed), topology, pos


def _distance_matrix(pos: torch.Tensor) -> torch.Tensor:
    return (pos[:, :, None] - pos[:, None, :]).norm(dim=-1)


def test_descent_lowers_energy_monotonically_through_torsions_only(case):
    parsed, system, topology, pos = case
    model = MMFFEnergy()
    out = torsional_descent(model, system, pos, topology, steps=10, step_size=0.01)
    start = model.energy_and_forces(system, pos).energy
    end = model.energy_and_forces(system, out.positions).energy
    assert torch.allclose(out.initial_energy, start) and torch.allclose(out.energy, end)
    assert (end <= start).all()
    assert float((start - end).median()) > 1.0  # random torsions leave a lot to gain
    assert (out.accepted_steps > 0).float().mean() > 0.9 and int(out.accepted_steps.max()) <= 10
    # a longer descent is at least as low, conformer by conformer
    longer = torsional_descent(model, system, pos, topology, steps=20, step_size=0.01)
    assert (longer.energy <= out.energy + 1e-9).all()
    # only torsions moved: every 1-2 and 1-3 distance is kept
    close = torch.from_numpy(Chem.GetDistanceMatrix(parsed.mol) <= 2)
    assert torch.allclose(_distance_matrix(out.positions)[:, close], _distance_matrix(pos)[:, close], atol=1e-9)


def test_zero_steps_and_no_torsions_change_nothing(case):
    _, system, topology, pos = case
    out = torsional_descent(MMFFEnergy(), system, pos, topology, steps=0, step_size=0.01)
    assert torch.equal(out.positions, pos) and (out.accepted_steps == 0).all()
    benzene = parse_smiles("c1ccccc1")
    flat = local_structure(benzene, seed=0).to(torch.float64)[None]
    rigid = torsional_descent(MMFFEnergy(), atomic_system(benzene), flat, find_torsions(benzene.mol), 5, 0.01)
    assert torch.equal(rigid.positions, flat)


def test_torsion_gradient_of_the_backend_matches_finite_differences(case):
    """The descent's direction: dE/dtheta from the backend's forces against central differences."""
    _, system, topology, pos = case
    model = MMFFEnergy()
    x = pos[:2]
    grad = torsion_gradient(x, model.energy_and_forces(system, x).forces, topology)
    h = 1e-5
    for k in range(topology.num_torsions):
        delta = torch.zeros(topology.num_torsions, dtype=torch.float64)
        delta[k] = h
        angles = dihedral_angles(x, topology.torsion_atoms)
        up = model.energy_and_forces(system, set_torsions(x, topology, angles + delta)).energy
        down = model.energy_and_forces(system, set_torsions(x, topology, angles - delta)).energy
        assert torch.allclose((up - down) / (2 * h), grad[:, k], atol=1e-3, rtol=1e-4)


def test_descent_commutes_with_rotation_and_translation(case):
    _, system, topology, pos = case
    model = MMFFEnergy()
    x = pos[:6]
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    shift = torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)
    moved = torsional_descent(model, system, x @ q.T + shift, topology, steps=6, step_size=0.01)
    plain = torsional_descent(model, system, x, topology, steps=6, step_size=0.01)
    assert torch.allclose(moved.positions, plain.positions @ q.T + shift, atol=1e-6)
    assert torch.allclose(moved.energy, plain.energy, atol=1e-6)


class _FailsFarAway(EnergyModel):
    """MMFF94, except that conformers placed beyond x = 1000 A fail (as a backend's failed SCF would)."""

    name = "fails_far_away"

    def __init__(self) -> None:
        self.inner = MMFFEnergy()

    def energy_and_forces(self, system, positions) -> EnergyResult:
        result = self.inner.energy_and_forces(system, positions)
        ok = result.ok & (positions[:, 0, 0] < 1000.0)
        return EnergyResult(energy=result.energy, forces=result.forces, ok=ok, failure_reasons=("failed",))


def test_a_conformer_the_backend_cannot_evaluate_stays_as_it_was(case):
    _, system, topology, pos = case
    x = pos[:4].clone()
    x[0] += 5000.0
    out = torsional_descent(_FailsFarAway(), system, x, topology, steps=5, step_size=0.01)
    assert torch.equal(out.positions[0], x[0]) and math.isnan(float(out.energy[0]))
    assert out.accepted_steps[0] == 0 and (out.accepted_steps[1:] > 0).all()


class _CountingMMFF(MMFFEnergy):
    """MMFF94 that counts the conformers it evaluates."""

    evaluated = 0

    def energy_and_forces(self, system, positions) -> EnergyResult:
        self.evaluated += positions.shape[0]
        return super().energy_and_forces(system, positions)


def test_a_tolerance_stops_converged_conformers_early(case):
    """With a tolerance, a conformer stops after a kept step that gained less: fewer evaluations,
    the same path until then (so never lower than without it), and an energy close to it."""
    _, system, topology, pos = case
    full, early = _CountingMMFF(), _CountingMMFF()
    out_full = torsional_descent(full, system, pos, topology, steps=40, step_size=0.01)
    out_early = torsional_descent(early, system, pos, topology, steps=40, step_size=0.01, tolerance=0.05)
    assert early.evaluated < 0.8 * full.evaluated
    assert (out_early.accepted_steps <= out_full.accepted_steps).all()
    assert (out_early.accepted_steps < out_full.accepted_steps).any()
    assert (out_early.energy >= out_full.energy - 1e-9).all() and (out_early.energy <= out_early.initial_energy).all()
    gain_full = out_full.initial_energy - out_full.energy
    assert float((out_early.initial_energy - out_early.energy).sum()) > 0.9 * float(gain_full.sum())


@pytest.mark.parametrize("steps, size, rotation, tolerance",
                         [(-1, 0.01, 0.3, 0.0), (3, 0.0, 0.3, 0.0), (3, 0.01, 0.0, 0.0), (3, 0.01, 0.3, -0.1)])
def test_bad_settings_are_refused(case, steps, size, rotation, tolerance):
    _, system, topology, pos = case
    with pytest.raises(ConfigError, match="torsional descent"):
        torsional_descent(MMFFEnergy(), system, pos, topology, steps=steps, step_size=size, max_rotation=rotation,
                          tolerance=tolerance)
