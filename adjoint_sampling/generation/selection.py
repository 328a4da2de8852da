"""Choosing ``n`` conformers out of more draws: the lowest in energy that are mutually distinct.

A sampler that draws ``m > n`` samples and keeps ``n`` of them spends its budget on distinct basins
instead of repeated ones (after a torsional polish, draws often end in the same minimum), and
leaves out its highest-energy draws.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from adjoint_sampling.chemistry.rmsd import greedy_distinct, heavy_atom_symmetry

__all__ = ["select_low_energy_distinct"]


def select_low_energy_distinct(
    mol: Chem.Mol, positions: np.ndarray, energies: np.ndarray, num: int, min_rmsd: float
) -> np.ndarray:
    """Indices of ``num`` of the conformers ``positions`` ``(M, N, 3)`` angstrom.

    Visits the conformers from the lowest ``energies`` ``(M,)`` (kcal/mol; NaN: unknown, visited
    last, in draw order) upwards and keeps one unless its heavy-atom symmetric RMSD to a kept one is
    below ``min_rmsd`` (angstrom), until ``num`` are kept; if fewer than ``num`` are that distinct,
    the lowest-energy of the rest fill up.

    Returns:
        ``(min(num, M),)`` sorted indices into ``positions``.

    Raises:
        ValueError: ``num`` < 0, ``min_rmsd`` < 0, or ``energies`` not ``(M,)``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if num < 0 or min_rmsd < 0:
        raise ValueError(f"select_low_energy_distinct takes num >= 0 ({num}) and min_rmsd >= 0 ({min_rmsd})")
    if energies.shape != (positions.shape[0],):
        raise ValueError(f"energies must be ({positions.shape[0]},), got {energies.shape}")
    if num >= len(positions):
        return np.arange(len(positions))
    order = np.argsort(np.where(np.isnan(energies), np.inf, energies), kind="stable")
    chosen = list(order[greedy_distinct(heavy_atom_symmetry(mol), positions[order], min_rmsd, max_kept=num)])
    if len(chosen) < num:
        taken = set(chosen)
        chosen += [i for i in order if i not in taken][: num - len(chosen)]
    return np.sort(np.asarray(chosen, dtype=np.int64))
