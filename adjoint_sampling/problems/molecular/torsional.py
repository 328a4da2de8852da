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

from adjoint_sampling.chemistry.graph import ATOM_FEATURE_DIM, BOND_FEATURE_DIM
from adjoint_sampling.chemistry.torsions import dihedral_angles, torsion_gradient
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.problems.base import TerminalEvaluation
from adjoint_sampling.problems.molecular.base import MoleculeProblemBase
from adjoint_sampling.problems.molecular.collate import torsional_context
from adjoint_sampling.problems.molecular.context import TorsionalContext
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import TorusSpace

log = logging.getLogger(__name__)


class TorsionalMoleculeProblem(MoleculeProblemBase):
    """Amortized torsional problem over a list of molecules (implements ``TrainingProblem``).

    Arguments as :class:`MoleculeProblemBase`; ``records``:
    the molecules (each with at least one rotatable bond); ``energy``: the energy backend.
    """

    mode = "torsional"

    def controller_defaults(self) -> dict[str, Any]:
        """Constructor kwargs a torsional controller needs to read these molecules."""
        return {"num_atom_features": ATOM_FEATURE_DIM, "num_bond_features": BOND_FEATURE_DIM}

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
            pos = self.pool_conformer(int(key), generator)
            rows.append(dihedral_angles(pos.unsqueeze(0), self.records[int(key)].topology.torsion_atoms)[0])
        return torch.cat(rows).unsqueeze(-1).float()


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
