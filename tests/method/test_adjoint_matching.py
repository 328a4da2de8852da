"""Adjoint Matching (DESIGN.md section 8): the lean adjoint is the autograd adjoint of the
simulated chain, b = 0 is Adjoint Sampling, and fine-tuning a Gaussian flow with a linear or
quadratic reward recovers the tilted Gaussian."""

import math

import pytest
import torch
from gaussian_flow_helpers import GaussianFlow, TimeMLP, euler_chain_moments
from torch import Tensor

from adjoint_sampling.core.geometry import wrap_angle
from adjoint_sampling.method.adjoint import terminal_adjoint
from adjoint_sampling.method.adjoint_matching import (
    adjoint_matching_targets,
    lean_adjoint,
    reward_terminal_adjoint,
)
from adjoint_sampling.method.losses import adjoint_matching_loss, ram_loss
from adjoint_sampling.sde.base_drift import flow_sde_drift
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.integrate import integrate, integrate_path
from adjoint_sampling.sde.schedules import GeometricSchedule, MemorylessSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, EuclideanSpace
from adjoint_sampling.sde.time_grids import time_grid
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    fine_tune,
    sample_fine_tuned,
)

F64 = torch.float64


def _cartesian_case():
    """3 systems of 3-5 particles in 3D (zero CoM), a non-linear velocity and reward."""
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    space = CenteredEuclideanSpace(batch, 3, 3)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(7), dtype=F64)

    def velocity(t, x):
        return torch.tanh(x @ w) * (1 + space.rows_of(t)) - 0.5 * x

    def reward(x):  # per system, summed: -sum |x|^4 / 4 + sum sin(x)
        return -(x**4).sum() / 4 + torch.sin(x).sum()

    return space, velocity, reward


def _torsion_case():
    """Torsions lifted to the line (DESIGN.md section 8): a flow on R^m, a periodic reward of the
    wrapped angles; 4 systems of 2 torsions."""
    space = EuclideanSpace(torch.arange(4).repeat_interleave(2), 4, 1)

    def velocity(t, x):
        return torch.sin(2 * x) * space.rows_of(t) - x

    def reward(x):
        return (2.0 * torch.cos(wrap_angle(x) - 1.0)).sum()

    return space, velocity, reward


@pytest.mark.parametrize("case", [_cartesian_case, _torsion_case], ids=["zero_com", "torsions"])
def test_lean_adjoint_is_the_autograd_adjoint_of_the_chain(case):
    """Controller off, noise on: the lean adjoint at every grid time equals the autograd gradient
    of the cost ``-lambda r(X_K)`` with respect to that state through the Euler-Maruyama steps
    (projected to the tangent space), to float64 round-off."""
    space, velocity, reward = case()
    schedule, lam = MemorylessSchedule(0.01), 0.7
    grid = time_grid(25, start=0.01)
    drift = flow_sde_drift(velocity, schedule, space)
    start = space.project_state(torch.randn(space.num_rows, space.dim, generator=torch.Generator().manual_seed(3), dtype=F64))

    # the reference: the same chain written out with autograd
    gen, nu = torch.Generator().manual_seed(11), schedule.nu(grid)
    states = [start.clone().requires_grad_(True)]
    for k in range(len(grid) - 1):
        eps = space.noise(gen, F64)
        t = torch.full((space.num_systems,), float(grid[k]), dtype=F64)
        x = states[-1] + float(grid[k + 1] - grid[k]) * space.project_vector(drift(t, states[-1]))
        states.append(space.project_state(x + math.sqrt(float(nu[k + 1] - nu[k])) * eps))
        states[-1].retain_grad()
    (-lam * reward(states[-1])).backward()
    reference = torch.stack([space.project_vector(s.grad) for s in states])

    path = integrate_path(None, space, schedule, grid, torch.Generator().manual_seed(11), F64, start, drift)
    assert torch.allclose(path, torch.stack([s.detach() for s in states]), atol=1e-12)
    x1 = path[-1].clone().requires_grad_(True)
    (grad_r,) = torch.autograd.grad(reward(x1), x1)
    adjoint = lean_adjoint(path, grid, reward_terminal_adjoint(grad_r, space, reward_scale=lam), space, drift)
    assert adjoint.shape == path.shape
    assert torch.allclose(adjoint, reference, atol=1e-10, rtol=1e-9)
    assert float((adjoint[0] - adjoint[-1]).abs().max()) > 0.1  # the base drift does move the adjoint


