"""Edges of batched molecular graphs in plain torch (torch-cluster is not available here)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import degree


def pairs_within_systems(atom_system: Tensor, positions: Tensor | None = None, cutoff: float | None = None) -> Tensor:
    """Directed atom pairs ``(2, E)`` (source, target) of the same system, no self pairs.

    Args:
        atom_system: ``(A,)`` long, system of every atom; atoms of a system must be contiguous.
        positions: ``(A, 3)`` angstrom; needed only with ``cutoff``.
        cutoff: keep pairs closer than this (angstrom); ``None`` keeps all (fully connected).
    """
    num_atoms = int(atom_system.shape[0])
    device = atom_system.device
    if num_atoms == 0:
        return torch.zeros((2, 0), dtype=torch.long, device=device)
    counts = degree(atom_system, dtype=torch.long)
    starts = torch.cumsum(counts, 0) - counts
    max_n = int(counts.max())
    local = torch.arange(num_atoms, device=device) - starts[atom_system]
    # dense (B, max_n) slot -> global atom index, -1 for padding
    slots = torch.full((counts.shape[0], max_n), -1, dtype=torch.long, device=device)
    slots[atom_system, local] = torch.arange(num_atoms, device=device)
    valid = slots >= 0
    keep = valid[:, :, None] & valid[:, None, :]
    keep &= ~torch.eye(max_n, dtype=torch.bool, device=device)[None]
    if cutoff is not None:
        if positions is None:
            raise ValueError("pairs_within_systems: a cutoff needs positions")
        dense = positions.new_zeros((counts.shape[0], max_n, 3))
        dense[atom_system, local] = positions.detach()
        keep &= torch.cdist(dense, dense) < cutoff
    b, i, j = keep.nonzero(as_tuple=True)
    return torch.stack([slots[b, i], slots[b, j]])
