"""Training losses on the scaled control ``f`` (M, D).

Normalisation of the losses: squared error summed over the D components of a row, averaged
over the rows of each system, then averaged over systems. Systems of different sizes therefore
weigh the same in amortized training.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["per_system_mean_sq", "ram_loss", "bridge_matching_loss", "adjoint_matching_loss"]


def per_system_mean_sq(residual: Tensor, space: StateSpace) -> Tensor:
    """Mean over systems of the mean over rows of ``||residual_row||^2``; scalar."""
    per_row = residual.pow(2).sum(-1)
    return scatter(per_row, space.batch, dim=0, dim_size=space.num_systems, reduce="mean").mean()


def ram_loss(f_pred: Tensor, adjoint: Tensor, space: StateSpace) -> Tensor:
    """Reciprocal Adjoint Matching: ``|| f(t, X_t) + a ||^2`` (= ``|| u / sigma_t + a ||^2``)."""
    return per_system_mean_sq(space.project_vector(f_pred) + adjoint, space)


def bridge_matching_loss(
    f_pred: Tensor, x1: Tensor, xt: Tensor, t_rows: Tensor, schedule: NoiseSchedule, space: StateSpace
) -> Tensor:
    """Bridge matching (warm start): regress ``f`` onto ``(X_1 - X_t) / (nu_1 - nu_t)``.

    ``t_rows`` is the time of every row, ``(M,)`` or ``(M, 1)``. On the torus the target is the
    score of the wrapped transition kernel (see ``StateSpace.bridge_target``).
    """
    remaining = (schedule.nu1 - schedule.nu(t_rows.reshape(-1, 1).to(x1.dtype))).clamp(min=1e-6)
    target = space.bridge_target(x1, xt, remaining)
    return per_system_mean_sq(space.project_vector(f_pred) - target, space)


def adjoint_matching_loss(f_pred: Tensor, adjoint: Tensor, space: StateSpace, weight: Tensor | None = None) -> Tensor:
    """Adjoint Matching: ``|| f(t_k, X_k) + a_k ||^2`` at ``T`` times, averaged over the times.

    ``f_pred`` and ``adjoint`` are ``(T, M, D)`` (``method.adjoint_matching.AdjointMatchingTargets``
    pairs them); every time is normalised as :func:`ram_loss` (per system, then over systems).
    ``weight`` ``(T,)`` scales each time: ``None`` is ``|| u / sigma + a ||^2`` (this repo's
    Adjoint Sampling normalisation; with ``b = 0`` every time is exactly ``ram_loss`` of the
    terminal adjoint), ``sigma_t^2`` is DESIGN's ``|| u + sigma a ||^2``. Same minimiser, ``f = -a``.
    """
    projected = torch.stack([space.project_vector(f) for f in f_pred])
    per_row = (projected + adjoint).pow(2).sum(-1)
    per_time = scatter(per_row, space.batch, dim=1, dim_size=space.num_systems, reduce="mean").mean(-1)
    if weight is not None:
        per_time = per_time * weight.to(per_time.dtype)
    return per_time.mean()
