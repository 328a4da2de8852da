"""Every model checkpoint committed to the repository still loads and rebuilds its controller
(the shipped model, the archived ones, the synthetic benchmark's), and every GNN potential its
network, whatever moved in the code."""

from __future__ import annotations

import pytest
import torch

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.energy.gnn import load_gnn_checkpoint
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential
from adjoint_sampling.labelling.fit import fit_config_from_dict
from adjoint_sampling.models.checkpoint import load_model_checkpoint

ENERGY_DIRS = ("models/archive/energy/",)
GNN_CHECKPOINTS = sorted([REPO_ROOT / "models" / "shipped" / "energy.pt", *(REPO_ROOT / "models" / "archive" / "energy").rglob("gnn.pt")])
CHECKPOINTS = sorted(
    p for p in [*(REPO_ROOT / "models").rglob("*.pt"), *(REPO_ROOT / "benchmarks" / "synthetic" / "models").rglob("*.pt")]
    if p not in GNN_CHECKPOINTS and not p.relative_to(REPO_ROOT).as_posix().startswith(ENERGY_DIRS)
    and "train_state" not in p.parts
)
SAMPLER_RUNS = sorted(
    p.parent.parent
    for folder in (REPO_ROOT / "models" / "archive", REPO_ROOT / "benchmarks" / "synthetic" / "models" / "in_progress")
    for p in folder.glob("*/train_state/latest.json")
)


def test_the_shipped_and_archived_models_are_found():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in CHECKPOINTS}
    assert "models/shipped/default.pt" in names
    assert any(name.startswith("models/archive/") for name in names)
    assert "benchmarks/synthetic/models/dw4.pt" in names


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_committed_checkpoint_loads_and_rebuilds_its_controller(path):
    checkpoint = load_model_checkpoint(path)
    controller = checkpoint.build_controller()
    weights = controller.state_dict()
    assert weights.keys() == checkpoint.state_dict.keys()
    assert all(torch.equal(weights[k], checkpoint.state_dict[k]) for k in weights)
    assert len(checkpoint.time_grid()) == checkpoint.sde_steps + 1
    if checkpoint.kind == "adjoint_matching":  # its frozen flow travels with it
        base = checkpoint.build_base_velocity().state_dict()
        assert all(torch.equal(base[k], checkpoint.base["state_dict"][k]) for k in base)


@pytest.mark.parametrize("path", GNN_CHECKPOINTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_committed_gnn_potential_loads_and_rebuilds_its_network(path):
    checkpoint = load_gnn_checkpoint(path)
    model = checkpoint.build_model()
    weights = model.state_dict()
    assert weights.keys() == checkpoint.state_dict.keys()
    assert all(torch.equal(weights[k], checkpoint.state_dict[k]) for k in weights)
    assert checkpoint.training_data["level_of_theory"] == "GFN2-xTB (tblite)"


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "models" / "archive" / "energy").rglob("train_state.pt")),
                         ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_committed_gnn_train_states_resume_their_configs(path):
    """The archived fit states resume: their config parses and their weights fit its architecture."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = fit_config_from_dict(state["config"])
    GNNPotential(GNNHParams.from_dict(config.hparams)).load_state_dict(state["model"])
    assert 0 < state["step"] <= config.steps


@pytest.mark.parametrize("run_dir", SAMPLER_RUNS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_archived_sampler_runs_can_resume(run_dir):
    """An archived training run (copied back to a run directory, it resumes): its latest state is
    complete (finished, or stopped part-way to be continued), its config parses, and the saved
    controller weights fit the controller that config builds."""
    import json

    from adjoint_sampling.training.config import load_job_config

    tag = json.loads((run_dir / "train_state" / "latest.json").read_text())["tag"]
    shared = torch.load(run_dir / "train_state" / tag / "shared.pt", map_location="cpu", weights_only=False)
    rank0 = torch.load(run_dir / "train_state" / tag / "rank0.pt", map_location="cpu", weights_only=False)
    config = load_job_config(run_dir / "config.yaml")
    assert 0 < shared["counters"]["iteration"] <= config.trainer.iterations and len(rank0["buffer"]) > 0
    trained = load_model_checkpoint(run_dir / "model.pt")
    controller = trained.build_controller()
    controller.load_state_dict(shared["controller"])
    assert config.controller.name == trained.controller_name
    assert shared["counters"]["iteration"] == trained.counters["iteration"]  # model.pt is the state's
