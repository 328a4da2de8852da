"""Batches of systems in the flattened (PyG-style) layout shared by the SDE, the controllers and the problems.

A problem knows its systems (synthetic particle sets, or molecules), turns a list of system keys
into a :class:`SystemBatch` (state space + whatever the controller needs), and evaluates the
energy of terminal samples. Rows of a batch are laid out system after system, in the order of
``keys`` (PyG style), so ``x`` (M, D) splits back into per-system blocks with :func:`split_rows`.

A controller is an ``nn.Module`` with ``forward(t (B,), x (M, D), batch: SystemBatch) -> (M, D)``
returning the scaled control ``f`` (control ``u = sigma_t f``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.utils import degree

from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["SystemBatch", "GraphContext", "batch_to", "split_rows"]


@dataclass
class GraphContext:
    """Controller inputs for particle/atom graphs (optional parts are ``None``).

    Attributes:
        node_features: ``(M, F)`` float per-row features (e.g. one-hot elements), or None.
        edge_index: ``(2, E)`` long, directed edges between rows of the same system; None means
            the fully connected graph within each system.
        edge_features: ``(E, F_e)`` float features of ``edge_index`` edges, or None.
    """

    node_features: Tensor | None = None
    edge_index: Tensor | None = None
    edge_features: Tensor | None = None


@dataclass
class SystemBatch:
    """A batch of systems.

    Attributes:
        keys: system keys, one per system (synthetic: all 0; molecules: index into the SMILES list).
        space: the state space (holds ``batch`` (M,) and ``num_systems``).
        context: whatever the controller needs (a :class:`GraphContext`, torsion topology, ...).
    """

    keys: list[int]
    space: StateSpace
    context: Any = None


def batch_to(batch: SystemBatch, device: torch.device | str) -> SystemBatch:
    """``batch`` with its space and context tensors on ``device`` (``batch`` itself when on it already).

    Contexts that can move: ``None``, a :class:`GraphContext`, anything with a ``to(device)`` method.

    Raises:
        TypeError: a context of another kind (a problem that cannot leave the CPU).
    """
    device = torch.device(device)
    if batch.space.batch.device == device:
        return batch
    context = batch.context
    if isinstance(context, GraphContext):
        context = GraphContext(*(None if v is None else v.to(device)
                                 for v in (context.node_features, context.edge_index, context.edge_features)))
    elif context is not None:
        move = getattr(context, "to", None)
        if not callable(move):
            raise TypeError(f"a batch context of type {type(context).__name__} cannot move to {device}")
        context = move(device)
    return dataclasses.replace(batch, space=batch.space.to(device), context=context)


def split_rows(x: Tensor, space: StateSpace) -> list[Tensor]:
    """Split ``x`` (M, ...) into the per-system blocks ``[(n_i, ...)]`` (rows must be contiguous)."""
    counts = degree(space.batch, space.num_systems, dtype=torch.long).tolist()
    return list(torch.split(x, counts, dim=0))
