"""Small geometric helpers shared across layers: angle wrapping and random orthogonal matrices."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TWO_PI", "wrap_angle", "random_orthogonal"]

TWO_PI = 2.0 * math.pi


def wrap_angle(x: Tensor) -> Tensor:
    """Wrap angles (radians, any shape) into [-pi, pi)."""
    y = torch.remainder(x + math.pi, TWO_PI) - math.pi
    # remainder can round up to exactly 2 pi in floating point
    return torch.where(y >= math.pi, y - TWO_PI, y)


def random_orthogonal(dim: int, generator: torch.Generator, reflection: bool = False) -> Tensor:
    """A random ``(D, D)`` orthogonal matrix with det +1 (rotation) or det -1 (reflection)."""
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if (torch.det(q) < 0) != reflection:
        q[:, 0] = -q[:, 0]
    return q
