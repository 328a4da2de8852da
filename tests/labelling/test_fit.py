"""Supervised GNN fit on frames labelled here with GFN2-xTB: the loss goes down, the checkpoint
loads through the ``gnn`` backend, a finished run resumes where it stopped."""

from __future__ import annotations

import json

import pytest
import torch

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.labelling.fit import fit_config_from_dict, fit_potential

TINY_FIT = {
    "hparams": {"num_scalars": 8, "num_vectors": 4, "radial_hidden": 8, "cutoff": 4.0},
    "steps": 30, "molecules_per_step": 1, "conformers_per_molecule": 8, "learning_rate": 3e-2,
    "checkpoint_every": 10, "log_every": 1, "train_splits": ["train"], "validation_splits": ["validation"],
}


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fit_lowers_the_loss_and_the_checkpoint_loads_as_a_backend(data_file, tmp_path):
    run_dir = tmp_path / "run"
    path = fit_potential([data_file], fit_config_from_dict(TINY_FIT), run_dir)
    records = _metrics(run_dir)
    losses = [r["loss"] for r in records if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 31))
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert "validation_force_rmse" in records[-1]
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == [
        "step-0000010.pt", "step-0000020.pt", "step-0000030.pt"]

    backend = build_energy("gnn", checkpoint_path=path)
    assert backend.checkpoint.elements == (1, 6, 8) and backend.checkpoint.charge_range == (0, 0)
    assert backend.checkpoint.training_data["num_frames"] == 8
    parsed = parse_smiles("CCO")
    result = backend.energy_and_forces(atomic_system(parsed), rdkit_conformers(parsed.mol, 2, seed=5))
    assert result.ok.all()
    # the fitted element references put absolute energies near the xTB scale (~ -7000 kcal/mol)
    assert (result.energy < -1000).all()

    longer = fit_config_from_dict({**TINY_FIT, "steps": 30})
    fit_potential([data_file], longer, run_dir)  # finished: resumes at step 30 and does nothing
    assert len(_metrics(run_dir)) == 30
    with pytest.raises(ConfigError, match="different fit config"):
        fit_potential([data_file], fit_config_from_dict({**TINY_FIT, "steps": 40}), run_dir)


def test_fit_config_refuses_unknown_options():
    with pytest.raises(ConfigError, match="bogus"):
        fit_config_from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="no_such_hparam"):
        fit_config_from_dict({"hparams": {"no_such_hparam": 1}})


def test_low_energy_frames_weigh_more_when_asked():
    from adjoint_sampling.labelling.fit import MoleculeFrames, frame_weights

    mol = MoleculeFrames(mol_id="m", atomic_numbers=torch.tensor([8, 1, 1]), charge=0,
                         positions=torch.zeros(3, 3, 3, dtype=torch.float64),
                         energy=torch.tensor([-100.0, -90.0, -50.0], dtype=torch.float64),
                         forces=torch.zeros(3, 3, 3, dtype=torch.float64))
    idx = torch.arange(3)
    assert torch.equal(frame_weights(mol, idx, fit_config_from_dict({})), torch.ones(3, dtype=torch.float64))
    w = frame_weights(mol, idx, fit_config_from_dict({"low_energy_temperature": 10.0, "low_energy_floor": 0.2}))
    expected = 0.2 + 0.8 * torch.exp(-torch.tensor([0.0, 10.0, 50.0], dtype=torch.float64) / 10.0)
    assert torch.allclose(w, expected)
    with pytest.raises(ConfigError, match="low_energy"):
        fit_config_from_dict({"low_energy_floor": 0.0})
