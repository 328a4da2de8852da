"""What the torsional and Cartesian molecular training problems share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.core.errors import ConfigError, EnergyCalculationError, InvalidMoleculeError
from adjoint_sampling.core.units import kelvin_to_tau
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.energy.relax import relax_mmff
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord, draw_molecule_keys

MODES: tuple[str, ...] = ("torsional", "cartesian")
"""Molecular problem modes: torsions on the torus, or Cartesian positions."""

POOL_RELAXATIONS: tuple[str | None, ...] = (None, "mmff")
"""How the RDKit conformer pool of a molecule is relaxed after embedding."""


class MoleculeProblemBase:
    """Amortized problem over a list of molecules; subclasses set ``mode`` and the state.

    Args:
        records: the molecules.
        energy: the energy backend (kcal/mol).
        temperature_k: temperature in kelvin; ``tau = k_B T`` in kcal/mol.
        samples_per_molecule: systems of one molecule per drawn group (batch composition).
        description: JSON-able facts stored in checkpoints (energy backend, temperature, ...).
        warm_start_pool: RDKit conformers embedded per molecule for warm starts (and flow matching).
        pool_relaxation: ``mmff``: the pool's ETKDG conformers are MMFF94-optimised (ETKDG + MMFF,
            the data of a flow pre-trained on RDKit conformers); ``None``: ETKDG as embedded.
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
        pool_relaxation: str | None = None,
    ) -> None:
        if pool_relaxation not in POOL_RELAXATIONS:
            raise ConfigError(f"pool_relaxation must be one of {POOL_RELAXATIONS}, got {pool_relaxation!r}")
        self.records = list(records)
        self.energy = energy
        self.temperature_k = float(temperature_k)
        self.tau = kelvin_to_tau(temperature_k)
        self.samples_per_molecule = int(samples_per_molecule)
        self.description = dict(description or {})
        self.warm_start_pool = int(warm_start_pool)
        self.pool_relaxation = pool_relaxation
        self._pools: dict[int, Tensor] = {}

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "temperature_k": self.temperature_k, **self.description}

    def draw_keys(self, n: int, generator: torch.Generator) -> list[int]:
        return draw_molecule_keys(n, len(self.records), self.samples_per_molecule, generator)

    def pool_conformer(self, key: int, generator: torch.Generator) -> Tensor:
        """One random RDKit ETKDG conformer ``(N, 3)`` float64 angstrom of molecule ``key``.

        The pool of ``warm_start_pool`` conformers is embedded once per molecule (seed ``key``) and,
        with ``pool_relaxation="mmff"``, MMFF94-optimised (a conformer MMFF fails on stays as
        embedded); a molecule RDKit cannot embed again falls back to its local structure.
        """
        if key not in self._pools:
            record = self.records[key]
            try:
                pool = rdkit_conformers(record.parsed.mol, self.warm_start_pool, seed=key)
                if self.pool_relaxation == "mmff":
                    pool = _mmff_relaxed(record, pool)
                self._pools[key] = pool
            except InvalidMoleculeError:
                self._pools[key] = record.local_positions.unsqueeze(0)
        pool = self._pools[key]
        return pool[int(torch.randint(pool.shape[0], (1,), generator=generator))]


def _mmff_relaxed(record: MoleculeRecord, pool: Tensor) -> Tensor:
    """``pool`` ``(K, N, 3)`` MMFF94-optimised (unchanged where MMFF has no parameters or fails)."""
    try:
        result = relax_mmff(record.system, pool, num_threads=1)
    except EnergyCalculationError:
        return pool
    return torch.where(result.ok[:, None, None], result.positions, pool)
