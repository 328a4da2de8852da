"""The seam between the generic trainer and a concrete sampling problem.

A problem knows its systems (synthetic particle sets, or molecules), turns a list of system keys
into a :class:`SystemBatch` (state space + whatever the controller needs), and evaluates the
energy of terminal samples. Rows of a batch are laid out system after system, in the order of
``keys`` (PyG style), so ``x`` (M, D) splits back into per-system blocks with :func:`split_rows`.

A controller is an ``nn.Module`` with ``forward(t (B,), x (M, D), batch: SystemBatch) -> (M, D)``
returning the scaled control ``f`` (control ``u = sigma_t f``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from adjoint_sampling.segments import segment_counts
from adjoint_sampling.spaces import StateSpace

__all__ = ["SystemBatch", "TerminalEvaluation", "TrainingProblem", "GraphContext", "split_rows"]


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


@dataclass
class TerminalEvaluation:
    """Energies of terminal samples.

    Attributes:
        energy: ``(B,)`` energy units (kcal/mol for molecules); nan where failed.
        energy_grad: ``(M, D)`` dE/dstate in energy units (zero rows for failed systems).
        ok: ``(B,)`` bool; failed systems are counted and skipped, never crash.
    """

    energy: Tensor
    energy_grad: Tensor
    ok: Tensor


@runtime_checkable
class TrainingProblem(Protocol):
    """What the trainer needs from a problem.

    ``describe()`` is optional: a JSON-able dict stored in the model checkpoint's ``problem``
    field (e.g. element list, energy backend) so a sampler can be rebuilt without the config.
    """

    tau: float

    def draw_keys(self, n: int, generator: torch.Generator) -> list[int]:
        """Pick ``n`` system keys for a buffer refresh."""
        ...

    def make_batch(self, keys: Sequence[int]) -> SystemBatch:
        """Build the batch of the given systems (rows in the order of ``keys``)."""
        ...

    def evaluate(self, batch: SystemBatch, x1: Tensor) -> TerminalEvaluation:
        """Energy and its gradient at terminal states ``x1`` ``(M, D)``."""
        ...

    def warm_start_samples(self, keys: Sequence[int], generator: torch.Generator) -> Tensor | None:
        """``X_1`` ``(M, D)`` for bridge-matching warm start of ``make_batch(keys)``, or None."""
        ...


def split_rows(x: Tensor, space: StateSpace) -> list[Tensor]:
    """Split ``x`` (M, ...) into the per-system blocks ``[(n_i, ...)]`` (rows must be contiguous)."""
    counts = segment_counts(space.batch, space.num_systems).tolist()
    return list(torch.split(x, counts, dim=0))
