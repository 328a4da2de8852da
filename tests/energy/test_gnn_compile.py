"""Compiled e3nn code (energy.gnn_compile): the same energies and forces as the eager network,
other batch sizes without trouble, and the eager graph when compiling fails."""

from __future__ import annotations

import logging

import pytest
import torch

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy import gnn_compile
from adjoint_sampling.energy.gnn import COMPILE_ENV, GNNCheckpoint, GNNEnergy
from adjoint_sampling.energy.gnn_compile import CompiledOrEager
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential

HP = GNNHParams(num_scalars=8, num_vectors=4, num_layers=2, radial_hidden=8)


def _checkpoint() -> GNNCheckpoint:
    torch.manual_seed(0)
    model = GNNPotential(HP)
    model.energy_scale.fill_(3.0)
    return GNNCheckpoint(hparams=HP, state_dict=model.state_dict(), elements=HP.elements,
                         charge_range=(HP.min_charge, HP.max_charge))


@pytest.fixture(scope="module")
def molecule():
    parsed = parse_smiles("OCC(N)C(=O)Cl")
    return atomic_system(parsed), rdkit_conformers(parsed.mol, 5, seed=1)


def test_compiled_backend_matches_the_eager_one_at_any_batch_size(molecule):
    system, pos = molecule
    eager = GNNEnergy(checkpoint=_checkpoint(), compiled=False)
    fast = GNNEnergy(checkpoint=_checkpoint(), compiled=True)
    assert fast.compiled and not eager.compiled
    wrapped = [m for m in fast.model.modules() if isinstance(m, CompiledOrEager)]
    assert len(wrapped) >= 2 * HP.num_layers  # every interaction's tensor product and linear maps
    for count in (5, 3, 2):  # dynamic shapes: other batch sizes and edge counts
        a, b = eager.energy_and_forces(system, pos[:count]), fast.energy_and_forces(system, pos[:count])
        assert b.ok.all() and b.forces.abs().max() > 1e-3
        assert torch.allclose(a.energy, b.energy, atol=1e-4, rtol=1e-5)
        assert torch.allclose(a.forces, b.forces, atol=1e-4, rtol=1e-4)
    # the compiled path ran, not the fallback (a gate without gated fields never calls its product)
    assert sum(m.proven for m in wrapped) >= HP.num_layers and all(m._compiled for m in wrapped)


def test_compiler_failure_falls_back_to_the_eager_graph_with_one_warning(molecule, monkeypatch, caplog):
    system, pos = molecule

    def broken_compile(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler\nsecond line")
        return fail

    monkeypatch.setattr(gnn_compile.torch, "compile", broken_compile)
    fast = GNNEnergy(checkpoint=_checkpoint(), compiled=True)
    eager = GNNEnergy(checkpoint=_checkpoint(), compiled=False)
    with caplog.at_level(logging.WARNING, logger="adjoint_sampling.energy.gnn_compile"):
        first = fast.energy_and_forces(system, pos[:2])
        again = fast.energy_and_forces(system, pos[:2])
    expected = eager.energy_and_forces(system, pos[:2])
    assert torch.allclose(first.energy, expected.energy) and torch.allclose(again.forces, expected.forces)
    failures = [r for r in caplog.records if "torch.compile of GNN e3nn code failed" in r.getMessage()]
    fell_back = sum(isinstance(m, CompiledOrEager) and not m._compiled for m in fast.model.modules())
    assert len(failures) == fell_back >= HP.num_layers  # once per tensor product called, not once per call
    assert all("second line" not in r.getMessage() for r in failures)


def test_environment_switch(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert GNNEnergy(checkpoint=_checkpoint()).compiled
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert not GNNEnergy(checkpoint=_checkpoint()).compiled
    assert GNNEnergy(checkpoint=_checkpoint(), compiled=True).compiled  # an explicit choice wins


def test_warm_up_compiles_before_the_first_real_call(molecule, tmp_path, monkeypatch):
    """``warm_up`` runs the compiled path on a tiny molecule; the model loader does it when compiling,
    so that a service compiles at start-up, not in its first request."""
    from adjoint_sampling.energy.gnn import save_gnn_checkpoint
    from adjoint_sampling.generation.shipped import load_energy_model

    system, pos = molecule
    fast = GNNEnergy(checkpoint=_checkpoint(), compiled=True)
    fast.warm_up()
    wrapped = [m for m in fast.model.modules() if isinstance(m, CompiledOrEager)]
    assert sum(m.proven for m in wrapped) >= HP.num_layers
    eager = GNNEnergy(checkpoint=_checkpoint(), compiled=False)
    assert torch.allclose(fast.energy_and_forces(system, pos).forces, eager.energy_and_forces(system, pos).forces,
                          atol=1e-4, rtol=1e-4)
    torch.manual_seed(0)
    path = tmp_path / "gnn.pt"
    save_gnn_checkpoint(path, GNNPotential(HP))
    monkeypatch.setenv(COMPILE_ENV, "1")
    loaded = load_energy_model(path)
    assert loaded.compiled and any(m.proven for m in loaded.model.modules() if isinstance(m, CompiledOrEager))
