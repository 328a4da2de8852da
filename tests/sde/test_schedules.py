"""Noise schedules, the base bridge and time grids."""

import math

import pytest
import torch
from scipy.integrate import quad

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.sde.integrate import integrate
from adjoint_sampling.sde.schedules import GeometricSchedule, LinearSchedule, build_schedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace
from adjoint_sampling.sde.time_grids import time_grid

SCHEDULES = [GeometricSchedule(0.01, 3.0), GeometricSchedule(1e-3, 1.0), LinearSchedule(2.0, 0.1), LinearSchedule(1.0, 1.0)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s.kind}{s.params()}")
def test_nu_is_the_integral_of_sigma_squared(schedule):
    for t in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        numeric, _ = quad(lambda s: float(schedule.sigma(torch.tensor(s, dtype=torch.float64))) ** 2, 0.0, t,
                          epsabs=1e-12, epsrel=1e-10)
        closed = float(schedule.nu(torch.tensor(t, dtype=torch.float64)))
        assert closed == pytest.approx(numeric, rel=1e-8, abs=1e-12)


def test_geometric_formula_values():
    s = GeometricSchedule(0.01, 3.0)
    r = 300.0
    assert float(s.sigma(torch.tensor(0.0))) == pytest.approx(3.0 * math.sqrt(2 * math.log(r)), rel=1e-6)
    assert float(s.sigma(torch.tensor(1.0))) == pytest.approx(0.01 * math.sqrt(2 * math.log(r)), rel=1e-6)
    assert s.nu1 == pytest.approx(3.0**2 - 0.01**2, rel=1e-12)


def test_build_schedule_rejects_bad_input():
    assert isinstance(build_schedule("geometric", sigma_min=0.1, sigma_max=1.0), GeometricSchedule)
    with pytest.raises(ConfigError, match="unknown noise schedule 'cosine'"):
        build_schedule("cosine")
    with pytest.raises(ConfigError, match="sigma_min < sigma_max"):
        build_schedule("geometric", sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ConfigError, match="bad parameters"):
        build_schedule("linear", sigma=1.0)


def test_bridge_returns_x1_at_t1():
    sched = GeometricSchedule(0.01, 2.0)
    gen = torch.Generator().manual_seed(0)
    batch = torch.arange(3).repeat_interleave(5)
    space = CenteredEuclideanSpace(batch, 3, 3)
    x1 = space.project_state(torch.randn(15, 3, generator=gen, dtype=torch.float64))
    xt = space.sample_bridge(x1, torch.ones(3, dtype=torch.float64), sched, gen)
    assert torch.allclose(xt, x1, atol=1e-12)
    torus = TorusSpace(batch, 3)
    a1 = torus.project_state(torch.randn(15, 1, generator=gen, dtype=torch.float64) * 3)
    assert torch.allclose(torus.sample_bridge(a1, torch.ones(3, dtype=torch.float64), sched, gen), a1, atol=1e-9)
    # and starts at 0 at t = 0
    assert torch.allclose(space.sample_bridge(x1, torch.zeros(3, dtype=torch.float64), sched, gen),
                          torch.zeros_like(x1), atol=1e-12)


