"""The seam between the generic trainer and a concrete sampling problem.

A problem knows its systems (synthetic particle sets, or molecules), turns a list of system keys
into a :class:`~adjoint_sampling.sde.batch.SystemBatch`, and evaluates the energy of terminal
samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from adjoint_sampling.sde.batch import SystemBatch

__all__ = ["TerminalEvaluation", "TrainingProblem"]


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
