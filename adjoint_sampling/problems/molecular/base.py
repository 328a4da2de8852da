"""What the torsional and Cartesian molecular training problems share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.core.units import kelvin_to_tau
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord, draw_molecule_keys

MODES: tuple[str, ...] = ("torsional", "cartesian")
"""Molecular problem modes: torsions on the torus, or Cartesian positions."""


class MoleculeProblemBase:
    """Amortized problem over a list of molecules; subclasses set ``mode`` and the state.

    Args:
        records: the molecules.
        energy: the energy backend (kcal/mol).
        temperature_k: temperature in kelvin; ``tau = k_B T`` in kcal/mol.
        samples_per_molecule: systems of one molecule per drawn group (batch composition).
        description: JSON-able facts stored in checkpoints (energy backend, temperature, ...).
        warm_start_pool: RDKit conformers embedded per molecule for warm starts.
    """

    mode: str = "abstract"

    def __init__(
        self,
        records: Sequence[MoleculeRecord],
        energy: EnergyModel,
        temperature_k: float,
        samples_per_molecule: int = 8,
        description: dict[str, Any] | None = None,
        warm_start_pool: int = 16,
    ) -> None:
        self.records = list(records)
        self.energy = energy
        self.temperature_k = float(temperature_k)
        self.tau = kelvin_to_tau(temperature_k)
        self.samples_per_molecule = int(samples_per_molecule)
        self.description = dict(description or {})
        self.warm_start_pool = int(warm_start_pool)
        self._pools: dict[int, Tensor] = {}

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "temperature_k": self.temperature_k, **self.description}

    def draw_keys(self, n: int, generator: torch.Generator) -> list[int]:
        return draw_molecule_keys(n, len(self.records), self.samples_per_molecule, generator)

    def pool_conformer(self, key: int, generator: torch.Generator) -> Tensor:
        """One random RDKit ETKDG conformer ``(N, 3)`` float64 angstrom of molecule ``key``.

        The pool of ``warm_start_pool`` conformers is embedded once per molecule (seed ``key``);
        a molecule RDKit cannot embed again falls back to its local structure.
        """
        if key not in self._pools:
            record = self.records[key]
            try:
                self._pools[key] = rdkit_conformers(record.parsed.mol, self.warm_start_pool, seed=key)
            except InvalidMoleculeError:
                self._pools[key] = record.local_positions.unsqueeze(0)
        pool = self._pools[key]
        return pool[int(torch.randint(pool.shape[0], (1,), generator=generator))]
