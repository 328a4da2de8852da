"""The one batched interface of all molecular energy backends.

A backend evaluates B conformers of one molecule at a time:
positions ``(B, N, 3)`` in angstrom in, energies ``(B,)`` in kcal/mol and forces ``(B, N, 3)``
in kcal/mol/angstrom out (forces = minus the gradient of the energy). A calculation that fails
for one conformer (for example SCF not converging) does not raise: its ``ok`` entry is False,
its energy is ``nan`` and its forces are zero, and the caller counts and skips it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from adjoint_sampling.core.atomic_system import AtomicSystem


@dataclass(frozen=True)
class EnergyResult:
    """Energies and forces of a batch of conformers of one molecule.

    Attributes:
        energy: ``(B,)`` float64 tensor, kcal/mol; ``nan`` where ``ok`` is False.
        forces: ``(B, N, 3)`` float64 tensor, kcal/mol/angstrom; zero where ``ok`` is False.
        ok: ``(B,)`` bool tensor, False for a failed calculation.
        failure_reasons: one short string per failed conformer, in batch order.
    """

    energy: torch.Tensor
    forces: torch.Tensor
    ok: torch.Tensor
    failure_reasons: tuple[str, ...] = ()

    @property
    def num_failed(self) -> int:
        return int((~self.ok).sum())


class EnergyModel(ABC):
    """A batched energy + forces backend (see the module docstring for shapes and units)."""

    name: str = "abstract"

    @abstractmethod
    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Evaluate ``positions`` ``(B, N, 3)`` angstrom of ``system``."""

    def energy(self, system: AtomicSystem, positions: torch.Tensor) -> torch.Tensor:
        """Energies ``(B,)`` in kcal/mol (``nan`` for failed calculations)."""
        return self.energy_and_forces(system, positions).energy

    def check_system(self, system: AtomicSystem) -> None:
        """Raise if the backend cannot handle ``system`` at all (for example an element it has no
        parameters for: ``InvalidMoleculeError``); the default accepts every system."""

    def applicability_warnings(self, system: AtomicSystem) -> tuple[str, ...]:
        """Notes ``"code: sentence"`` on ``system`` being outside what the backend was made for (it
        still computes); the default has none."""
        return ()