def test_zero_base_drift_is_adjoint_sampling():
    """b = 0, Dirac start, geometric schedule, ``lambda r = -E / tau - log p1base``: the path ends
    where ``sde.integrate`` ends, the lean adjoint is Adjoint Sampling's terminal adjoint at every
    time (with ``b = None`` and with an explicit zero drift), and the Adjoint Matching loss is the
    RAM regression ``|| f + a ||^2`` at every time (``sigma^2`` times it with DESIGN's weighting)."""
    space = CenteredEuclideanSpace(torch.tensor([0, 0, 0, 0, 1, 1, 1]), 2, 3)
    schedule, grid, tau = GeometricSchedule(0.01, 1.5), time_grid(12, "end_refined"), 0.8

    def control(t, x):
        return torch.sin(x) * space.rows_of(t) - 0.3 * x

    def energy(x):
        return ((x**2).sum(-1) - 1.0).pow(2).sum()

    path = integrate_path(control, space, schedule, grid, torch.Generator().manual_seed(4), F64)
    x1 = integrate(control, space, schedule, grid, torch.Generator().manual_seed(4), F64)
    assert torch.equal(path[-1], x1) and torch.equal(path[0], torch.zeros_like(x1))

    xg = x1.clone().requires_grad_(True)
    (grad_e,) = torch.autograd.grad(energy(xg), xg)
    grad_r = -grad_e / tau - space.base_log_density_grad(x1, schedule)
    for max_norm in (None, 2.0):
        a1 = reward_terminal_adjoint(grad_r, space, max_norm=max_norm)
        assert torch.allclose(a1, terminal_adjoint(grad_e, x1, space, schedule, tau, max_norm), atol=1e-12)

    a1 = reward_terminal_adjoint(grad_r, space)
    for drift in (None, lambda t, x: torch.zeros_like(x), lambda t, x: 0.0 * x):
        targets = adjoint_matching_targets(path, grid, a1, space, schedule, drift)
        assert torch.allclose(targets.adjoint, a1.expand_as(targets.adjoint), atol=1e-14)
    assert torch.equal(targets.states, path[:-1]) and torch.equal(targets.times, grid[:-1])

    f_pred = torch.stack([control(torch.full((2,), float(t), dtype=F64), x) for t, x in zip(targets.times, targets.states)])
    per_time = torch.stack([ram_loss(f, a1, space) for f in f_pred])
    assert float(adjoint_matching_loss(f_pred, targets.adjoint, space)) == pytest.approx(float(per_time.mean()), rel=1e-12)
    weighted = adjoint_matching_loss(f_pred, targets.adjoint, space, weight=targets.sigma_sq)
    assert float(weighted) == pytest.approx(float((targets.sigma_sq * per_time).mean()), rel=1e-12)
    # sigma_sq is the step's mean sigma^2: dnu / dt
    assert torch.allclose(targets.sigma_sq * grid.diff(), schedule.nu(grid).diff(), rtol=1e-12)
    # and the minimiser: f = -a gives zero loss
    assert float(adjoint_matching_loss(-targets.adjoint, targets.adjoint, space)) == pytest.approx(0.0, abs=1e-24)


FLOW = GaussianFlow(torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64))
LINEAR_C = torch.tensor([1.0, 2.0], dtype=F64)
QUAD_Q, QUAD_CENTRE = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64), torch.tensor([0.0, 0.5], dtype=F64)
REWARDS = {  # name: (grad r, closed-form tilted mean and covariance), lambda = 1
    "linear": (lambda x: LINEAR_C.expand_as(x), FLOW.tilted_by_linear(LINEAR_C)),
    "quadratic": (lambda x: -(x - QUAD_CENTRE) @ QUAD_Q, FLOW.tilted_by_quadratic(QUAD_Q, QUAD_CENTRE)),
}


