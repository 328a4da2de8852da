"""Importance weights of simulated samples: the path ratio, the base density, the buffer draw."""

import math

import pytest
import torch

from adjoint_sampling.method.importance import effective_sample_fraction, selection_probabilities, terminal_log_weight
from adjoint_sampling.sde.integrate import integrate, integrate_with_path_weight
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace
from adjoint_sampling.sde.time_grids import time_grid


def _space(b: int, n: int, d: int) -> CenteredEuclideanSpace:
    return CenteredEuclideanSpace(torch.arange(b).repeat_interleave(n), b, d)


def test_zero_control_has_zero_log_ratio_and_the_same_path():
    space, sched, grid = _space(50, 3, 2), GeometricSchedule(0.05, 1.0), time_grid(20)
    x, log_ratio = integrate_with_path_weight(None, space, sched, grid, torch.Generator().manual_seed(0))
    assert log_ratio.shape == (50,) and float(log_ratio.abs().max()) == 0.0
    assert torch.equal(x, integrate(None, space, sched, grid, torch.Generator().manual_seed(0)))

    def control(t, x):
        return torch.sin(x) + t[space.batch].unsqueeze(-1)

    xc, lr = integrate_with_path_weight(control, space, sched, grid, torch.Generator().manual_seed(0))
    assert torch.equal(xc, integrate(control, space, sched, grid, torch.Generator().manual_seed(0)))
    assert float(lr.abs().min()) > 0


def test_weights_turn_a_wrong_control_into_the_target():
    """Gaussian target E = |x - m|^2 / (2 s^2) on the zero-CoM subspace of 3 particles in 2D,
    sampled with a control that is not its optimum. The self-normalised weighted mean and
    per-coordinate variance match the target's (m centred; s^2 (n-1)/n) within 0.05 and 10%
    (20,000 systems; the weights are exact for the discrete chain, so no step-size bias), while
    the unweighted samples miss both."""
    n, d, b, s = 3, 2, 20_000, 0.5
    mean = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
    space, sched, grid = _space(b, n, d), GeometricSchedule(0.05, 1.2), time_grid(30)
    target_rows = mean.repeat(b, 1).float()

    def control(t, x):  # pulls towards 0.6 m with the wrong stiffness
        return 1.5 * (0.6 * target_rows - x)

    x1, log_ratio = integrate_with_path_weight(control, space, sched, grid, torch.Generator().manual_seed(0),
                                               dtype=torch.float64)
    energy = 0.5 * (x1 - mean.repeat(b, 1)).pow(2).sum(-1).view(b, n).sum(-1) / s**2
    log_w = terminal_log_weight(log_ratio, energy, space.base_log_density(x1, sched), tau=1.0)
    w = torch.softmax(log_w, 0)
    x = x1.view(b, n, d)
    weighted_mean = (w.view(b, 1, 1) * x).sum(0)
    weighted_var = (w.view(b, 1, 1) * (x - weighted_mean).pow(2)).sum(0).mean()
    target_var = s**2 * (n - 1) / n
    assert effective_sample_fraction(log_w, torch.zeros(b, dtype=torch.long)) > 0.05
    assert torch.allclose(weighted_mean, mean, atol=0.05), weighted_mean
    assert float(weighted_var) == pytest.approx(target_var, rel=0.1)
    plain_mean, plain_var = x.mean(0), x.var(0).mean()
    assert not torch.allclose(plain_mean, mean, atol=0.05) or abs(float(plain_var) / target_var - 1) > 0.1


def test_base_log_density_is_the_normalised_gaussian_of_the_subspace():
    sched = GeometricSchedule(0.05, 1.3)
    nu1 = sched.nu1
    # two particles in 1D: the subspace is the line x = (a, -a), coordinate z = sqrt(2) a ~ N(0, nu1)
    space = CenteredEuclideanSpace(torch.tensor([0, 0]), 1, 1)
    a = 0.7
    got = float(space.base_log_density(torch.tensor([[a], [-a]], dtype=torch.float64), sched)[0])
    z = math.sqrt(2.0) * a
    assert got == pytest.approx(-z * z / (2 * nu1) - 0.5 * math.log(2 * math.pi * nu1), rel=1e-10)
    # its gradient is the space's base_log_density_grad (several systems of different sizes)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    space = CenteredEuclideanSpace(batch, 2, 3)
    x = space.project_state(torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    x.requires_grad_(True)
    space.base_log_density(x, sched).sum().backward()
    assert torch.allclose(space.project_vector(x.grad), space.base_log_density_grad(x.detach(), sched))
    with pytest.raises(NotImplementedError, match="TorusSpace"):
        TorusSpace(torch.tensor([0, 0]), 1).base_log_density(torch.zeros(2, 1), sched)


def test_selection_probabilities_keep_each_systems_share():
    log_w = torch.tensor([0.0, math.log(3.0), 5.0, 5.0, 5.0, 100.0], dtype=torch.float64)
    keys = torch.tensor([0, 0, 1, 1, 1, 2])
    p = selection_probabilities(log_w, keys)
    assert float(p.sum()) == pytest.approx(1.0)
    assert p[:2].tolist() == pytest.approx([0.25 * 2 / 6, 0.75 * 2 / 6])  # 1 : 3 within system 0
    assert p[2:5].tolist() == pytest.approx([1 / 6] * 3)  # equal weights: uniform
    assert float(p[5]) == pytest.approx(1 / 6)  # a huge weight does not take another system's share
    assert effective_sample_fraction(torch.zeros(8), torch.zeros(8, dtype=torch.long)) == pytest.approx(1.0)
    assert effective_sample_fraction(torch.tensor([0.0] * 7 + [50.0]), torch.zeros(8, dtype=torch.long)) == \
        pytest.approx(1 / 8, rel=1e-6)
