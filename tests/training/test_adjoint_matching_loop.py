"""Adjoint Matching's training loop: flow-matching pre-training learns a known flow, and the settings
refuse what cannot run (the fine-tuning itself is checked against closed forms in
tests/method/test_adjoint_matching.py)."""

from __future__ import annotations

import pytest
import torch
from gaussian_flow_helpers import GaussianFlow, TimeMLP

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.flow_matching import flow_matching_loss
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, EuclideanSpace
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    FlowMatchingSettings,
    fine_tune,
    pretrain_flow,
    sample_fine_tuned,
)

F64 = torch.float64
FLOW = GaussianFlow(torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64))


def _batch(n: int) -> SystemBatch:
    return SystemBatch([0] * n, EuclideanSpace(torch.arange(n), n, 2))


def test_the_exact_velocity_minimises_the_flow_matching_loss():
    """Same draws of t and X_0 for every candidate: the flow's velocity field beats shifted or scaled ones."""
    x1 = FLOW.mean + torch.randn(50_000, 2, generator=torch.Generator().manual_seed(0), dtype=F64) @ torch.linalg.cholesky(FLOW.cov).T
    space = EuclideanSpace(torch.arange(50_000), 50_000, 2)

    def loss(v) -> float:
        return float(flow_matching_loss(v, x1, space, torch.Generator().manual_seed(1)))

    exact = loss(FLOW.velocity)
    for wrong in (lambda t, x: FLOW.velocity(t, x) + 0.2, lambda t, x: 1.2 * FLOW.velocity(t, x), lambda t, x: x1 * 0 + FLOW.mean):
        assert loss(wrong) > exact + 0.01


def test_flow_matching_on_samples_learns_their_gaussian():
    """An MLP trained by flow matching on 4,000 draws of N(m, S) (1,500 steps); its memoryless SDE then
    draws 20,000 samples whose mean and covariance match m and S (tolerance 0.06: the flow's fit,
    the Euler chain's bias of about 0.013 at 100 steps and 4 standard errors of 0.005)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    data = FLOW.mean + torch.randn(4000, 1, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(FLOW.cov).T
    velocity = TimeMLP(2, hidden=64).double()
    losses = pretrain_flow(velocity, data, _batch, FlowMatchingSettings(steps=1500, batch_size=256, lr=1e-2, lr_final=1e-3))
    assert len(losses) == 1500 and sum(losses[-100:]) < sum(losses[:100])
    settings = AdjointMatchingSettings(sde_steps=100)
    task = FineTuneTask.of_one_system(_batch, velocity, lambda n, g: FLOW.sample_marginal(settings.t_start, n, g), lambda x, b: 0 * x)
    x = sample_fine_tuned(None, task, 20_000, settings, torch.Generator().manual_seed(4))
    assert torch.allclose(x.mean(0), FLOW.mean, atol=0.06), x.mean(0)
    assert torch.allclose(torch.cov(x.T), FLOW.cov, atol=0.06), torch.cov(x.T)


def test_flow_matching_on_a_centred_space_keeps_the_centre_of_mass_at_zero():
    space = CenteredEuclideanSpace(torch.tensor([0, 0, 0, 1, 1, 1]), 2, 3)
    x1 = space.project_state(torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    seen = []

    def velocity(t, x):
        seen.append(x)
        return torch.zeros_like(x)

    flow_matching_loss(velocity, x1, space, torch.Generator().manual_seed(1))
    for system in (seen[0][:3], seen[0][3:]):
        assert torch.allclose(system.mean(0), torch.zeros(3, dtype=F64), atol=1e-12)


def test_each_batch_of_paths_serves_grad_steps_per_batch_steps():
    """6 gradient steps, 3 per batch of paths: two batches are drawn (and two terminal rewards evaluated)."""
    starts, rewards = [], []
    task = FineTuneTask.of_one_system(
        _batch, lambda t, x, batch: FLOW.velocity(t, x),
        lambda n, g: starts.append(n) or FLOW.sample_marginal(1e-3, n, g),
        lambda x, b: rewards.append(x.shape) or torch.ones_like(x),
    )
    settings = AdjointMatchingSettings(iterations=6, grad_steps_per_batch=3, batch_size=5, sde_steps=10,
                                       times_per_iteration=4)
    losses = fine_tune(TimeMLP(2, hidden=64).double(), task, settings)
    assert len(losses) == 6 and starts == [5, 5] and rewards == [(5, 2), (5, 2)]


def test_sigma_sq_weighting_scales_the_early_times_up():
    """The same paths and control (same seeds) give a larger loss weighted by sigma^2, which is far
    above 1 near t_start on the memoryless schedule (2 (1 - t) / t)."""
    task = FineTuneTask.of_one_system(_batch, lambda t, x, batch: FLOW.velocity(t, x), lambda n, g: FLOW.sample_marginal(1e-3, n, g),
                        lambda x, b: torch.ones_like(x))
    losses = {}
    for weight in ("none", "sigma_sq"):
        torch.manual_seed(0)
        settings = AdjointMatchingSettings(iterations=1, batch_size=8, sde_steps=10, lr=0.0, lr_final=0.0,
                                           loss_weight=weight)
        losses[weight] = fine_tune(TimeMLP(2, hidden=64).double(), task, settings)[0]
    assert losses["sigma_sq"] > 2 * losses["none"] > 0


@pytest.mark.parametrize("bad", [{"times_per_iteration": 0}, {"times_per_iteration": 101}, {"batch_size": 0},
                                 {"sde_steps": 0}, {"grad_steps_per_batch": 0},
                                 {"loss_weight": "uniform"}])
def test_settings_refuse_what_cannot_run(bad):
    with pytest.raises(ConfigError):
        AdjointMatchingSettings(**bad)