def fine_tune_gaussian_flow(reward: str, seed: int = 0, iterations: int = 300, batch: int = 64,
                            steps: int = 100, samples: int = 20_000, t_start: float = 1e-3, lr: float = 3e-2,
                            control_from: float = 0.0) -> Tensor:
    """Fine-tune the flow N(0, I) -> N(m, S) with Adjoint Matching (``training.adjoint_matching``) for
    ``reward``; return ``samples`` draws ``(samples, 2)`` of the fine-tuned memoryless SDE."""
    torch.manual_seed(seed)
    grad_r = REWARDS[reward][0]
    settings = AdjointMatchingSettings(iterations=iterations, batch_size=batch, sde_steps=steps, t_start=t_start,
                                       lr=lr, lr_final=0.0, seed=seed + 1, control_from=control_from)
    task = FineTuneTask.of_one_system(
        make_batch=lambda n: SystemBatch([0] * n, EuclideanSpace(torch.arange(n), n, 2)),
        base_velocity=lambda t, x, batch: FLOW.velocity(t, x),
        sample_start=lambda n, gen: FLOW.sample_marginal(t_start, n, gen),
        reward_grad=lambda x1, batch: grad_r(x1),
    )
    model = TimeMLP(2).double()
    losses = fine_tune(model, task, settings)
    assert len(losses) == iterations and losses[-1] < losses[0]
    return sample_fine_tuned(model, task, samples, settings, torch.Generator().manual_seed(seed + 2))


@pytest.mark.parametrize("reward", ["linear", "quadratic"])
def test_fine_tuning_a_gaussian_flow_recovers_the_tilted_gaussian(reward):
    """p_base = N(m, S) in 2-D (a flow from N(0, I) with its exact velocity), reward linear
    (``p* = N(m + S c, S)``: a shift of (0.9, 0.8)) or quadratic (``p*`` has precision
    ``S^-1 + Q``: the mean moves by 0.31, the covariance from (0.5, 0.2, 0.3) to (0.23, 0.05,
    0.19)). An MLP controller trained 300 Adam steps on 64 paths of 100 Euler steps (about 20 s on
    one thread), then 20,000 draws of the fine-tuned memoryless SDE.

    Tolerance against the closed form, 0.05 on the mean and 0.03 on each covariance entry, is the
    sum of: the Euler chain's own bias at 100 steps (its exact moments, computed and bounded below:
    0.013 on the base covariance, hence 0.022 on the linear tilt's mean shift ``C_K c``), sampling
    error of 20,000 draws (standard errors 0.005 on a mean and on a variance: 4 SE = 0.02), and
    what 300 steps leave of training error (seeds 0-3: at most 0.006 on the mean beyond the Euler
    bias, 0.008 on the covariance). For the linear reward the Euler chain's own tilt
    (``mean_K + C_K c``, what the discrete method converges to exactly) is also checked, at 0.025
    (4 SE + training error). A controller that ignores the reward misses by 0.3-0.9 on the mean
    and up to 0.27 on the covariance."""
    base_mean, base_cov = euler_chain_moments(FLOW, MemorylessSchedule(1e-3), time_grid(100, start=1e-3))
    assert float((base_cov - FLOW.cov).abs().max()) < 0.015 and torch.allclose(base_mean, FLOW.mean)

    x1 = fine_tune_gaussian_flow(reward)
    mean, cov = REWARDS[reward][1]
    assert torch.allclose(x1.mean(0), mean, atol=0.05), (x1.mean(0), mean)
    assert torch.allclose(torch.cov(x1.T), cov, atol=0.03), (torch.cov(x1.T), cov)
    if reward == "linear":
        assert torch.allclose(x1.mean(0), base_mean + base_cov @ LINEAR_C, atol=0.025)


def test_a_control_windowed_from_mid_path_tilts_only_the_late_transition():
    """The linear reward with the control acting from t = 0.5 on (``control_from``; first grid time
    0.5005): ``X_0.5`` keeps the base's marginal and only the transition to ``X_1`` is tilted, so the
    mean moves by ``Cov(X_1 | X_0.5) c = (0.53, 0.53)`` instead of ``S c = (0.9, 0.8)`` and the
    covariance stays S (``GaussianFlow.tilted_by_linear_from``). Tolerances as for the full tilt; the
    Euler chain's own answer from the first window time differs from the closed form by 0.007. A
    control that learned nothing misses the mean by 0.53, an unwindowed one by 0.3 to 0.37."""
    x1 = fine_tune_gaussian_flow("linear", control_from=0.5)
    t_window = float(time_grid(100, start=1e-3)[50])
    assert 0.5 <= t_window < 0.51
    mean, cov = FLOW.tilted_by_linear_from(LINEAR_C, t_window)
    assert torch.allclose(x1.mean(0), mean, atol=0.05), (x1.mean(0), mean)
    assert torch.allclose(torch.cov(x1.T), cov, atol=0.03), (torch.cov(x1.T), cov)
    assert float((x1.mean(0) - FLOW.tilted_by_linear(LINEAR_C)[0]).abs().max()) > 0.25
