"""Does a 3D conformer still have the input's connectivity and stereochemistry?

Everything is perceived from the coordinates alone and compared with the input molecule:
    * connectivity: atoms i, j are bonded when ``d_ij < BOND_TOLERANCE * (r_i + r_j)`` with RDKit's
      covalent radii (the rule of RDKit's ``rdDetermineBonds.DetermineConnectivity``); the
      perceived bond set must equal the molecule's, except that pairs two bonds apart (1-3
      pairs, which sit close to the limit in small rings and hypervalent centres) are only
      held to the clash rule.
    * clash: two atoms closer than ``CLASH_TOLERANCE * (r_i + r_j)``.
    * tetrahedral chirality of every centre whose tag is specified in the input (sign of the
      triple product of its first three neighbours, in RDKit's bond order, seen from the centre).
    * E/Z of every double bond with specified stereo (dihedral of its stereo atoms).

A conformer whose tetrahedral centres are ALL inverted and that is otherwise correct is the
mirror image: ``mirrored=True``, and the Cartesian sampler may reflect it
(:func:`reflect_positions`). Torsional samples never need this (chirality is kept by construction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem

BOND_TOLERANCE: float = 1.3
CLASH_TOLERANCE: float = 0.5

REASON_CLASH = "clash"
REASON_CONNECTIVITY = "connectivity_changed"
REASON_STEREO = "stereo_changed"
REASONS: tuple[str, ...] = (REASON_CLASH, REASON_CONNECTIVITY, REASON_STEREO)

_CIS = (Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOCIS)
_TRANS = (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOTRANS)


@dataclass(frozen=True)
class StructureCheck:
    """Result of checking one conformer.

    Attributes:
        ok: connectivity and stereochemistry equal the input's, and no clash.
        mirrored: every specified tetrahedral centre is inverted and nothing else is wrong
            (``ok`` is then False and ``reason`` is ``"stereo_changed"``).
        reason: ``None`` when ok, else one of :data:`REASONS` (the first problem found, in that order).
    """

    ok: bool
    mirrored: bool
    reason: str | None


@dataclass(frozen=True)
class _StereoReference:
    """What the input molecule specifies, as index arrays."""

    adjacency: np.ndarray  # (N, N) bool
    compared: np.ndarray  # (N, N) bool, pairs whose perceived bonding must equal adjacency
    radius_sum: np.ndarray  # (N, N) float, angstrom
    centres: np.ndarray  # (c,) atom index
    centre_neighbours: np.ndarray  # (c, 3) first three neighbours in RDKit bond order
    centre_sign: np.ndarray  # (c,) +1 / -1 expected sign of the triple product
    double_bonds: np.ndarray  # (s, 4) stereo atom, begin, end, stereo atom
    double_bond_cis: np.ndarray  # (s,) bool


def covalent_radii(atomic_numbers: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    """RDKit's covalent radii ``(N,)`` in angstrom of ``atomic_numbers`` ``(N,)``."""
    table = Chem.GetPeriodicTable()
    return np.array([table.GetRcovalent(int(z)) for z in atomic_numbers], dtype=np.float64)


def _reference(mol: Chem.Mol) -> _StereoReference:
    n = mol.GetNumAtoms()
    radii = covalent_radii([a.GetAtomicNum() for a in mol.GetAtoms()])
    adjacency = np.zeros((n, n), dtype=bool)
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        adjacency[i, j] = adjacency[j, i] = True
    one_three = Chem.GetDistanceMatrix(mol) == 2
    centres, neighbours, signs = [], [], []
    for atom in mol.GetAtoms():
        tag = atom.GetChiralTag()
        if tag not in (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW):
            continue
        nbrs = [b.GetOtherAtomIdx(atom.GetIdx()) for b in atom.GetBonds()]
        if len(nbrs) < 3:
            continue
        centres.append(atom.GetIdx())
        neighbours.append(nbrs[:3])
        # RDKit: CCW = counter-clockwise seen from the first neighbour; a positive triple product
        # (n0-c).((n1-c)x(n2-c)) corresponds to CCW, also for three-coordinate centres (lone pair
        # last), as RDKit's embedder confirms (tests/test_checks.py).
        signs.append(1.0 if tag == Chem.ChiralType.CHI_TETRAHEDRAL_CCW else -1.0)
    quads, cis = [], []
    for bond in mol.GetBonds():
        stereo = bond.GetStereo()
        if stereo not in _CIS + _TRANS:
            continue
        s0, s1 = list(bond.GetStereoAtoms())
        quads.append([s0, bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), s1])
        cis.append(stereo in _CIS)
    return _StereoReference(
        adjacency=adjacency,
        compared=~one_three & ~np.eye(n, dtype=bool),
        radius_sum=radii[:, None] + radii[None, :],
        centres=np.array(centres, dtype=np.int64),
        centre_neighbours=np.array(neighbours, dtype=np.int64).reshape(-1, 3),
        centre_sign=np.array(signs),
        double_bonds=np.array(quads, dtype=np.int64).reshape(-1, 4),
        double_bond_cis=np.array(cis, dtype=bool),
    )


