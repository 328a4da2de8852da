"""FIFO replay buffer of terminal samples ``X_1`` and their adjoints, one record per system."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.method.importance import selection_probabilities

__all__ = ["BufferItem", "ReplayBuffer"]


@dataclass
class BufferItem:
    """One system's terminal sample.

    Attributes:
        key: which system (index into the problem's systems; synthetic problems use 0).
        x1: ``(n_i, D)`` terminal state.
        adjoint: ``(n_i, D)`` terminal adjoint ``a``.
        energy: energy of ``x1`` in energy units.
        log_weight: log importance weight of ``x1`` with respect to the target, up to a
            per-system constant (:mod:`adjoint_sampling.importance`; 0 when not tracked).
    """

    key: int
    x1: Tensor
    adjoint: Tensor
    energy: float
    log_weight: float = 0.0


class ReplayBuffer:
    """A FIFO of at most ``capacity`` :class:`BufferItem` (the oldest are dropped first)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: deque[BufferItem] = deque(maxlen=self.capacity)
        self._selection: Tensor | None = None  # sample_by_weight's probabilities until the items change

    def __len__(self) -> int:
        return len(self._items)

    def push(self, items: Iterable[BufferItem]) -> None:
        """Append items (detached, on CPU), dropping the oldest beyond capacity."""
        self._selection = None
        for item in items:
            self._items.append(
                BufferItem(int(item.key), item.x1.detach().cpu(), item.adjoint.detach().cpu(), float(item.energy),
                           float(item.log_weight))
            )

    def sample(self, n: int, generator: torch.Generator | None) -> list[BufferItem]:
        """Draw ``n`` items uniformly: without replacement if ``n <= len``, else with replacement."""
        size = len(self._items)
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if n <= size:
            idx = torch.randperm(size, generator=generator)[:n]
        else:
            idx = torch.randint(size, (n,), generator=generator)
        return [self._items[int(i)] for i in idx]

    def sample_by_weight(self, n: int, generator: torch.Generator | None) -> list[BufferItem]:
        """Draw ``n`` items with replacement, each system keeping its share of the buffer and its
        items drawn in proportion to their importance weights (``exp(log_weight)``)."""
        if not self._items:
            raise ValueError("cannot sample from an empty replay buffer")
        if self._selection is None:  # once per buffer state, not once per gradient step
            self._selection = selection_probabilities(self.log_weights(), self.keys())
        idx = torch.multinomial(self._selection, n, replacement=True, generator=generator)
        return [self._items[int(i)] for i in idx]

    def log_weights(self) -> Tensor:
        """Log importance weights of all items ``(len,)`` float64."""
        return torch.tensor([item.log_weight for item in self._items], dtype=torch.float64)

    def keys(self) -> Tensor:
        """System keys of all items ``(len,)`` long."""
        return torch.tensor([item.key for item in self._items], dtype=torch.long)

    def energies(self) -> Tensor:
        """Energies of all items ``(len,)`` float64."""
        return torch.tensor([item.energy for item in self._items], dtype=torch.float64)

    def save_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the buffer exactly (tensors and plain Python values)."""
        items = list(self._items)
        return {
            "capacity": self.capacity,
            "keys": [item.key for item in items],
            "rows": [int(item.x1.shape[0]) for item in items],
            # concatenated: one tensor each, fast to save however many items there are
            "x1": torch.cat([item.x1 for item in items]) if items else torch.zeros(0),
            "adjoint": torch.cat([item.adjoint for item in items]) if items else torch.zeros(0),
            "energy": [item.energy for item in items],
            "log_weight": [item.log_weight for item in items],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`save_state` output (raises ``CheckpointError`` if malformed)."""
        try:
            keys, rows, energies = state["keys"], state["rows"], state["energy"]
            log_weights = state.get("log_weight", [0.0] * len(energies))  # states written before weights
            capacity = int(state["capacity"])
            x1s = torch.split(state["x1"], rows) if rows else []
            adjs = torch.split(state["adjoint"], rows) if rows else []
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"malformed replay buffer state: missing {exc}") from exc
        except RuntimeError as exc:
            raise CheckpointError(f"malformed replay buffer state: {exc}") from exc
        if not (len(keys) == len(x1s) == len(adjs) == len(energies) == len(log_weights)):
            raise CheckpointError("malformed replay buffer state: field lengths differ")
        self.capacity = capacity
        self._selection = None
        self._items = deque(
            (BufferItem(int(k), x, a, float(e), float(w)) for k, x, a, e, w in zip(keys, x1s, adjs, energies, log_weights)),
            maxlen=capacity,
        )
