"""Torsional training problem: the state of a molecule is its m rotatable-bond torsions.

Bond lengths, angles, rings and chirality come from the molecule's local structure (one RDKit
conformer) and never change. The terminal energy is the backend's energy of the local structure
with the torsions set to ``x1``; its gradient dE/dtheta (kcal/mol/rad) is the torque of the
atoms each bond moves (chain rule from the Cartesian forces).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.errors import InvalidMoleculeError
from adjoint_sampling.molecular.collate import torsional_context
from adjoint_sampling.molecular.conformer_pool import rdkit_conformers
from adjoint_sampling.molecular.context import TorsionalContext
from adjoint_sampling.molecules.graph import ATOM_FEATURE_DIM, BOND_FEATURE_DIM
from adjoint_sampling.molecular.dataset import MoleculeRecord, draw_molecule_keys
from adjoint_sampling.molecules.torsions import dihedral_angles, torsion_gradient
from adjoint_sampling.problem import SystemBatch, TerminalEvaluation
from adjoint_sampling.spaces import TorusSpace
from energy.base import EnergyModel
from energy.units import kelvin_to_tau

log = logging.getLogger(__name__)


class TorsionalMoleculeProblem:
    """Amortized torsional problem over a list of molecules (implements ``TrainingProblem``).

    Args:
        records: the molecules (each with at least one rotatable bond).
        energy: the energy backend.
        temperature_k: temperature in kelvin; ``tau = k_B T`` in kcal/mol.
        samples_per_molecule: systems of one molecule per drawn group (batch composition).
        description: JSON-able facts stored in checkpoints (energy backend, temperature, ...).
        warm_start_pool: RDKit conformers embedded per molecule for warm starts.
    """

    mode = "torsional"

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

    def controller_defaults(self) -> dict[str, Any]:
        """Constructor kwargs a torsional controller needs to read these molecules."""
        return {"num_atom_features": ATOM_FEATURE_DIM, "num_bond_features": BOND_FEATURE_DIM}

    def draw_keys(self, n: int, generator: torch.Generator) -> list[int]:
        return draw_molecule_keys(n, len(self.records), self.samples_per_molecule, generator)

    def make_batch(self, keys: Sequence[int]) -> SystemBatch:
        return torsional_batch(self.records, keys)

    def evaluate(self, batch: SystemBatch, x1: Tensor) -> TerminalEvaluation:
        """Energies ``(B,)`` kcal/mol and dE/dtheta ``(M, 1)`` kcal/mol/rad at torsions ``x1`` ``(M, 1)``."""
        energy, grad, ok = evaluate_torsions(batch.context, x1, self.records, self.energy)
        return TerminalEvaluation(energy=energy.to(x1.dtype), energy_grad=grad.to(x1.dtype), ok=ok)

    def warm_start_samples(self, keys: Sequence[int], generator: torch.Generator) -> Tensor | None:
        """Torsions ``(M, 1)`` of RDKit ETKDG conformers, one random pool member per system."""
        rows = []
        for key in keys:
            pool = self._pool(int(key))
            pick = int(torch.randint(pool.shape[0], (1,), generator=generator))
            rows.append(pool[pick])
        return torch.cat(rows).unsqueeze(-1).float()

    def _pool(self, key: int) -> Tensor:
        if key not in self._pools:
            rec = self.records[key]
            try:
                confs = rdkit_conformers(rec.parsed.mol, self.warm_start_pool, seed=key)
            except InvalidMoleculeError:
                confs = rec.local_positions.unsqueeze(0)
            self._pools[key] = dihedral_angles(confs, rec.topology.torsion_atoms)
        return self._pools[key]


def torsional_batch(records: Sequence[MoleculeRecord], keys: Sequence[int]) -> SystemBatch:
    """One system per key: torsion rows on the torus, a :class:`TorsionalContext`."""
    ctx = torsional_context(records, keys)
    return SystemBatch(keys=list(keys), space=TorusSpace(ctx.torsion_system, len(keys)), context=ctx)


def evaluate_torsions(
    context: TorsionalContext, x1: Tensor, records: Sequence[MoleculeRecord], energy_model: EnergyModel
) -> tuple[Tensor, Tensor, Tensor]:
    """Energies ``(B,)`` float64 (nan where failed), dE/dtheta ``(M, 1)`` float64 (zero where
    failed) and ok ``(B,)`` for the torsions ``x1`` ``(M, 1)`` of a torsional batch context."""
    num_systems = context.graph.num_systems
    energy = torch.full((num_systems,), float("nan"), dtype=torch.float64)
    grad = torch.zeros((x1.shape[0], 1), dtype=torch.float64)
    ok = torch.zeros(num_systems, dtype=torch.bool)
    for block in context.blocks:
        pos = context.block_positions(block, x1.detach().to(torch.float64))
        result = energy_model.energy_and_forces(records[block.key].system, pos)
        dE = torsion_gradient(pos, result.forces.to(torch.float64), block.topology)
        dE = torch.where(result.ok[:, None], dE, torch.zeros_like(dE))
        energy[block.systems] = result.energy.to(torch.float64)
        ok[block.systems] = result.ok
        grad[block.torsion_rows] = dE.reshape(-1, 1)
    return energy, grad, ok
