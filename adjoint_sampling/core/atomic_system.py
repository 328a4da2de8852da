"""What an energy backend needs to know about a molecule besides its positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["AtomicSystem"]


@dataclass(frozen=True)
class AtomicSystem:
    """What an energy backend needs to know about a molecule besides its positions.

    Attributes:
        atomic_numbers: ``(N,)`` long tensor.
        charge: total charge in elementary charges (never silently zero: taken from the SMILES).
        multiplicity: spin multiplicity 2S+1 (1 for closed shell).
        key: a stable cache key (for example the canonical SMILES with hydrogens).
        rdkit_mol: the RDKit molecule with explicit hydrogens in the same atom order
            (needed by force fields such as MMFF94); ``None`` for bare atom sets.
    """

    atomic_numbers: torch.Tensor
    charge: int = 0
    multiplicity: int = 1
    key: str = ""
    rdkit_mol: Any = field(default=None, compare=False, repr=False)

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def unpaired_electrons(self) -> int:
        return int(self.multiplicity) - 1
