"""Adjoint Matching's SDE pieces: the memoryless schedule, a flow's velocity as an SDE drift (same
marginals for any schedule), the memoryless property, the fine-tuned velocity, the plain
Euclidean space and the recorded path."""

import math

import pytest
import torch
from scipy.integrate import quad

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.sde.base_drift import finetuned_velocity, flow_sde_drift, interpolant_eta
from adjoint_sampling.sde.integrate import integrate, integrate_path
from adjoint_sampling.sde.schedules import GeometricSchedule, LinearSchedule, MemorylessSchedule, build_schedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, EuclideanSpace
from adjoint_sampling.sde.time_grids import time_grid
from gaussian_flow_helpers import GaussianFlow, euler_chain_moments

T0 = 1e-3
FLOW = GaussianFlow(torch.tensor([1.0, -0.5], dtype=torch.float64),
                    torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64))


def test_memoryless_schedule_values_and_integral():
    s = MemorylessSchedule(0.05)
    for t in (0.05, 0.1, 0.37, 0.9, 1.0):
        sigma = float(s.sigma(torch.tensor(t, dtype=torch.float64)))
        assert sigma == pytest.approx(math.sqrt(2 * float(interpolant_eta(torch.tensor(t)))), rel=1e-6)
        numeric, _ = quad(lambda u: float(s.sigma(torch.tensor(u, dtype=torch.float64))) ** 2, 0.05, t,
                          epsabs=1e-12, epsrel=1e-10)
        assert float(s.nu(torch.tensor(t, dtype=torch.float64))) == pytest.approx(numeric, rel=1e-8, abs=1e-12)
    # nothing happens before t_start: sigma 0 and nu 0 (the process starts there)
    assert float(s.sigma(torch.tensor(0.01))) == 0.0 and float(s.nu(torch.tensor(0.0))) == 0.0
    assert s.nu1 == pytest.approx(-2 * math.log(0.05) - 2 * 0.95)
    assert float(s.sigma(torch.tensor(1.0))) == 0.0
    rebuilt = build_schedule("memoryless", **s.params())
    assert isinstance(rebuilt, MemorylessSchedule) and rebuilt.t_start == 0.05
    with pytest.raises(ConfigError, match="0 < t_start < 1"):
        MemorylessSchedule(0.0)


def test_time_grid_with_a_start():
    g = time_grid(10, start=0.01)
    assert float(g[0]) == 0.01 and float(g[-1]) == 1.0
    assert torch.allclose(g.diff(), torch.full((10,), 0.099, dtype=torch.float64))
    r = time_grid(10, "start_refined", power=2.0, start=0.01)
    assert float(r[0]) == 0.01 and float(r[-1]) == 1.0 and float(r.diff()[0]) == pytest.approx(0.0099)
    assert torch.equal(time_grid(10, "end_refined"), 1.0 - (1.0 - torch.linspace(0, 1, 11, dtype=torch.float64)) ** 2)
    with pytest.raises(ConfigError, match="start"):
        time_grid(10, start=1.0)


@pytest.mark.parametrize("schedule", [MemorylessSchedule(T0), LinearSchedule(0.5, 0.5), LinearSchedule(1.5, 0.0)],
                         ids=lambda s: f"{s.kind}{s.params()}")
def test_flow_sde_has_the_flows_marginal_for_any_schedule(schedule):
    """``b = v + sigma^2 / (2 eta) (v - x / t)`` keeps the flow's marginals whatever sigma is: the
    Euler chain's exact end moments (no sampling error) converge to ``N(m, S)`` at first order."""
    errors = []
    for steps in (100, 1000):
        mean, cov = euler_chain_moments(FLOW, schedule, time_grid(steps, start=T0))
        assert torch.allclose(mean, FLOW.mean, atol=1e-9)  # affine drift: the mean is exact
        errors.append(float((cov - FLOW.cov).abs().max()))
    assert errors[1] < 2e-3 and errors[1] < errors[0] / 5  # O(h): 10x the steps, about 10x smaller


def test_uncorrected_drift_misses_the_marginal():
    """The conversion matters: the memoryless noise with the flow's ODE velocity as drift (no
    ``sigma^2 / (2 eta) (v - x / t)`` term) ends with the schedule's whole variance added, far
    from ``S`` (diagonal 0.5, 0.3), while the converted drift ends at ``S``."""
    schedule = MemorylessSchedule(T0)
    n, grid = 4000, time_grid(100, start=T0)
    space = EuclideanSpace(torch.arange(n), n, 2)
    ends = {}
    for name, drift in (("ode", FLOW.velocity), ("sde", flow_sde_drift(FLOW.velocity, schedule, space))):
        gen = torch.Generator().manual_seed(0)
        ends[name] = integrate(None, space, schedule, grid, gen, torch.float64,
                               x_start=FLOW.sample_marginal(T0, n, gen), base_drift=drift)
    assert float(torch.cov(ends["ode"].T).diagonal().min()) > 3.0
    assert torch.allclose(torch.cov(ends["sde"].T), FLOW.cov, atol=0.05)  # 2.5% Euler bias + ~3% sampling


