"""Conditional flow matching of the linear interpolant: the pre-training of Adjoint Matching's base.

``X_t = (1 - t) X_0 + t X_1`` with ``X_0 ~ N(0, I)`` (the space's projected noise: zero centre of
mass in ``CenteredEuclideanSpace``) and ``X_1`` from the data; the velocity ``v(t, x)`` regresses
``X_1 - X_0``, whose conditional mean given ``X_t`` is the flow's velocity field
(``sde.base_drift`` turns it into the drift of the memoryless SDE).
"""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.method.losses import per_system_mean_sq
from adjoint_sampling.sde.base_drift import VelocityFn
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["flow_matching_loss", "interpolant_sample"]


def interpolant_sample(x1: Tensor, t: Tensor, space: StateSpace, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """``(X_t, X_1 - X_0)``, both ``(M, D)``, for data ``x1`` ``(M, D)`` and one time per system ``t`` ``(B,)``."""
    x0 = space.noise(generator, x1.dtype)
    t_rows = space.rows_of(t.to(x1.dtype))
    return (1.0 - t_rows) * x0 + t_rows * x1, x1 - x0


def flow_matching_loss(velocity: VelocityFn, x1: Tensor, space: StateSpace, generator: torch.Generator | None) -> Tensor:
    """Mean over systems of the per-system mean ``|v(t, X_t) - (X_1 - X_0)|^2``, ``t ~ U(0, 1)`` per
    system; ``x1`` ``(M, D)`` is a batch of data in ``space``."""
    t = torch.rand(space.num_systems, generator=generator, dtype=x1.dtype, device=x1.device)
    xt, target = interpolant_sample(x1, t, space, generator)
    return per_system_mean_sq(space.project_vector(velocity(t, xt)) - target, space)
