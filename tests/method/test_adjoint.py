"""Per-row clipping and the terminal adjoint."""

import math

import torch

from adjoint_sampling.method.adjoint import clip_per_row, terminal_adjoint
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace


def test_clip_per_row_numbers():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4], [float("nan"), 1.0], [0.0, 0.0]])
    c = clip_per_row(v, 1.0)
    assert torch.allclose(c[0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(c[1], v[1])
    assert torch.allclose(c[2], torch.tensor([0.0, 1.0]))  # nan -> 0 then norm 1: unchanged
    assert torch.allclose(c[3], torch.zeros(2))
    assert torch.allclose(clip_per_row(v[:2], None), v[:2])


def test_terminal_adjoint_centered():
    sched = GeometricSchedule(0.01, 2.0)
    batch = torch.tensor([0, 0, 1, 1, 1])
    space = CenteredEuclideanSpace(batch, 2, 2)
    x1 = space.project_state(torch.randn(5, 2, dtype=torch.float64))
    grad = torch.randn(5, 2, dtype=torch.float64)
    a = terminal_adjoint(grad, x1, space, sched, tau=2.0, max_norm=None)
    assert torch.allclose(a, space.project_vector(grad / 2.0 - x1 / sched.nu1))
    a_clip = terminal_adjoint(grad * 1e3, x1, space, sched, tau=1.0, max_norm=1.0)
    # clip before projection: each row had norm 1, so after CoM removal rows stay bounded by 2
    assert float(a_clip.norm(dim=-1).max()) <= 2.0 + 1e-9
    assert torch.allclose(a_clip[:2].sum(0), torch.zeros(2, dtype=torch.float64), atol=1e-12)


def test_torus_base_log_density_grad_matches_autograd():
    sched = GeometricSchedule(0.5, 2.0)
    space = TorusSpace(torch.zeros(7, dtype=torch.long), 1, images=4)
    x = torch.linspace(-3.1, 3.1, 7, dtype=torch.float64).view(-1, 1).requires_grad_(True)
    nu = sched.nu1
    k = torch.arange(-4, 5, dtype=torch.float64)
    logp = torch.logsumexp(-((x + 2 * math.pi * k) ** 2) / (2 * nu), dim=-1).sum()
    (ref,) = torch.autograd.grad(logp, x)
    assert torch.allclose(space.base_log_density_grad(x.detach(), sched), ref, atol=1e-10)