def test_bridge_matches_base_process_conditioned_on_x1():
    """Simulate the base SDE forward (Euler-Maruyama, 100 steps) for 8,000 systems of n = 4
    particles in 2D, record X_t and X_1, and regress X_t on X_1 (Gaussian conditioning):
    slope must be nu_t / nu_1 and residual variance (n-1)/n * nu_t (nu_1 - nu_t) / nu_1 (the
    (n-1)/n is the zero-CoM projection). Tolerance: 3% (about 5 standard errors). The bridge
    sampler's own empirical moments for a fixed X_1 must match the same numbers."""
    torch.manual_seed(0)
    sched = GeometricSchedule(0.05, 2.0)
    n, b, d = 4, 8_000, 2
    batch = torch.arange(b).repeat_interleave(n)
    space = CenteredEuclideanSpace(batch, b, d)
    gen = torch.Generator().manual_seed(1)
    grid = time_grid(100)
    k_t = 40
    t = float(grid[k_t])
    xt_store = {}

    def record(tt, x):
        if abs(float(tt[0]) - t) < 1e-12:
            xt_store["x"] = x.clone()
        return torch.zeros_like(x)

    x1 = integrate(record, space, sched, grid, gen, dtype=torch.float64)
    xt = xt_store["x"]
    nu_t, nu1 = float(sched.nu(torch.tensor(t, dtype=torch.float64))), sched.nu1
    slope = float((xt * x1).sum() / (x1 * x1).sum())
    resid_var = float((xt - slope * x1).pow(2).mean())
    expected_var = (n - 1) / n * nu_t * (nu1 - nu_t) / nu1
    assert slope == pytest.approx(nu_t / nu1, rel=0.03)
    assert resid_var == pytest.approx(expected_var, rel=0.03)

    # bridge sampler for one fixed X_1 repeated b times
    one = torch.randn(n, d, generator=gen, dtype=torch.float64)
    fixed = (one - one.mean(0)).repeat(b, 1)
    bridge = space.sample_bridge(fixed, torch.full((b,), t, dtype=torch.float64), sched, gen)
    mean = bridge.view(b, n, d).mean(0)
    assert torch.allclose(mean, fixed[:n] * nu_t / nu1, atol=4 * math.sqrt(expected_var / b))
    assert float(bridge.view(b, n, d).var(0).mean()) == pytest.approx(expected_var, rel=0.03)


def test_time_grids():
    u = time_grid(10)
    assert u[0] == 0 and u[-1] == 1 and torch.allclose(u.diff(), torch.full((10,), 0.1, dtype=torch.float64))
    e = time_grid(10, "end_refined", power=2.0)
    assert e[0] == 0 and e[-1] == 1 and bool((e.diff() > 0).all())
    assert float(e.diff()[-1]) == pytest.approx(0.01) and float(e.diff()[0]) == pytest.approx(0.19)
    with pytest.raises(ConfigError, match="unknown time grid"):
        time_grid(10, "log")
    with pytest.raises(ConfigError, match="num_steps"):
        time_grid(0)


@pytest.mark.parametrize("schedule", [GeometricSchedule(0.05, 3.0), LinearSchedule(2.0, 0.1)])
def test_time_of_nu_inverts_nu(schedule):
    t = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    assert torch.allclose(schedule.time_of_nu(schedule.nu(t)), t, atol=1e-10)
    assert schedule.time_of_nu(torch.tensor([-1.0, 2 * schedule.nu1])).tolist() == pytest.approx([0.0, 1.0], abs=1e-10)


def test_sample_times_follow_the_noise_density():
    """Times drawn by noise have nu(t) / nu_1 ~ U(0, 1); fraction 0 is plain torch.rand."""
    schedule = GeometricSchedule(0.05, 3.0)
    t = schedule.sample_times(20_000, 1.0, torch.Generator().manual_seed(0))
    u = (schedule.nu(t) / schedule.nu1).sort().values
    grid = (torch.arange(20_000, dtype=torch.float64) + 0.5) / 20_000
    assert (u - grid).abs().max() < 0.015  # Kolmogorov-Smirnov distance (1% critical value ~ 0.0115)
    assert (t < 0.25).double().mean() > 0.7  # most of the noise is added early on this schedule
    plain = schedule.sample_times(1000, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(plain, torch.rand(1000, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    half = schedule.sample_times(20_000, 0.5, torch.Generator().manual_seed(1))
    assert 0.5 < (half < 0.25).double().mean() < 0.7  # mixture: 0.5 * 0.25 + 0.5 * P_noise(t < 0.25)


def test_sample_times_window_share():
    """A window share puts that share of the times uniformly on [a, b]; the rest stays uniform on [0, 1]."""
    schedule = GeometricSchedule(0.05, 2.0)
    t = schedule.sample_times(40_000, 0.0, torch.Generator().manual_seed(0), window=(0.4, 0.85), window_fraction=0.5)
    inside = ((t >= 0.4) & (t <= 0.85)).double().mean()
    assert float(inside) == pytest.approx(0.5 + 0.5 * 0.45, abs=0.01)
    assert float((t < 0.2).double().mean()) == pytest.approx(0.5 * 0.2, abs=0.01)
    none = schedule.sample_times(1000, 0.0, torch.Generator().manual_seed(3), window=(0.4, 0.85), window_fraction=0.0)
    assert torch.equal(none, torch.rand(1000, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
