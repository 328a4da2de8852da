"""Posterior-mean RAM target: closed-form rotation average, known Gaussian answer, equivariance,
and the property that makes it a valid RAM target (same conditional mean as the sample's adjoint)."""

from __future__ import annotations

import math

import pytest
import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.posterior_target import ParticleSymmetry, batch_posterior_adjoint, posterior_mean_adjoint
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.schedules import GeometricSchedule

SCHEDULE = GeometricSchedule(0.05, 3.0)
FULL = ParticleSymmetry(4, 2)
NONE = ParticleSymmetry(4, 2, permutations=False, reflection=False, planar_rotations=False)


def _centred(z: torch.Tensor) -> torch.Tensor:
    return z - z.mean(-2, keepdim=True)


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    """``(T, 2, 2)`` rotation matrices."""
    c, s = theta.cos(), theta.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def test_closed_form_rotation_average_equals_quadrature():
    """The von Mises closed form equals a 7,200-angle quadrature over explicit rotated images."""
    gen = torch.Generator().manual_seed(0)
    x1 = _centred(2 * torch.randn(3, 4, 2, generator=gen, dtype=torch.float64))
    adj = _centred(torch.randn(3, 4, 2, generator=gen, dtype=torch.float64))
    xt = _centred(torch.randn(5, 4, 2, generator=gen, dtype=torch.float64))
    t = torch.tensor([0.02, 0.3, 0.5, 0.8, 0.97], dtype=torch.float64)
    got = posterior_mean_adjoint(xt, t, x1, adj, SCHEDULE, FULL)

    rot = _rotation(torch.linspace(0, 2 * math.pi, 7201, dtype=torch.float64)[:-1])
    y = torch.einsum("tij,gnj->tgni", rot, FULL.images(x1).reshape(-1, 4, 2)).reshape(-1, 4, 2)
    ay = torch.einsum("tij,gnj->tgni", rot, FULL.images(adj).reshape(-1, 4, 2)).reshape(-1, 4, 2)
    c, v = SCHEDULE.bridge_mean_coef_and_var(t)
    log_w = -(xt[:, None] - c.view(-1, 1, 1, 1) * y[None]).pow(2).sum((-1, -2)) / (2 * v.view(-1, 1))
    expected = torch.einsum("bg,gnd->bnd", torch.softmax(log_w, -1), ay)
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()


@pytest.mark.parametrize("symmetry", [NONE, FULL], ids=["no-images", "O2xS4"])
def test_gaussian_target_gives_the_exact_conditional_mean(symmetry):
    """X_1 ~ N(0, s^2) on the zero-CoM plane, a = X_1 (1/s^2 - 1/nu_1): then
    E[a | X_t] = (1/s^2 - 1/nu_1) c s^2 / (c^2 s^2 + v) X_t. With 4,000 candidates the posterior
    mean is within 20 % (no images) or 2 % (all 192,000 images) of it at t <= 0.5 (fixed seed)."""
    gen = torch.Generator().manual_seed(1)
    s2, nu1 = 1.5, SCHEDULE.nu1
    y = _centred(math.sqrt(s2) * torch.randn(4000, 4, 2, generator=gen, dtype=torch.float64))
    t = torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64)
    c, v = SCHEDULE.bridge_mean_coef_and_var(t)
    x0 = _centred(math.sqrt(s2) * torch.randn(3, 4, 2, generator=gen, dtype=torch.float64))
    xt = c.view(-1, 1, 1) * x0 + v.sqrt().view(-1, 1, 1) * _centred(torch.randn(3, 4, 2, generator=gen,
                                                                                 dtype=torch.float64))
    exact = (1 / s2 - 1 / nu1) * (c * s2 / (c * c * s2 + v)).view(-1, 1, 1) * xt
    got = posterior_mean_adjoint(xt, t, y, y * (1 / s2 - 1 / nu1), SCHEDULE, symmetry)
    rel = (got - exact).norm(dim=(1, 2)) / exact.norm(dim=(1, 2))
    assert float(rel.max()) < (0.02 if symmetry is FULL else 0.2), rel
    # the target is the conditional mean, not the candidates' own adjoints
    assert not torch.allclose(got, y[:3] * (1 / s2 - 1 / nu1), atol=0.1)


def test_target_is_equivariant_under_rotation_reflection_and_permutation():
    gen = torch.Generator().manual_seed(2)
    x1 = _centred(2 * torch.randn(6, 4, 2, generator=gen, dtype=torch.float64))
    adj = _centred(torch.randn(6, 4, 2, generator=gen, dtype=torch.float64))
    xt = _centred(torch.randn(3, 4, 2, generator=gen, dtype=torch.float64))
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    base = posterior_mean_adjoint(xt, t, x1, adj, SCHEDULE, FULL)
    q = _rotation(torch.tensor([0.7], dtype=torch.float64))[0] @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    perm = torch.tensor([2, 0, 3, 1])
    moved = posterior_mean_adjoint(xt[:, perm] @ q.T, t, x1, adj, SCHEDULE, FULL)
    assert torch.allclose(moved, base[:, perm] @ q.T, atol=1e-6)
    # without images the target is not invariant (the check above can fail)
    plain, plain_moved = (posterior_mean_adjoint(z, t, x1, adj, SCHEDULE, NONE) for z in (xt, xt[:, perm] @ q.T))
    assert not torch.allclose(plain_moved, plain[:, perm] @ q.T, atol=1e-3)


