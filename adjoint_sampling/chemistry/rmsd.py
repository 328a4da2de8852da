"""Heavy-atom, symmetry-aware RMSD between conformers, batched, and RMSD pruning.

The RMSD is the one RDKit's ``rdMolAlign.GetBestRMS`` computes on heavy-atom copies of a
molecule: optimal superposition (proper rotation + translation) minimised over the graph
automorphisms of the heavy-atom molecule, with conjugated terminal groups (carboxylate, nitro,
amidine, ...) treated as symmetric. The automorphisms are found once per molecule; the K x L x P
superpositions (generated x reference x permutation) are done in one batched pass: the 3 x 3
correlation matrices come from one matrix product and the optimal rotation's residual from the
largest eigenvalue of Horn's 4 x 4 key matrix, found with Theobald's QCP Newton iteration.

Positions are in angstrom. All arrays are float64 numpy arrays unless stated otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem

__all__ = [
    "MoleculeSymmetry",
    "heavy_atom_symmetry",
    "symmetric_rmsd_matrix",
    "rmsd_matrix",
    "prune_by_rmsd",
    "greedy_distinct",
    "prune_subset",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PERMUTATIONS: int = 1_000_000
"""Cap on automorphisms enumerated (RDKit's ``GetBestRMS`` default ``maxMatches``)."""

_TERMINAL_CONJUGATED_SMARTS = "[O,N;D1;$([O,N;D1]-[*]=[O,N;D1]),$([O,N;D1]=[*]-[O,N;D1])]~[*]"
_TERMINAL_CONJUGATED = Chem.MolFromSmarts(_TERMINAL_CONJUGATED_SMARTS)

_ELEMENTS_PER_CHUNK: int = 1 << 15
"""Probe x reference x permutation triples handled per batch: small enough that the QCP
temporaries stay in the CPU cache (2-3x faster than 1M-element batches), large enough that
Python overhead per batch is negligible."""

_QCP_MAX_ITERATIONS: int = 60
_QCP_TOLERANCE: float = 1e-12


@dataclass(frozen=True)
class MoleculeSymmetry:
    """What the RMSD needs to know about a molecule, computed once.

    Attributes:
        heavy_atoms: ``(H,)`` indices of the heavy atoms in the full molecule (with hydrogens).
        permutations: ``(P, H)`` graph automorphisms of the heavy-atom molecule, as permutations
            of ``0..H-1``; the identity is among them.
    """

    heavy_atoms: np.ndarray
    permutations: np.ndarray

    @property
    def num_heavy_atoms(self) -> int:
        return int(self.heavy_atoms.shape[0])

    @property
    def num_permutations(self) -> int:
        return int(self.permutations.shape[0])

    def heavy_positions(self, positions: np.ndarray) -> np.ndarray:
        """Select heavy atoms: ``(B, N, 3)`` or ``(N, 3)`` -> ``(B, H, 3)`` or ``(H, 3)``."""
        return np.asarray(positions, dtype=np.float64)[..., self.heavy_atoms, :]


def _symmetrize_terminal_groups(mol: Chem.Mol) -> Chem.Mol:
    """Copy of ``mol`` with conjugated terminal O/N atoms made equivalent (as RDKit does)."""
    rw = Chem.RWMol(mol)
    for terminal, centre in rw.GetSubstructMatches(_TERMINAL_CONJUGATED, uniquify=False):
        rw.GetAtomWithIdx(terminal).SetFormalCharge(0)
        rw.GetBondBetweenAtoms(terminal, centre).SetBondType(Chem.BondType.ONEANDAHALF)
    return rw.GetMol()


def heavy_atom_symmetry(mol: Chem.Mol, max_permutations: int = DEFAULT_MAX_PERMUTATIONS) -> MoleculeSymmetry:
    """Heavy-atom indices and graph automorphisms of ``mol`` (with or without hydrogens).

    Matches RDKit's ``GetBestRMS`` on heavy-atom copies: chirality is ignored and conjugated
    terminal groups are symmetrized.
    """
    heavy_atoms = np.array([a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1], dtype=np.int64)
    heavy = Chem.RemoveHs(mol, sanitize=False) if len(heavy_atoms) < mol.GetNumAtoms() else Chem.Mol(mol)
    if heavy.GetNumAtoms() != len(heavy_atoms):
        raise ValueError("molecule keeps hydrogens after RemoveHs; cannot build the heavy-atom graph")
    heavy.UpdatePropertyCache(strict=False)
    symmetric = _symmetrize_terminal_groups(heavy)
    matches = symmetric.GetSubstructMatches(
        symmetric, uniquify=False, useChirality=False, maxMatches=max_permutations
    )
    if not matches:
        raise ValueError("the heavy-atom molecule does not match itself")
    if len(matches) >= max_permutations:
        log.warning("automorphism enumeration hit the cap of %d permutations", max_permutations)
    return MoleculeSymmetry(heavy_atoms=heavy_atoms, permutations=np.asarray(matches, dtype=np.int64))


def _det4(k: list[list[torch.Tensor]]) -> torch.Tensor:
    """Determinant of batched 4 x 4 matrices given as nested lists of tensors (Laplace by 2x2 minors)."""
    s0 = k[0][0] * k[1][1] - k[1][0] * k[0][1]
    s1 = k[0][0] * k[1][2] - k[1][0] * k[0][2]
    s2 = k[0][0] * k[1][3] - k[1][0] * k[0][3]
    s3 = k[0][1] * k[1][2] - k[1][1] * k[0][2]
    s4 = k[0][1] * k[1][3] - k[1][1] * k[0][3]
    s5 = k[0][2] * k[1][3] - k[1][2] * k[0][3]
    c5 = k[2][2] * k[3][3] - k[3][2] * k[2][3]
    c4 = k[2][1] * k[3][3] - k[3][1] * k[2][3]
    c3 = k[2][1] * k[3][2] - k[3][1] * k[2][2]
    c2 = k[2][0] * k[3][3] - k[3][0] * k[2][3]
    c1 = k[2][0] * k[3][2] - k[3][0] * k[2][2]
    c0 = k[2][0] * k[3][1] - k[3][0] * k[2][1]
    return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0


def _largest_key_eigenvalue(m: torch.Tensor, upper_bound: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of Horn's key matrix for correlation matrices ``m`` ``(3, 3, M)``.

    ``m[a, b]`` is ``sum_i x_ia y_ib`` (contiguous per component); ``upper_bound`` ``(M,)`` is
    ``(|x|^2 + |y|^2) / 2``, the start of Theobald's Newton iteration (QCP, 2005).
    """
    sxx, sxy, sxz = m[0, 0], m[0, 1], m[0, 2]
    syx, syy, syz = m[1, 0], m[1, 1], m[1, 2]
    szx, szy, szz = m[2, 0], m[2, 1], m[2, 2]
    key = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ]
    c2 = -2.0 * (m * m).sum(dim=(0, 1))
    det_m = sxx * (syy * szz - syz * szy) - sxy * (syx * szz - syz * szx) + sxz * (syx * szy - syy * szx)
    c1 = -8.0 * det_m
    c0 = _det4(key)
    del key
    lam = upper_bound.clone()
    for _ in range(_QCP_MAX_ITERATIONS):
        lam2 = lam * lam
        poly = (lam2 + c2) * lam2 + c1 * lam + c0
        slope = 4.0 * lam2 * lam + 2.0 * c2 * lam + c1
        step = poly / slope
        step = torch.nan_to_num_(step, nan=0.0, posinf=0.0, neginf=0.0)
        lam -= step
        if bool((step.abs() <= _QCP_TOLERANCE * lam.abs().clamp_min(1.0)).all()):
            break
    return lam


def symmetric_rmsd_matrix(
    probe: np.ndarray,
    reference: np.ndarray,
    permutations: np.ndarray | None = None,
) -> np.ndarray:
    """RMSD after optimal superposition, minimised over atom permutations, for all pairs.

    Args:
        probe: ``(K, H, 3)`` positions in angstrom (already restricted to the atoms compared).
        reference: ``(L, H, 3)`` positions in angstrom, same atom order.
        permutations: ``(P, H)`` atom permutations to minimise over (``None``: identity only).

    Returns:
        ``(K, L)`` float64 array of RMSD in angstrom:
        ``min_p min_{R, t} sqrt(mean_i |R probe[k, p[i]] + t - reference[l, i]|^2)``.
    """
    probe_t = torch.as_tensor(np.asarray(probe, dtype=np.float64))
    ref_t = torch.as_tensor(np.asarray(reference, dtype=np.float64))
    if probe_t.ndim != 3 or ref_t.ndim != 3 or probe_t.shape[1:] != ref_t.shape[1:] or probe_t.shape[2] != 3:
        raise ValueError(f"expected (K, H, 3) and (L, H, 3) positions, got {tuple(probe_t.shape)} and {tuple(ref_t.shape)}")
    num_probe, num_atoms, _ = probe_t.shape
    num_ref = ref_t.shape[0]
    if permutations is None:
        perms = torch.arange(num_atoms).unsqueeze(0)
    else:
        perms = torch.as_tensor(np.asarray(permutations, dtype=np.int64))
        if perms.ndim != 2 or perms.shape[1] != num_atoms:
            raise ValueError(f"permutations must be (P, {num_atoms}), got {tuple(perms.shape)}")
    out = torch.empty(num_probe, num_ref, dtype=torch.float64)
    if num_probe == 0 or num_ref == 0:
        return out.numpy()
    probe_t = probe_t - probe_t.mean(dim=1, keepdim=True)
    ref_t = ref_t - ref_t.mean(dim=1, keepdim=True)
    probe_sq = (probe_t * probe_t).sum(dim=(1, 2))
    ref_sq = (ref_t * ref_t).sum(dim=(1, 2))
    # (H, L*3): reference atoms as rows, (conformer, coordinate) as columns.
    ref_matrix = ref_t.permute(1, 0, 2).reshape(num_atoms, num_ref * 3)
    num_perms = perms.shape[0]
    chunk = max(1, _ELEMENTS_PER_CHUNK // (num_perms * num_ref))
    for start in range(0, num_probe, chunk):
        block = probe_t[start : start + chunk]  # (k, H, 3)
        k = block.shape[0]
        permuted = block[:, perms]  # (k, P, H, 3)
        rows = permuted.transpose(2, 3).reshape(k * num_perms * 3, num_atoms)
        # (3, 3, k * P * L): one contiguous array per correlation component.
        corr = (rows @ ref_matrix).reshape(k, num_perms, 3, num_ref, 3).permute(2, 4, 0, 1, 3).reshape(3, 3, -1)
        bound = 0.5 * (probe_sq[start : start + k, None, None] + ref_sq[None, None, :])
        bound = bound.expand(k, num_perms, num_ref).reshape(-1)
        lam = _largest_key_eigenvalue(corr, bound)
        msd = (2.0 * (bound - lam) / num_atoms).clamp_min(0.0).reshape(k, num_perms, num_ref)
        out[start : start + k] = msd.min(dim=1).values.sqrt()
    return out.numpy()


def rmsd_matrix(
    symmetry: MoleculeSymmetry, probe_positions: np.ndarray, reference_positions: np.ndarray
) -> np.ndarray:
    """Heavy-atom symmetric RMSD ``(K, L)`` between ``(K, N, 3)`` and ``(L, N, 3)`` full-molecule positions."""
    return symmetric_rmsd_matrix(
        symmetry.heavy_positions(probe_positions), symmetry.heavy_positions(reference_positions), symmetry.permutations
    )


def greedy_distinct(
    symmetry: MoleculeSymmetry, positions: np.ndarray, threshold: float, max_kept: int | None = None, block: int = 64
) -> np.ndarray:
    """Greedy RMSD pruning in order: keep a conformer unless its heavy-atom symmetric RMSD to a kept
    one is below ``threshold`` (angstrom); stop once ``max_kept`` are kept.

    Computes only the RMSDs the greedy needs, in blocks of ``block`` conformers against the kept ones,
    and skips pairs whose heavy-atom radii of gyration differ by ``threshold`` or more
    (``RMSD(a, b) >= |Rg(a) - Rg(b)|`` for any rotation and atom permutation): on flexible molecules
    most pairs. The result is the same as comparing every pair.

    Args:
        positions: ``(B, N, 3)`` angstrom, in order of preference.

    Returns:
        ``(M,)`` increasing indices of the kept conformers.
    """
    if threshold < 0:
        raise ValueError(f"prune threshold must be >= 0, got {threshold}")
    heavy = symmetry.heavy_positions(positions)
    limit = len(heavy) if max_kept is None else min(int(max_kept), len(heavy))
    if threshold == 0 or limit == 0:
        return np.arange(limit, dtype=np.int64)
    centred = heavy - heavy.mean(axis=1, keepdims=True)
    radius = np.sqrt((centred**2).sum(axis=(1, 2)) / heavy.shape[1])
    margin = float(threshold) * (1.0 + 1e-9) + 1e-12  # rounding never skips a pair below the threshold
    kept: list[int] = []
    for start in range(0, len(heavy), block):
        rows = np.arange(start, min(start + block, len(heavy)))
        alive = np.ones(len(rows), dtype=bool)
        if kept:
            old = np.asarray(kept)
            near = np.abs(radius[rows, None] - radius[None, old]) < margin
            cols = old[near.any(axis=0)]
            if len(cols):
                distances = symmetric_rmsd_matrix(heavy[rows], heavy[cols], symmetry.permutations)
                alive = ~(distances < threshold).any(axis=1)
        candidates = rows[alive]
        within = symmetric_rmsd_matrix(heavy[candidates], heavy[candidates], symmetry.permutations)
        chosen: list[int] = []  # positions in candidates
        for j in range(len(candidates)):
            if len(kept) == limit:
                return np.asarray(kept, dtype=np.int64)
            if not chosen or float(within[j, chosen].min()) >= threshold:
                chosen.append(j)
                kept.append(int(candidates[j]))
        if len(kept) == limit:
            break
    return np.asarray(kept, dtype=np.int64)


def prune_by_rmsd(mol: Chem.Mol, positions: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy RMSD pruning: keep a conformer unless it is within ``threshold`` of a kept one.

    Args:
        mol: the molecule (with hydrogens) the ``positions`` belong to.
        positions: ``(B, N, 3)`` in angstrom, in order of preference (earlier ones are kept first).
        threshold: heavy-atom symmetric RMSD in angstrom; a conformer with RMSD ``< threshold``
            to a kept one is dropped.

    Returns:
        ``(M,)`` sorted indices of the kept conformers.
    """
    if threshold < 0:
        raise ValueError(f"prune threshold must be >= 0, got {threshold}")
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return greedy_distinct(heavy_atom_symmetry(mol), positions, threshold)


def prune_subset(
    mol: Chem.Mol, positions: np.ndarray, indices: list[int], threshold: float, dropped: dict[str, int]
) -> list[int]:
    """:func:`prune_by_rmsd` on ``positions[indices]`` (``positions`` ``(B, N, 3)`` angstrom).

    Returns the kept part of ``indices`` (in order) and adds the number pruned to ``dropped["pruned"]``.
    """
    if not indices:
        return []
    kept = [indices[i] for i in prune_by_rmsd(mol, positions[indices], threshold)]
    if len(kept) < len(indices):
        dropped["pruned"] = dropped.get("pruned", 0) + len(indices) - len(kept)
    return kept
