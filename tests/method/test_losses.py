"""RAM and bridge-matching losses: values and normalisation."""

import math

import pytest
import torch

from adjoint_sampling.method.losses import bridge_matching_loss, ram_loss
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace


def _space():
    batch = torch.tensor([0, 0, 1, 1, 1, 1])  # 2 systems of 2 and 4 rows
    return CenteredEuclideanSpace(batch, 2, 1)


def test_ram_loss_zero_at_minus_adjoint_and_normalised_per_system():
    space = _space()
    a = space.project_vector(torch.randn(6, 1, dtype=torch.float64))
    assert float(ram_loss(-a, a, space)) == pytest.approx(0.0, abs=1e-20)
    # residual 1 on rows of system 0 (mean 1), residual 0 on system 1 -> (1 + 0) / 2
    f = -a + torch.tensor([[1.0], [-1.0], [0.0], [0.0], [0.0], [0.0]], dtype=torch.float64)
    assert float(ram_loss(f, a, space)) == pytest.approx(0.5)


def test_bridge_matching_target():
    sched = GeometricSchedule(0.1, 1.0)
    space = _space()
    x1 = space.project_state(torch.randn(6, 1, dtype=torch.float64))
    xt = space.project_state(torch.randn(6, 1, dtype=torch.float64))
    t_rows = torch.tensor([0.2, 0.2, 0.7, 0.7, 0.7, 0.7], dtype=torch.float64)
    target = (x1 - xt) / (sched.nu1 - sched.nu(t_rows)).view(-1, 1)
    assert float(bridge_matching_loss(target, x1, xt, t_rows, sched, space)) == pytest.approx(0.0, abs=1e-18)
    assert float(bridge_matching_loss(target + 2.0, x1, xt, t_rows, sched, space)) == pytest.approx(0.0, abs=1e-18)
    # (the +2 shift is a CoM component, projected out)
    off = target + torch.tensor([[1.0], [-1.0], [0, ], [0], [0], [0]], dtype=torch.float64)
    assert float(bridge_matching_loss(off, x1, xt, t_rows, sched, space)) == pytest.approx(0.5)


def test_torus_bridge_target_uses_nearest_image_for_small_variance():
    space = TorusSpace(torch.zeros(3, dtype=torch.long), 1)
    x1 = torch.tensor([[3.0], [-3.0], [0.5]], dtype=torch.float64)
    xt = torch.tensor([[-3.0], [3.0], [0.2]], dtype=torch.float64)
    var = torch.full((3, 1), 0.01, dtype=torch.float64)
    expected = torch.tensor([[6.0 - 2 * math.pi], [2 * math.pi - 6.0], [0.3]], dtype=torch.float64) / 0.01
    assert torch.allclose(space.bridge_target(x1, xt, var), expected, atol=1e-8)