def _cross_correlation_statistic(schedule, n=20_000, seed=0):
    """``n sum_ij corr(X_t0_i, X_1_j)^2`` over the D x D cross-correlations: chi-square with D^2
    degrees of freedom when X_t0 and X_1 are independent (Gaussian samples)."""
    space = EuclideanSpace(torch.arange(n), n, 2)
    gen = torch.Generator().manual_seed(seed)
    x0 = FLOW.sample_marginal(T0, n, gen)
    x1 = integrate(None, space, schedule, time_grid(100, start=T0), gen, torch.float64, x_start=x0,
                   base_drift=flow_sde_drift(FLOW.velocity, schedule, space))
    corr = torch.corrcoef(torch.cat([x0, x1], 1).T)[:2, 2:]
    return n * float((corr**2).sum())


def test_memoryless_schedule_makes_start_and_end_independent():
    """Memoryless: the statistic stays below the 99.9% quantile of chi-square(4), 18.47 (X_t0 =
    (1 - t0) X_0 + t0 X_1 with t0 = 1e-3 has a true correlation with X_1 of ~1e-3, i.e. ~0.02 in
    the statistic). A constant sigma (same marginals, not memoryless) keeps a strong dependence:
    correlations of 0.3-0.7, a statistic in the thousands."""
    assert _cross_correlation_statistic(MemorylessSchedule(T0)) < 18.47
    assert _cross_correlation_statistic(LinearSchedule(0.5, 0.5)) > 1000.0
    assert _cross_correlation_statistic(LinearSchedule(1.0, 1.0)) > 200.0


@pytest.mark.parametrize("schedule", [MemorylessSchedule(T0), LinearSchedule(0.5, 0.5)], ids=lambda s: s.kind)
def test_finetuned_velocity_gives_the_controlled_drift(schedule):
    """The SDE of ``v_ft`` has drift ``b + sigma^2 f``: the control of Adjoint Matching in flow terms."""
    space = CenteredEuclideanSpace(torch.tensor([0, 0, 0, 1, 1]), 2, 3)
    gen = torch.Generator().manual_seed(0)
    x = space.project_state(torch.randn(5, 3, generator=gen, dtype=torch.float64))
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    velocity = lambda tt, xx: torch.sin(xx) * space.rows_of(tt) + xx.flip(0)
    control = lambda tt, xx: torch.cos(2 * xx)
    ft = finetuned_velocity(velocity, control, schedule, space)
    lhs = flow_sde_drift(ft, schedule, space)(t, x)
    rhs = flow_sde_drift(velocity, schedule, space)(t, x) + space.rows_of(schedule.sigma(t)) ** 2 * space.project_vector(control(t, x))
    assert torch.allclose(lhs, rhs, atol=1e-12)
    if isinstance(schedule, MemorylessSchedule):  # DESIGN: u = sigma f = (2 / sigma)(v_ft - v_base)
        u = space.rows_of(schedule.sigma(t)) * space.project_vector(control(t, x))
        assert torch.allclose(u, 2 / space.rows_of(schedule.sigma(t)) * (ft(t, x) - space.project_vector(velocity(t, x))))


def test_integrate_path_records_the_same_chain():
    space = CenteredEuclideanSpace(torch.tensor([0, 0, 0, 1, 1, 1, 1]), 2, 3)
    schedule = MemorylessSchedule(0.01)
    grid = time_grid(15, start=0.01)
    start = space.project_state(torch.randn(7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    drift = flow_sde_drift(lambda t, x: -x + 1.0, schedule, space)
    control = lambda t, x: torch.tanh(x)
    path = integrate_path(control, space, schedule, grid, torch.Generator().manual_seed(1), torch.float64, start, drift)
    x1 = integrate(control, space, schedule, grid, torch.Generator().manual_seed(1), torch.float64, start, drift)
    assert path.shape == (16, 7, 3) and torch.equal(path[0], start) and torch.equal(path[-1], x1)
    # zero drift is the Adjoint Sampling integration, bit for bit
    geo = GeometricSchedule(0.01, 1.0)
    as_path = integrate_path(control, space, geo, time_grid(10), torch.Generator().manual_seed(2))
    assert torch.equal(as_path[-1], integrate(control, space, geo, time_grid(10), torch.Generator().manual_seed(2)))


def test_euclidean_space_base_density():
    space = EuclideanSpace(torch.tensor([0, 0, 1]), 2, 2)
    schedule = GeometricSchedule(0.1, 1.5)
    x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    logp = space.base_log_density(x, schedule)
    expected = [-(x[:2] ** 2).sum() / (2 * schedule.nu1) - 2 * math.log(2 * math.pi * schedule.nu1),
                -(x[2] ** 2).sum() / (2 * schedule.nu1) - math.log(2 * math.pi * schedule.nu1)]
    assert torch.allclose(logp, torch.stack(expected))
    (grad,) = torch.autograd.grad(logp.sum(), x)
    assert torch.allclose(space.base_log_density_grad(x.detach(), schedule), grad)
    assert torch.equal(space.project_state(x.detach()), x.detach())
