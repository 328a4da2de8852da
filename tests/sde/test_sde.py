"""Euler-Maruyama integration: projections every step, torus wrapping, base marginal."""

import math

import pytest
import torch
from torch_geometric.utils import scatter

from adjoint_sampling.core.geometry import wrap_angle
from adjoint_sampling.sde.integrate import integrate
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace
from adjoint_sampling.sde.time_grids import time_grid

SCHED = GeometricSchedule(0.01, 2.0)


@pytest.mark.parametrize("grid_kind", ["uniform", "end_refined"])
def test_zero_com_preserved_every_step(grid_kind):
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])  # mixed sizes
    space = CenteredEuclideanSpace(batch, 3, 3)
    seen = []

    def control(t, x):  # a control with a large non-zero mean: projection must remove it
        seen.append(scatter(x, batch, dim=0, dim_size=3, reduce="mean").abs().max().item())
        return 3.0 * torch.sin(x) + 5.0

    x1 = integrate(control, space, SCHED, time_grid(40, grid_kind), torch.Generator().manual_seed(0))
    assert len(seen) == 40
    assert max(seen) < 1e-5
    assert scatter(x1, batch, dim=0, dim_size=3, reduce="mean").abs().max().item() < 1e-5
    assert x1.abs().max() > 0.01  # it did move


@pytest.mark.parametrize("grid_kind", ["uniform", "end_refined"])
def test_torus_states_stay_in_range(grid_kind):
    batch = torch.arange(50).repeat_interleave(3)
    space = TorusSpace(batch, 50)
    seen = []

    def control(t, x):
        seen.append((x.min().item(), x.max().item()))
        return torch.full_like(x, 7.0)  # strong drift: wraps many times

    x1 = integrate(control, space, SCHED, time_grid(30, grid_kind), torch.Generator().manual_seed(0))
    assert all(lo >= -math.pi and hi < math.pi for lo, hi in seen)
    assert x1.min() >= -math.pi and x1.max() < math.pi


def test_wrap_angle_edges():
    x = torch.tensor([-math.pi, math.pi, 3 * math.pi, -1e-9, 0.0, 7.0], dtype=torch.float64)
    w = wrap_angle(x)
    assert bool(((w >= -math.pi) & (w < math.pi)).all())
    assert torch.allclose(torch.cos(w), torch.cos(x)) and torch.allclose(torch.sin(w), torch.sin(x), atol=1e-12)
    assert float(w[1]) == pytest.approx(-math.pi)


def test_base_process_marginal_variance():
    """Zero control: per-coordinate variance of X_1 is (n-1)/n nu_1 (zero-CoM), 2% tolerance
    with 5,000 systems of 5 particles in 3D (standard error about 0.7%)."""
    n, b = 5, 5_000
    space = CenteredEuclideanSpace(torch.arange(b).repeat_interleave(n), b, 3)
    x1 = integrate(None, space, SCHED, time_grid(50, "end_refined"), torch.Generator().manual_seed(3))
    assert float(x1.var()) == pytest.approx((n - 1) / n * SCHED.nu1, rel=0.02)


