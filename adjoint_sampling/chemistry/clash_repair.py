"""Torsional clash repair: rotate the rotatable bonds of conformers whose non-bonded atoms touch until
they are apart.

A torsional conformer (bond lengths, angles, rings and stereo fixed) fails
:func:`~adjoint_sampling.chemistry.checks.check_conformers` only through a close contact: two atoms
at least three bonds apart closer than ``BOND_TOLERANCE * (r_i + r_j)`` (covalent radii), which the
check perceives as a bond. The repair takes gradient steps in torsion space on a soft-wall
repulsion ``E = sum_pairs relu(d_wall_ij - d_ij)^2`` (A^2) over the pairs whose distance a torsion
changes, with ``d_wall_ij = max(WALL_VDW_FRACTION * (vdW_i + vdW_j), WALL_MARGIN * BOND_TOLERANCE *
(r_i + r_j))``. Only failing conformers move, each until no pair is inside the wall (or the step
limit); a conformer that passes the check is returned unchanged, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem

from adjoint_sampling.chemistry.checks import BOND_TOLERANCE, covalent_radii
from adjoint_sampling.chemistry.torsions import TorsionTopology, rotate_torsions, torsion_gradient

__all__ = ["ClashRepair"]

WALL_VDW_FRACTION: float = 0.75
"""The wall sits at this fraction of the van der Waals contact distance (Bondi radii: H..H 1.8 A,
C..H 2.18 A, C..C 2.55 A, O..H 2.06 A): inside a real contact, below gauche 1-4 distances."""
WALL_MARGIN: float = 1.1
"""The wall is at least this factor beyond the check's bond-perception distance."""
STEP_SIZE: float = 0.05
"""Gradient step in rad per (A^2 / rad) of the repulsion."""
MAX_ROTATION: float = 0.3
"""Largest change of one torsion in one step (rad)."""


class ClashRepair:
    """The repulsion pairs of one molecule (topology of the input, any number of conformers).

    Attributes:
        pairs: ``(P, 2)`` long, atom pairs at least three bonds apart whose distance a torsion changes.
        check_limit: ``(P,)`` float64, the check's bond-perception distance of each pair (A).
        wall: ``(P,)`` float64, the repulsion's wall distance of each pair (A).
    """

    def __init__(self, mol: Chem.Mol, topology: TorsionTopology):
        self.topology = topology
        n = mol.GetNumAtoms()
        table = Chem.GetPeriodicTable()
        numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
        radii = covalent_radii(numbers)
        vdw = np.array([table.GetRvdw(z) for z in numbers], dtype=np.float64)
        far = Chem.GetDistanceMatrix(mol) >= 3
        moves = topology.moving_mask.numpy()  # (m, N)
        changed = np.zeros((n, n), dtype=bool)
        for mask in moves:  # a torsion changes the distance of a pair with exactly one atom on its moving side
            changed |= mask[:, None] != mask[None, :]
        i, j = np.nonzero(np.triu(far & changed, k=1))
        self.pairs = torch.from_numpy(np.stack([i, j], axis=1)).long()
        limit = BOND_TOLERANCE * (radii[i] + radii[j])
        self.check_limit = torch.from_numpy(limit)
        self.wall = torch.from_numpy(np.maximum(WALL_VDW_FRACTION * (vdw[i] + vdw[j]), WALL_MARGIN * limit))

    def failing(self, pos: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: conformers ``pos`` ``(B, N, 3)`` with a pair inside the check's bond distance."""
        if len(self.pairs) == 0:
            return torch.zeros(pos.shape[0], dtype=torch.bool)
        return (self._distances(pos) < self.check_limit.to(pos.dtype)).any(dim=1)

    def forces(self, pos: torch.Tensor) -> torch.Tensor:
        """Minus the gradient ``(B, N, 3)`` of the repulsion (A^2 / A) at ``pos`` ``(B, N, 3)``."""
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        diff = pos[:, i] - pos[:, j]  # (B, P, 3)
        dist = diff.norm(dim=-1).clamp_min(1e-6)
        push = 2.0 * (self.wall.to(pos.dtype) - dist).clamp_min(0.0)  # -dE/dd
        f_pair = (push / dist)[..., None] * diff  # force on i, away from j
        forces = torch.zeros_like(pos)
        forces.index_add_(1, i, f_pair)
        forces.index_add_(1, j, -f_pair)
        return forces

    def inside_wall(self, pos: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: conformers ``pos`` ``(B, N, 3)`` with a pair inside the wall."""
        return (self._distances(pos) < self.wall.to(pos.dtype)).any(dim=1)

    def _distances(self, pos: torch.Tensor) -> torch.Tensor:
        return (pos[:, self.pairs[:, 0]] - pos[:, self.pairs[:, 1]]).norm(dim=-1)

    def repair(self, pos: torch.Tensor, max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``max_steps`` repulsion steps on the failing conformers of ``pos`` ``(B, N, 3)`` A;
        each stops once no pair is inside the wall (beyond the check's limit, so that a repaired
        conformer is not left touching).

        Returns the positions ``(B, N, 3)`` (passing ones unchanged) and ``(B,)`` bool, the
        conformers that still fail the check.
        """
        pos = pos.clone()
        todo = self.failing(pos)
        if self.topology.num_torsions == 0:
            return pos, todo
        for _ in range(max_steps):
            rows = torch.nonzero(todo).flatten()
            if len(rows) == 0:
                break
            sub = pos[rows]
            grad = torsion_gradient(sub, self.forces(sub), self.topology)  # (b, m) dE/dtheta
            step = (-STEP_SIZE * grad).clamp(-MAX_ROTATION, MAX_ROTATION)
            pos[rows] = rotate_torsions(sub, self.topology, step)
            todo[rows] = self.inside_wall(pos[rows])
        return pos, self.failing(pos)

