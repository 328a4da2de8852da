"""Where along the time axis does a synthetic sampler go wrong?

Take reference samples ``X_1``, draw ``X_t0`` from the base bridge (the marginal at ``t0`` of the
optimally controlled process, whose bridges are the base's), and integrate the model's SDE from
``t0`` to 1. With a perfect control every ``t0`` gives the reference distribution back; the
earliest ``t0`` from which the model's samples are right shows where its control is wrong.
"""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.integrate import integrate
from adjoint_sampling.models.checkpoint import ModelCheckpoint

__all__ = ["restarted_samples"]


@torch.no_grad()
def restarted_samples(ckpt: ModelCheckpoint, reference: Tensor, t0: float, seed: int) -> tuple[Tensor, Tensor]:
    """Samples ``(K, n, D)`` float64 and energies ``(K,)`` of the model restarted at ``t0`` in [0, 1)
    from the bridges of ``reference`` ``(K, n, D)``; the SDE runs on the checkpoint's grid after ``t0``."""
    if not 0.0 <= t0 < 1.0:
        raise ValueError(f"t0 must be in [0, 1), got {t0}")
    problem = SyntheticProblem.from_description(ckpt.problem)
    controller, schedule, grid = ckpt.build_controller(), ckpt.build_schedule(), ckpt.time_grid()
    k, n, d = reference.shape
    batch = problem.make_batch([0] * k)
    gen = torch.Generator().manual_seed(seed)
    x1 = reference.reshape(k * n, d).to(torch.float32)
    x_t0 = batch.space.sample_bridge(x1, torch.full((k,), t0), schedule, gen)
    restart_grid = torch.cat([grid.new_tensor([t0]), grid[grid > t0]])
    x = integrate(lambda t, x: controller(t, x, batch), batch.space, schedule, restart_grid, gen, x_start=x_t0)
    x = x.double().view(k, n, d)
    return x, problem.energy_model.energy(x)
