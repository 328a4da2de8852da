"""Per-system reductions over the flattened PyG-style layout (rows ``x`` (M, ...) with ``batch`` (M,))."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_sum", "segment_mean", "segment_counts"]


def segment_counts(batch: Tensor, num_systems: int) -> Tensor:
    """Rows per system: ``(B,)`` long tensor."""
    return torch.bincount(batch, minlength=num_systems)


def segment_sum(x: Tensor, batch: Tensor, num_systems: int) -> Tensor:
    """Sum of the rows of each system: ``x`` (M, ...) -> (B, ...)."""
    out = x.new_zeros((num_systems, *x.shape[1:]))
    return out.index_add_(0, batch, x)


def segment_mean(x: Tensor, batch: Tensor, num_systems: int) -> Tensor:
    """Mean of the rows of each system: ``x`` (M, ...) -> (B, ...) (0 for empty systems)."""
    counts = segment_counts(batch, num_systems).clamp(min=1).to(x.dtype)
    return segment_sum(x, batch, num_systems) / counts.view(-1, *([1] * (x.dim() - 1)))