def test_posterior_target_has_the_sample_targets_conditional_mean():
    """The tower property that keeps the RAM minimiser: for any test function h(X_t),
    E[(posterior target - a(X_1)) . h(X_t)] = 0. Checked for h(X_t) = X_t and h = X_t |X_t|^2 with a
    non-Gaussian X_1 (a ring mixture) and a non-linear equivariant a, within 4 standard errors."""
    gen = torch.Generator().manual_seed(3)
    num_batches, bsz = 200, 32
    scores = {"linear": [], "cubic": []}
    for _ in range(num_batches):
        radius = torch.where(torch.rand(bsz, 1, 1, generator=gen) < 0.5, 1.0, 3.0)
        x1 = _centred(radius * torch.randn(bsz, 4, 2, generator=gen, dtype=torch.float64))
        adj = x1 * x1.pow(2).sum(-1, keepdim=True) - 0.3 * x1  # equivariant, non-linear
        adj = _centred(adj)
        t = torch.rand(bsz, generator=gen, dtype=torch.float64) * 0.9 + 0.05
        c, v = SCHEDULE.bridge_mean_coef_and_var(t)
        xt = c.view(-1, 1, 1) * x1 + v.sqrt().view(-1, 1, 1) * _centred(torch.randn(bsz, 4, 2, generator=gen,
                                                                                      dtype=torch.float64))
        post = batch_posterior_adjoint(xt.reshape(-1, 2), t, x1.reshape(-1, 2), adj.reshape(-1, 2), SCHEDULE, FULL,
                                       group_size=8).view(bsz, 4, 2)
        diff = post - adj
        scores["linear"].append((diff * xt).sum((1, 2)))
        scores["cubic"].append((diff * xt * xt.pow(2).sum(-1, keepdim=True)).sum((1, 2)))
    for name, values in scores.items():
        z = torch.cat(values)
        assert abs(float(z.mean())) < 4 * float(z.std()) / math.sqrt(z.numel()), name


def test_noise_around_the_conditional_mean_is_far_below_the_sample_adjoints():
    """Gaussian X_1 as above, batch of 256 in groups of 64, t = 0.3 and 0.5: the mean squared
    distance of the target from the exact E[a | X_t] drops by more than 5x against a(X_1)."""
    gen = torch.Generator().manual_seed(4)
    s2, nu1 = 1.5, SCHEDULE.nu1
    for time in (0.3, 0.5):
        x1 = _centred(math.sqrt(s2) * torch.randn(256, 4, 2, generator=gen, dtype=torch.float64))
        adj = x1 * (1 / s2 - 1 / nu1)
        t = torch.full((256,), time, dtype=torch.float64)
        c, v = SCHEDULE.bridge_mean_coef_and_var(t)
        xt = c.view(-1, 1, 1) * x1 + v.sqrt().view(-1, 1, 1) * _centred(torch.randn(256, 4, 2, generator=gen,
                                                                                      dtype=torch.float64))
        exact = (1 / s2 - 1 / nu1) * (c * s2 / (c * c * s2 + v)).view(-1, 1, 1) * xt
        post = batch_posterior_adjoint(xt.reshape(-1, 2), t, x1.reshape(-1, 2), adj.reshape(-1, 2), SCHEDULE, FULL,
                                       64).view(256, 4, 2)
        assert float((post - exact).pow(2).mean()) < 0.2 * float((adj - exact).pow(2).mean()), time


def test_one_candidate_without_images_is_the_sample_adjoint():
    gen = torch.Generator().manual_seed(5)
    x1, adj, xt = (_centred(torch.randn(8, 4, 2, generator=gen)) for _ in range(3))
    got = batch_posterior_adjoint(xt.reshape(-1, 2), torch.rand(8, generator=gen), x1.reshape(-1, 2),
                                  adj.reshape(-1, 2), SCHEDULE, NONE, group_size=1)
    assert torch.allclose(got, adj.reshape(-1, 2), atol=1e-6)


def test_bad_symmetries_and_shapes_are_refused():
    with pytest.raises(ConfigError, match="permutations of 13 particles"):
        ParticleSymmetry(13, 3, planar_rotations=False)
    with pytest.raises(ConfigError, match="needs 2D particles"):
        ParticleSymmetry(4, 3)
    with pytest.raises(ConfigError, match="group size"):
        batch_posterior_adjoint(torch.zeros(8, 2), torch.zeros(2), torch.zeros(8, 2), torch.zeros(8, 2), SCHEDULE,
                                FULL, 0)
    with pytest.raises(ValueError, match="do not hold 3 systems"):
        batch_posterior_adjoint(torch.zeros(8, 2), torch.zeros(3), torch.zeros(8, 2), torch.zeros(8, 2), SCHEDULE,
                                FULL, 4)
    assert SyntheticProblem.from_name("lj13").symmetry() == ParticleSymmetry(13, 3, permutations=False,
                                                                              planar_rotations=False)
    assert SyntheticProblem.from_name("dw4").symmetry() == FULL