def test_constant_control_shifts_mean_by_integral_of_sigma_squared():
    """On the torus-free line: dX = sigma^2 f dt + sigma dW with f = c gives E[X_1] = c nu_1."""
    b = 20_000
    space = TorusSpace(torch.arange(b), b, images=0)
    sched = GeometricSchedule(0.05, 0.5)  # small enough that wrapping never happens at 6 sigma
    x1 = integrate(lambda t, x: torch.full_like(x, 1.0), space, sched, time_grid(400), torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    assert float(x1.mean()) == pytest.approx(sched.nu1, rel=0.02)
    assert float(x1.var()) == pytest.approx(sched.nu1, rel=0.03)


def test_restart_from_a_given_state_adds_the_remaining_base_variance():
    """``x_start`` at ``grid[0] = t0``: zero control gives ``X_1 = x_start + N(0, nu_1 - nu_t0)``."""
    b, t0 = 20_000, 0.4
    space = TorusSpace(torch.arange(b), b, images=0)
    sched = GeometricSchedule(0.05, 0.5)
    start = torch.linspace(-1.0, 1.0, b, dtype=torch.float64).view(-1, 1)
    grid = torch.cat([torch.tensor([t0]), time_grid(100)[time_grid(100) > t0]])
    x1 = integrate(None, space, sched, grid, torch.Generator().manual_seed(1), dtype=torch.float64, x_start=start)
    remaining = sched.nu1 - float(sched.nu(torch.tensor(t0, dtype=torch.float64)))
    assert float((x1 - start).mean()) == pytest.approx(0.0, abs=4 * math.sqrt(remaining / b))
    assert float((x1 - start).var()) == pytest.approx(remaining, rel=0.03)


def test_quiet_final_steps_keep_the_path_and_drop_only_the_last_noise():
    """``quiet_steps = q``: the same random stream and path up to step K - q, then drift-only steps;
    with a linear control towards 0 the last step lands on the transition's mean."""
    from adjoint_sampling.sde.integrate import integrate_path

    b, steps = 64, 5
    space = TorusSpace(torch.arange(b), b, images=0)
    sched = GeometricSchedule(0.05, 0.5)
    grid = time_grid(steps)
    control = lambda t, x: -x
    noisy = integrate_path(control, space, sched, grid, torch.Generator().manual_seed(4), dtype=torch.float64)
    quiet = integrate(control, space, sched, grid, torch.Generator().manual_seed(4), dtype=torch.float64, quiet_steps=1)
    dnu = float(sched.nu(grid[-1:].double()) - sched.nu(grid[-2:-1].double()))
    assert torch.allclose(quiet, noisy[-2] - dnu * noisy[-2])
    assert not torch.allclose(quiet, noisy[-1])
    silent = integrate(None, space, sched, grid, torch.Generator().manual_seed(4), dtype=torch.float64, quiet_steps=steps)
    assert torch.equal(silent, torch.zeros_like(silent))


def test_quiet_steps_beyond_the_grid_are_refused():
    space = TorusSpace(torch.arange(2), 2, images=0)
    with pytest.raises(ValueError, match="quiet_steps"):
        integrate(None, space, SCHED, time_grid(3), torch.Generator().manual_seed(0), quiet_steps=4)


def test_a_known_start_control_replaces_the_first_call_only():
    """``start_control``: the first step uses it instead of calling the control (same random stream);
    given the control's own value at the start it changes nothing; a wrong shape is refused."""
    b = 16
    space = TorusSpace(torch.arange(b), b, images=0)
    grid = time_grid(4)
    calls: list[float] = []

    def control(t, x):
        calls.append(float(t[0]))
        return 0.3 - x

    plain = integrate(control, space, SCHED, grid, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert calls == [float(t) for t in grid[:-1]]
    calls.clear()
    start = torch.full((b, 1), 0.3, dtype=torch.float64)  # control(grid[0], X_0 = 0)
    known = integrate(control, space, SCHED, grid, torch.Generator().manual_seed(2), dtype=torch.float64,
                      start_control=start)
    assert calls == [float(t) for t in grid[1:-1]] and torch.equal(known, plain)
    other = integrate(control, space, SCHED, grid, torch.Generator().manual_seed(2), dtype=torch.float64,
                      start_control=-start)
    assert not torch.allclose(other, plain)
    with pytest.raises(ValueError, match="start_control"):
        integrate(control, space, SCHED, grid, torch.Generator().manual_seed(2), start_control=start[:3])
    with pytest.raises(ValueError, match="start_control"):
        integrate(None, space, SCHED, grid, torch.Generator().manual_seed(2), start_control=start)


def test_descent_along_a_gaussian_score_contracts_towards_its_mean():
    """With ``f(t, x) = -(x - m) / s2`` (the score of N(m, s2)), each step of size h multiplies the
    distance to m by (1 - h / s2), exactly; no step leaves x unchanged."""
    from adjoint_sampling.sde.integrate import descend

    b, m, s2, h = 16, 0.3, 0.04, 0.01
    space = TorusSpace(torch.arange(b), b, images=0)
    x = torch.linspace(-0.5, 0.5, b, dtype=torch.float64).view(-1, 1)
    score = lambda t, y: -(y - m) / s2
    out = descend(score, space, x, steps=3, step_size=h)
    assert torch.allclose(out - m, (1 - h / s2) ** 3 * (x - m))
    assert torch.equal(descend(score, space, x, steps=0, step_size=h), x)
    with pytest.raises(ValueError, match="descent"):
        descend(score, space, x, steps=-1, step_size=h)
