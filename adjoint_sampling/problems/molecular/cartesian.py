"""Cartesian training problem: the state of a molecule is its atom positions (zero centre of mass).

The terminal energy is the backend's energy plus the bond-structure penalty (bonded pairs too far
apart and non-bonded pairs too close are penalised), in kcal/mol; its gradient is minus the forces.
Warm start (bridge matching) targets are RDKit ETKDG conformers, centred and randomly rotated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.chemistry.graph import ATOM_FEATURE_DIM, BOND_FEATURE_DIM
from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.problems.base import TerminalEvaluation
from adjoint_sampling.problems.molecular.base import MoleculeProblemBase
from adjoint_sampling.problems.molecular.collate import HOP_CLASSES, cartesian_context
from adjoint_sampling.problems.molecular.context import CartesianContext
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace


class CartesianMoleculeProblem(MoleculeProblemBase):
    """Amortized Cartesian problem over a list of molecules (implements ``TrainingProblem``).

    Arguments as :class:`MoleculeProblemBase`; ``records``:
    the molecules; ``energy``: the energy backend, the bond-structure penalty included (``PenalizedEnergy``).
    """

    mode = "cartesian"

    def controller_defaults(self) -> dict[str, Any]:
        """Constructor kwargs a Cartesian molecular controller needs to read these molecules."""
        return {"num_atom_features": ATOM_FEATURE_DIM, "num_pair_features": BOND_FEATURE_DIM + HOP_CLASSES}

    def make_batch(self, keys: Sequence[int]) -> SystemBatch:
        return cartesian_batch(self.records, keys)

    def evaluate(self, batch: SystemBatch, x1: Tensor) -> TerminalEvaluation:
        """Energies ``(B,)`` kcal/mol and dE/dx ``(A, 3)`` kcal/mol/angstrom at positions ``x1`` ``(A, 3)``."""
        energy, grad, ok = evaluate_positions(batch.context, x1, self.records, self.energy)
        return TerminalEvaluation(energy=energy.to(x1.dtype), energy_grad=grad.to(x1.dtype), ok=ok)

    def warm_start_samples(self, keys: Sequence[int], generator: torch.Generator) -> Tensor | None:
        """Positions ``(A, 3)``: a random RDKit conformer per system, centred, randomly rotated."""
        rows = []
        for key in keys:
            pos = self.pool_conformer(int(key), generator)
            rot = random_orthogonal(3, generator).to(pos.dtype)
            rows.append((pos - pos.mean(dim=0)) @ rot.T)
        return torch.cat(rows).float()


def cartesian_batch(records: Sequence[MoleculeRecord], keys: Sequence[int]) -> SystemBatch:
    """One system per key: atom rows in the zero-CoM space, a :class:`CartesianContext`."""
    ctx = cartesian_context(records, keys)
    return SystemBatch(keys=list(keys), space=CenteredEuclideanSpace(ctx.graph.atom_system, len(keys), 3), context=ctx)


def evaluate_positions(
    context: CartesianContext, x1: Tensor, records: Sequence[MoleculeRecord], energy_model: EnergyModel
) -> tuple[Tensor, Tensor, Tensor]:
    """Energies ``(B,)`` float64 (nan where failed), dE/dx ``(A, 3)`` float64 (zero where failed)
    and ok ``(B,)`` for the atom positions ``x1`` ``(A, 3)`` of a Cartesian batch context."""
    graph = context.graph
    energy = torch.full((graph.num_systems,), float("nan"), dtype=torch.float64)
    grad = torch.zeros((x1.shape[0], 3), dtype=torch.float64)
    ok = torch.zeros(graph.num_systems, dtype=torch.bool)
    for g in graph.groups:
        systems = slice(g.system_start, g.system_start + g.num_systems)
        pos = x1[g.atom_rows].detach().to(torch.float64).reshape(g.num_systems, g.num_atoms, 3)
        result = energy_model.energy_and_forces(records[g.key].system, pos)
        energy[systems] = result.energy.to(torch.float64)
        ok[systems] = result.ok
        grad[g.atom_rows] = torch.where(result.ok[:, None, None], -result.forces.to(torch.float64), 0.0).reshape(-1, 3)
    return energy, grad, ok
