"""Torsional clash repair: it finds exactly the conformers the structure check refuses, repairs them
with torsion changes only, leaves passing ones untouched, and commutes with rigid motions."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from molecular_helpers import random_torsion_conformers
from rdkit import Chem

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.clash_repair import ClashRepair
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.torsions import find_torsions

FLEXIBLE = "CCCCCCC(=O)NCCCCOCCCC(=O)O"  # long chains: random torsions often fold onto themselves


@pytest.fixture(scope="module")
def random_conformers():
    parsed, topology, pos = random_torsion_conformers(FLEXIBLE, 400)
    return parsed.mol, topology, pos


def _failing(mol: Chem.Mol, pos: torch.Tensor) -> np.ndarray:
    return np.array([not c.ok for c in check_conformers(mol, pos.numpy())])


def _distance_matrix(pos: torch.Tensor) -> torch.Tensor:
    return (pos[:, :, None] - pos[:, None, :]).norm(dim=-1)


def test_failing_agrees_with_the_structure_check(random_conformers):
    mol, topology, pos = random_conformers
    expected = _failing(mol, pos)
    assert 10 <= expected.sum() < len(expected)  # the fixture has both kinds
    assert np.array_equal(ClashRepair(mol, topology).failing(pos).numpy(), expected)


def test_repair_fixes_failing_conformers_by_torsions_only(random_conformers):
    mol, topology, pos = random_conformers
    before = _failing(mol, pos)
    repair = ClashRepair(mol, topology)
    repaired, still = repair.repair(pos, max_steps=30)
    after = _failing(mol, repaired)
    assert np.array_equal(still.numpy(), after)
    assert after.sum() <= 0.05 * before.sum()
    # they are not left at the check's limit: the wall lies beyond it, and they move on towards it
    assert (repair.wall > repair.check_limit).all()
    fixed = repaired[torch.from_numpy(before & ~after)]
    i, j = repair.pairs[:, 0], repair.pairs[:, 1]
    margin = ((fixed[:, i] - fixed[:, j]).norm(dim=-1) / repair.check_limit).amin(dim=1)
    assert (margin > 1.05).float().mean() > 0.9
    # passing conformers are returned bit for bit
    assert torch.equal(repaired[torch.from_numpy(~before)], pos[torch.from_numpy(~before)])
    # the repaired ones moved, and only through torsions: every 1-2 and 1-3 distance is kept
    assert (repaired[torch.from_numpy(before)] - pos[torch.from_numpy(before)]).abs().amax(dim=(1, 2)).min() > 0
    close = torch.from_numpy(Chem.GetDistanceMatrix(mol) <= 2)
    assert torch.allclose(_distance_matrix(repaired)[:, close], _distance_matrix(pos)[:, close], atol=1e-9)


def test_zero_steps_changes_nothing(random_conformers):
    mol, topology, pos = random_conformers
    repaired, still = ClashRepair(mol, topology).repair(pos, max_steps=0)
    assert torch.equal(repaired, pos) and np.array_equal(still.numpy(), _failing(mol, pos))


def test_repair_commutes_with_rotation_and_translation(random_conformers):
    mol, topology, pos = random_conformers
    bad = pos[torch.from_numpy(_failing(mol, pos))][:8]
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    shift = torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)
    repair = ClashRepair(mol, topology)
    moved_then_repaired, _ = repair.repair(bad @ q.T + shift, max_steps=10)
    repaired_then_moved = repair.repair(bad, max_steps=10)[0] @ q.T + shift
    assert torch.allclose(moved_then_repaired, repaired_then_moved, atol=1e-8)


def test_forces_are_minus_the_gradient_of_the_repulsion(random_conformers):
    mol, topology, pos = random_conformers
    repair = ClashRepair(mol, topology)
    x = pos[torch.from_numpy(_failing(mol, pos))][:4].clone().requires_grad_(True)
    i, j = repair.pairs[:, 0], repair.pairs[:, 1]
    energy = ((repair.wall - (x[:, i] - x[:, j]).norm(dim=-1)).clamp_min(0.0) ** 2).sum()
    (grad,) = torch.autograd.grad(energy, x)
    forces = repair.forces(x.detach())
    assert forces.abs().max() > 0
    assert torch.allclose(forces, -grad, atol=1e-10)


def test_rigid_molecule_has_nothing_to_repair():
    parsed = parse_smiles("c1ccccc1O")
    topology = find_torsions(parsed.mol)
    pos = local_structure(parsed, seed=0).to(torch.float64)[None]
    repair = ClashRepair(parsed.mol, topology)
    assert len(repair.pairs) == 0 and not repair.failing(pos).any()
    assert torch.equal(repair.repair(pos, max_steps=5)[0], pos)
