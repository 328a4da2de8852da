"""Drawing from a flow and its fine-tuned control: the memoryless SDE and the ODE give the same
marginals (the ODE of the exact velocity maps N(0, I) onto the data's Gaussian; with the exact optimal
control of the two-mode check, both reach the tilted mode share), and torus batches are integrated
on R^m and wrapped at the end."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_flow_helpers import GaussianFlow

from adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture import (
    TILTED_RIGHT_SHARE,
    exact_control,
    mixture_velocity,
)
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.flow_sampling import flow_batch, sample_flow
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.schedules import MemorylessSchedule
from adjoint_sampling.sde.spaces import EuclideanSpace, TorusSpace
from adjoint_sampling.sde.time_grids import time_grid

F64 = torch.float64
FLOW = GaussianFlow(torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64))
SCHEDULE = MemorylessSchedule(1e-3)


def _batch(n: int, dim: int) -> SystemBatch:
    return SystemBatch([0] * n, EuclideanSpace(torch.arange(n), n, dim))


def test_the_ode_of_the_exact_velocity_maps_noise_onto_the_data_gaussian():
    """20,000 draws, 200 uniform Euler steps: mean and covariance within 0.03 (Euler bias about 0.01,
    4 standard errors about 0.01)."""
    grid = time_grid(200, "uniform", start=SCHEDULE.t_start)
    x = sample_flow(lambda t, x, b: FLOW.velocity(t, x), None, _batch(20_000, 2), SCHEDULE, grid,
                    torch.Generator().manual_seed(0), F64, solver="ode")
    assert torch.allclose(x.mean(0), FLOW.mean, atol=0.03), x.mean(0)
    assert torch.allclose(torch.cov(x.T), FLOW.cov, atol=0.03), torch.cov(x.T)


@pytest.mark.parametrize(("solver", "steps", "grid_kind"), [("ode", 100, "uniform"), ("sde", 100, "start_refined")])
def test_the_exact_optimal_control_tilts_the_mixture_with_either_solver(solver, steps, grid_kind):
    """The fine-tuned velocity ``v + sigma^2 f* / 2`` (ODE) and the SDE with drift ``b + sigma^2 f*`` both move
    the right mode's share from 0.5 to 0.982 (20,000 draws; 4 standard errors 0.004)."""
    grid = time_grid(steps, grid_kind, start=SCHEDULE.t_start)
    x = sample_flow(lambda t, x, b: mixture_velocity(t, x), lambda t, x, b: exact_control(t, x), _batch(20_000, 1),
                    SCHEDULE, grid, torch.Generator().manual_seed(1), F64, solver=solver)
    assert float((x > 0).double().mean()) == pytest.approx(TILTED_RIGHT_SHARE, abs=0.008)


def test_a_torus_batch_is_integrated_on_the_line_and_wrapped_at_the_end():
    torus = SystemBatch([0, 1], TorusSpace(torch.tensor([0, 0, 1]), 2), context="ctx")
    flat = flow_batch(torus)
    assert isinstance(flat.space, EuclideanSpace) and flat.context == "ctx" and torch.equal(flat.space.batch,
                                                                                          torus.space.batch)
    seen = []

    def far_velocity(t, x, batch):
        seen.append(batch.space)
        return torch.full_like(x, 10.0)  # carries every torsion well past pi on the line

    grid = time_grid(10, "uniform", start=SCHEDULE.t_start)
    x = sample_flow(far_velocity, None, torus, SCHEDULE, grid, torch.Generator().manual_seed(0), F64, solver="ode")
    assert all(isinstance(space, EuclideanSpace) for space in seen)
    assert x.abs().max() <= math.pi and x.shape == (3, 1)
    with pytest.raises(ConfigError, match="flow solver"):
        sample_flow(far_velocity, None, torus, SCHEDULE, grid, None, F64, solver="heun")
