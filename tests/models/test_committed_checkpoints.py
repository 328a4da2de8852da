"""Every model checkpoint committed to the repository still loads and rebuilds its controller
(the shipped model, the archived ones, the synthetic benchmark's), whatever moved in the code."""

from __future__ import annotations

import pytest
import torch

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.models.checkpoint import load_model_checkpoint

CHECKPOINTS = sorted(
    [*(REPO_ROOT / "models").rglob("*.pt"), *(REPO_ROOT / "benchmarks" / "synthetic" / "models").rglob("*.pt")]
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
