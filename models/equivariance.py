"""Reusable checks of E(n) equivariance / invariance and permutation equivariance of controllers.

Used by the tests of every controller. A Cartesian controller ``f(t, x, batch)`` must satisfy
``f(t, x Q^T + c, batch) = f(t, x, batch) Q^T`` for orthogonal ``Q`` (rotations and reflections)
and shifts ``c``, and ``f(t, x[p], batch[p]) = f(t, x, batch)[p]`` for permutations ``p`` of the
rows within each system.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn

from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.sde.batch import GraphContext, SystemBatch

__all__ = [
    "random_permutation_within_systems",
    "permute_system_batch",
    "max_abs_error",
    "equivariance_errors",
]


def random_permutation_within_systems(batch: Tensor, generator: torch.Generator) -> Tensor:
    """A permutation ``(M,)`` of row indices that only shuffles rows inside each system."""
    perm = torch.arange(batch.shape[0])
    for s in torch.unique(batch).tolist():
        rows = torch.nonzero(batch == s).flatten()
        perm[rows] = rows[torch.randperm(rows.shape[0], generator=generator)]
    return perm


def permute_system_batch(batch: SystemBatch, perm: Tensor) -> SystemBatch:
    """Apply a within-system row permutation (new row i = old row ``perm[i]``) to a batch whose
    context is a :class:`GraphContext` (node features reordered, edges relabelled)."""
    ctx = batch.context
    if isinstance(ctx, GraphContext):
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.shape[0])
        ctx = GraphContext(
            node_features=None if ctx.node_features is None else ctx.node_features[perm],
            edge_index=None if ctx.edge_index is None else inverse[ctx.edge_index],
            edge_features=ctx.edge_features,
        )
    return dataclasses.replace(batch, context=ctx)


def max_abs_error(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


@torch.no_grad()
def equivariance_errors(
    controller: nn.Module | Callable[[Tensor, Tensor, SystemBatch], Tensor],
    t: Tensor,
    x: Tensor,
    batch: SystemBatch,
    generator: torch.Generator,
    permute_batch: Callable[[SystemBatch, Tensor], SystemBatch] = permute_system_batch,
) -> dict[str, float]:
    """Max abs deviation from equivariance under a random rotation, reflection, translation and
    within-system permutation (keys ``rotation``, ``reflection``, ``translation``, ``permutation``).

    ``x`` is ``(M, D)`` float64 preferably (cast the controller with ``.double()``).
    """
    f = controller(t, x, batch)
    dim = x.shape[1]
    errors: dict[str, float] = {}
    for name, reflect in (("rotation", False), ("reflection", True)):
        q = random_orthogonal(dim, generator, reflection=reflect).to(x.dtype)
        errors[name] = max_abs_error(controller(t, x @ q.T, batch), f @ q.T)
    shift = torch.randn(1, dim, generator=generator, dtype=torch.float64).to(x.dtype) * 3.0
    errors["translation"] = max_abs_error(controller(t, x + shift, batch), f)
    perm = random_permutation_within_systems(batch.space.batch, generator)
    errors["permutation"] = max_abs_error(controller(t, x[perm], permute_batch(batch, perm)), f[perm])
    return errors