def _as_numpy(positions: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    return np.asarray(positions, dtype=np.float64)


def _abs_dihedrals(pos: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """|dihedral| in radians, ``(B, s)`` for ``pos`` ``(B, N, 3)``."""
    p0, p1, p2, p3 = (pos[:, quads[:, i]] for i in range(4))
    b1 = p2 - p1
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = (p0 - p1) - np.sum((p0 - p1) * b1, -1, keepdims=True) * b1
    w = (p3 - p2) - np.sum((p3 - p2) * b1, -1, keepdims=True) * b1
    return np.abs(np.arctan2(np.sum(np.cross(b1, v) * w, -1), np.sum(v * w, -1)))


def chirality_signs(mol: Chem.Mol, positions: torch.Tensor | np.ndarray) -> np.ndarray:
    """Observed/expected sign ``(B, c)`` per specified tetrahedral centre: +1 kept, -1 inverted, 0 flat."""
    ref = _reference(mol)
    pos = _as_numpy(positions).reshape(-1, mol.GetNumAtoms(), 3)
    return _chirality_signs(ref, pos)


def _chirality_signs(ref: _StereoReference, pos: np.ndarray) -> np.ndarray:
    if len(ref.centres) == 0:
        return np.zeros((pos.shape[0], 0))
    centre = pos[:, ref.centres][:, :, None, :]
    vecs = pos[:, ref.centre_neighbours] - centre  # (B, c, 3, 3)
    triple = np.einsum("bci,bci->bc", vecs[:, :, 0], np.cross(vecs[:, :, 1], vecs[:, :, 2]))
    return np.sign(triple) * ref.centre_sign[None, :]


def check_conformers(mol: Chem.Mol, positions: torch.Tensor | np.ndarray) -> list[StructureCheck]:
    """Check ``positions`` ``(B, N, 3)`` angstrom (atom order of ``mol``) against ``mol``.

    Vectorized over the batch (numpy); see ``benchmarks/molecules_energy.py`` for its speed.
    """
    n = mol.GetNumAtoms()
    pos = _as_numpy(positions)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[1:] != (n, 3):
        raise ValueError(f"positions must be (B, {n}, 3), got {tuple(pos.shape)}")
    ref = _reference(mol)
    dist = np.linalg.norm(pos[:, :, None, :] - pos[:, None, :, :], axis=-1)
    off_diag = ~np.eye(n, dtype=bool)[None]
    clash = ((dist < CLASH_TOLERANCE * ref.radius_sum[None]) & off_diag).any(axis=(1, 2))
    perceived = dist < BOND_TOLERANCE * ref.radius_sum[None]
    connectivity_ok = ((perceived == ref.adjacency[None]) | ~ref.compared[None]).all(axis=(1, 2))
    signs = _chirality_signs(ref, pos)
    centres_kept = (signs > 0).all(axis=1)
    centres_inverted = (signs < 0).all(axis=1) & (signs.shape[1] > 0)
    if len(ref.double_bonds):
        is_cis = _abs_dihedrals(pos, ref.double_bonds) < math.pi / 2
        double_bonds_ok = (is_cis == ref.double_bond_cis[None]).all(axis=1)
    else:
        double_bonds_ok = np.ones(pos.shape[0], dtype=bool)
    results = []
    for b in range(pos.shape[0]):
        if clash[b]:
            results.append(StructureCheck(ok=False, mirrored=False, reason=REASON_CLASH))
        elif not connectivity_ok[b]:
            results.append(StructureCheck(ok=False, mirrored=False, reason=REASON_CONNECTIVITY))
        elif not double_bonds_ok[b]:
            results.append(StructureCheck(ok=False, mirrored=False, reason=REASON_STEREO))
        elif centres_kept[b]:
            results.append(StructureCheck(ok=True, mirrored=False, reason=None))
        else:
            results.append(StructureCheck(ok=False, mirrored=bool(centres_inverted[b]), reason=REASON_STEREO))
    return results


def check_structure(mol: Chem.Mol, positions: torch.Tensor | np.ndarray) -> StructureCheck:
    """Check one conformer ``positions`` ``(N, 3)`` angstrom against ``mol`` (see module docstring)."""
    pos = _as_numpy(positions)
    if pos.ndim != 2:
        raise ValueError(f"positions must be (N, 3), got {tuple(pos.shape)}")
    return check_conformers(mol, pos[None])[0]


def reflect_positions(positions: torch.Tensor) -> torch.Tensor:
    """Mirror image (x -> -x) of ``positions`` ``(..., N, 3)``; inverts every stereocentre."""
    return positions * positions.new_tensor([-1.0, 1.0, 1.0])
