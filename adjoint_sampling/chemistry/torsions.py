"""Torsional coordinates: rotatable bonds, setting torsions in torch, and dE/dtorsion.

Conventions (used consistently by every function here):
    * A torsion is the dihedral a-b-c-d (IUPAC sign, the same as RDKit's ``GetDihedralRad``)
      about the rotatable bond b-c, in radians in [-pi, pi).
    * Changing torsion k by ``delta`` rotates the atoms of ``moving_mask[k]`` (the c-side of the
      bond, the smaller side) rigidly by ``delta`` about the axis b -> c (right-hand rule);
      this changes the dihedral by exactly ``delta`` and no other dihedral of the topology.
    * Positions in angstrom; ``torsion_gradient`` returns dE/dtheta in (energy unit of the forces)
      per radian, i.e. kcal/mol/rad for forces in kcal/mol/angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rdkit import Chem

from adjoint_sampling.core.geometry import wrap_angle


@dataclass
class TorsionTopology:
    """The rotatable bonds of a molecule.

    Attributes:
        torsion_atoms: ``(m, 4)`` long, atoms a, b, c, d of each torsion (bond b-c).
        moving_mask: ``(m, N)`` bool, atoms that rotate with torsion k (the c-side, which is the
            smaller side of the bond; includes c itself, which lies on the axis).
    """

    torsion_atoms: torch.Tensor
    moving_mask: torch.Tensor

    @property
    def num_torsions(self) -> int:
        return int(self.torsion_atoms.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.moving_mask.shape[1])


def _is_rotatable(bond: Chem.Bond) -> bool:
    """Non-ring single bond between two heavy atoms that each have another heavy neighbour.

    Bonds next to a linear (sp) centre are excluded: their dihedral is undefined.
    """
    if bond.GetBondType() != Chem.BondType.SINGLE or bond.IsInRing():
        return False
    for atom, other in ((bond.GetBeginAtom(), bond.GetEndAtom()), (bond.GetEndAtom(), bond.GetBeginAtom())):
        if atom.GetAtomicNum() == 1 or atom.GetHybridization() == Chem.HybridizationType.SP:
            return False
        if not any(n.GetAtomicNum() > 1 and n.GetIdx() != other.GetIdx() for n in atom.GetNeighbors()):
            return False
    return True


def _side(mol: Chem.Mol, start: int, blocked: int) -> set[int]:
    """Atoms reachable from ``start`` without crossing atom ``blocked`` (one side of a bond)."""
    seen = {start}
    stack = [start]
    while stack:
        atom = mol.GetAtomWithIdx(stack.pop())
        for n in atom.GetNeighbors():
            j = n.GetIdx()
            if j != blocked and j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def _reference_neighbour(mol: Chem.Mol, atom_idx: int, exclude: int) -> int:
    """Lowest-index heavy neighbour of ``atom_idx`` other than ``exclude``."""
    neighbours = mol.GetAtomWithIdx(atom_idx).GetNeighbors()
    candidates = [n.GetIdx() for n in neighbours if n.GetIdx() != exclude and n.GetAtomicNum() > 1]
    return min(candidates)


def find_torsions(mol: Chem.Mol) -> TorsionTopology:
    """Rotatable bonds of ``mol`` (with explicit hydrogens) and the atoms each one moves.

    Returns a :class:`TorsionTopology` with ``m >= 0`` torsions, ordered by bond index.
    """
    n_atoms = mol.GetNumAtoms()
    quads: list[list[int]] = []
    masks: list[list[bool]] = []
    for bond in mol.GetBonds():
        if not _is_rotatable(bond):
            continue
        b, c = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        side_c = _side(mol, c, b)
        side_b = _side(mol, b, c)
        if len(side_b) < len(side_c):
            b, c, side_c = c, b, side_b
        a = _reference_neighbour(mol, b, c)
        d = _reference_neighbour(mol, c, b)
        quads.append([a, b, c, d])
        masks.append([i in side_c for i in range(n_atoms)])
    return TorsionTopology(
        torsion_atoms=torch.tensor(quads, dtype=torch.long).reshape(len(quads), 4),
        moving_mask=torch.tensor(masks, dtype=torch.bool).reshape(len(masks), n_atoms),
    )


def dihedral_angles(pos: torch.Tensor, torsion_atoms: torch.Tensor) -> torch.Tensor:
    """Dihedral angles ``(B, m)`` in radians in [-pi, pi) of ``pos`` ``(B, N, 3)`` (or ``(N, 3)``).

    ``torsion_atoms`` is ``(m, 4)``; the sign convention is RDKit's ``GetDihedralRad``.
    """
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    p0, p1, p2, p3 = (pos[:, torsion_atoms[:, i]] for i in range(4))
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1_unit = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1_unit).sum(-1, keepdim=True) * b1_unit
    w = b2 - (b2 * b1_unit).sum(-1, keepdim=True) * b1_unit
    x = (v * w).sum(-1)
    y = (torch.cross(b1_unit, v, dim=-1) * w).sum(-1)
    return wrap_angle(torch.atan2(y, x))


def _rotate_about_axis(
    points: torch.Tensor, origin: torch.Tensor, axis_unit: torch.Tensor, angle: torch.Tensor
) -> torch.Tensor:
    """Rodrigues rotation of ``points`` ``(B, N, 3)`` by ``angle`` ``(B,)`` about ``axis_unit`` ``(B, 3)``
    through ``origin`` ``(B, 3)``."""
    rel = points - origin[:, None, :]
    k = axis_unit[:, None, :]
    cos = torch.cos(angle)[:, None, None]
    sin = torch.sin(angle)[:, None, None]
    k_dot = (rel * k).sum(-1, keepdim=True)
    rotated = rel * cos + torch.cross(k.expand_as(rel), rel, dim=-1) * sin + k * k_dot * (1 - cos)
    return rotated + origin[:, None, :]


def set_torsions(pos: torch.Tensor, topology: TorsionTopology, angles: torch.Tensor) -> torch.Tensor:
    """Return positions ``(B, N, 3)`` whose torsions equal ``angles`` ``(B, m)`` (radians).

    ``pos`` is ``(N, 3)`` (broadcast to the batch) or ``(B, N, 3)``. Bond lengths, bond angles,
    rings and chirality are unchanged (each step is a rigid rotation of one side of a bond).
    Differentiable in ``pos`` and ``angles``; vectorized over the batch, sequential over bonds.
    """
    if angles.dim() == 1:
        angles = angles.unsqueeze(0)
    batch = angles.shape[0]
    if angles.shape[1] != topology.num_torsions:
        raise ValueError(f"angles has {angles.shape[1]} torsions, topology has {topology.num_torsions}")
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    pos = pos.to(angles.dtype).expand(batch, -1, -1)
    if pos.shape[1] != topology.num_atoms:
        raise ValueError(f"positions have {pos.shape[1]} atoms, topology has {topology.num_atoms}")
    for k in range(topology.num_torsions):
        quad = topology.torsion_atoms[k : k + 1]
        current = dihedral_angles(pos, quad)[:, 0]
        delta = angles[:, k] - current
        b = pos[:, quad[0, 1]]
        c = pos[:, quad[0, 2]]
        axis = (c - b) / (c - b).norm(dim=-1, keepdim=True)
        rotated = _rotate_about_axis(pos, c, axis, delta)
        mask = topology.moving_mask[k].to(pos.device)[None, :, None]
        pos = torch.where(mask, rotated, pos)
    return pos


def rotate_torsions(pos: torch.Tensor, topology: TorsionTopology, deltas: torch.Tensor) -> torch.Tensor:
    """Return positions ``(B, N, 3)`` with each torsion of ``pos`` ``(B, N, 3)`` changed by ``deltas``
    ``(B, m)`` radians: the same result as ``set_torsions(pos, topology, dihedral_angles(pos) + deltas)``
    (a rigid rotation of one side of a bond changes no other dihedral of the topology), but it rotates
    only the moving atoms and computes no dihedral, so it is cheaper in a loop of small steps.
    Not differentiable (in-place updates).
    """
    if deltas.shape != (pos.shape[0], topology.num_torsions):
        raise ValueError(f"deltas must be (B, {topology.num_torsions}) for {pos.shape[0]} conformers, "
                         f"got {tuple(deltas.shape)}")
    pos = pos.to(deltas.dtype).clone()
    for k in range(topology.num_torsions):
        moving = torch.nonzero(topology.moving_mask[k]).flatten().to(pos.device)
        b = pos[:, topology.torsion_atoms[k, 1]]
        c = pos[:, topology.torsion_atoms[k, 2]]
        axis = (c - b) / (c - b).norm(dim=-1, keepdim=True)
        pos[:, moving] = _rotate_about_axis(pos[:, moving], c, axis, deltas[:, k])
    return pos


def torsion_gradient(pos: torch.Tensor, forces: torch.Tensor, topology: TorsionTopology) -> torch.Tensor:
    """dE/dtheta ``(B, m)`` from Cartesian ``forces`` ``(B, N, 3)`` at ``pos`` ``(B, N, 3)``.

    dE/dtheta_k = - u_k . sum_{i moving} (r_i - r_c) x F_i, minus the torque of the moving atoms
    about the unit bond axis u_k = (r_c - r_b)/|r_c - r_b|, matching :func:`set_torsions`.
    """
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    if forces.dim() == 2:
        forces = forces.unsqueeze(0)
    forces = forces.to(pos.dtype)
    b = pos[:, topology.torsion_atoms[:, 1]]  # (B, m, 3)
    c = pos[:, topology.torsion_atoms[:, 2]]
    axis = (c - b) / (c - b).norm(dim=-1, keepdim=True)
    rel = pos[:, None, :, :] - c[:, :, None, :]  # (B, m, N, 3)
    torque_per_atom = torch.cross(rel, forces[:, None, :, :].expand_as(rel), dim=-1)
    mask = topology.moving_mask.to(pos.device, pos.dtype)[None, :, :, None]
    torque = (torque_per_atom * mask).sum(dim=2)  # (B, m, 3)
    return -(torque * axis).sum(-1)

