"""Seeded random generators; every random draw of the method takes an explicit generator."""

from __future__ import annotations

import torch

__all__ = ["make_generator", "rank_seed"]


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s generator (distinct per rank, rank 0 keeps ``seed``)."""
    return int(seed) + 1_000_003 * int(rank)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen
