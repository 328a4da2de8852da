"""The terminal adjoint of Adjoint Sampling (constant in time, because the base drift is zero)."""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["clip_per_row", "terminal_adjoint"]


def clip_per_row(v: Tensor, max_norm: float | None) -> Tensor:
    """Scale every row of ``v`` (M, D) whose Euclidean norm exceeds ``max_norm`` down to it.

    ``None`` (or a non-positive value) returns ``v`` unchanged; non-finite rows become zero.
    """
    v = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    if max_norm is None or max_norm <= 0:
        return v
    norm = v.norm(dim=-1, keepdim=True)
    return v * (max_norm / norm.clamp(min=max_norm))


def terminal_adjoint(
    energy_grad: Tensor,
    x1: Tensor,
    space: StateSpace,
    schedule: NoiseSchedule,
    tau: float,
    max_norm: float | None,
) -> Tensor:
    """``a = project_vector(clip(dE/dx / tau + grad log p1base(x1)))``, shape (M, D).

    ``energy_grad`` is dE/dx (M, D) in energy units per state unit; ``tau`` the temperature in
    energy units. ``a`` is the gradient of the terminal cost ``g = E / tau + log p1base``; the RAM
    regression target of the scaled control ``f`` is ``-a``.
    """
    a = energy_grad / tau + space.base_log_density_grad(x1, schedule)
    return space.project_vector(clip_per_row(a, max_norm))
