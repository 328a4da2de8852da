"""Thermal displacements: classical harmonic sampling in the normal modes of MMFF94 at a minimum.

For a harmonic well with Hessian ``H`` the classical configurational distribution at temperature T
is ``N(x0, kT H^-1)`` (independent of the masses). ``H`` is the MMFF94 Hessian at an MMFF94 minimum
(central finite differences of RDKit's analytic gradient), with the rigid-body translations and
rotations projected out and eigenvalues floored at ``min_curvature`` so that soft torsional modes are
not extrapolated far. Each frame draws T uniformly in ``[t_min, t_max]``.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from adjoint_sampling.core.units import kelvin_to_tau
from adjoint_sampling.energy.mmff import mmff_force_field

__all__ = ["mmff_hessian", "normal_modes", "thermal_displacements"]


def mmff_hessian(mol: Chem.Mol, positions: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """MMFF94 Hessian ``(3N, 3N)`` kcal/mol/angstrom^2 at ``positions`` ``(N, 3)`` angstrom.

    Raises:
        EnergyCalculationError: MMFF94 has no parameters for ``mol``.
    """
    _work, ff = mmff_force_field(mol, positions)
    flat = np.asarray(positions, dtype=np.float64).reshape(-1)

    def gradient(x: np.ndarray) -> np.ndarray:
        ff.CalcEnergy(x.tolist())  # RDKit's CalcGrad(pos) is only right after CalcEnergy at the same pos
        return np.asarray(ff.CalcGrad(x.tolist()))

    hessian = np.zeros((flat.size, flat.size))
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += step
        minus[i] -= step
        hessian[i] = (gradient(plus) - gradient(minus)) / (2 * step)
    return 0.5 * (hessian + hessian.T)


def _internal_basis(positions: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(3N, 3N - r)`` of displacements orthogonal to rigid translations and rotations."""
    n = positions.shape[0]
    centred = positions - positions.mean(axis=0)
    rigid = []
    for axis in np.eye(3):
        rigid.append(np.tile(axis, n))
        rigid.append(np.cross(axis, centred).reshape(-1))
    q, r = np.linalg.qr(np.stack(rigid, axis=1))
    q = q[:, np.abs(np.diag(r)) > 1e-6]
    projector = np.eye(3 * n) - q @ q.T
    values, vectors = np.linalg.eigh(projector)
    return vectors[:, values > 0.5]


def normal_modes(hessian: np.ndarray, positions: np.ndarray, min_curvature: float) -> tuple[np.ndarray, np.ndarray]:
    """Internal normal modes: curvatures ``(M,)`` kcal/mol/angstrom^2 (floored at ``min_curvature``)
    and unit mode vectors ``(3N, M)``."""
    basis = _internal_basis(np.asarray(positions, dtype=np.float64))
    values, vectors = np.linalg.eigh(basis.T @ hessian @ basis)
    return np.maximum(values, min_curvature), basis @ vectors


def thermal_displacements(
    mol: Chem.Mol,
    minima: np.ndarray,
    num: int,
    rng: np.random.Generator,
    t_min: float,
    t_max: float,
    min_curvature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` thermal conformers around ``minima`` ``(K, N, 3)`` (cycled) and their temperatures.

    Returns:
        positions ``(num, N, 3)`` float64 angstrom and temperatures ``(num,)`` kelvin.
    """
    positions = np.zeros((num, minima.shape[1], 3))
    temperatures = rng.uniform(t_min, t_max, size=num)
    modes_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in range(num):
        k = j % len(minima)
        if k not in modes_of:
            modes_of[k] = normal_modes(mmff_hessian(mol, minima[k]), minima[k], min_curvature)
        curvature, vectors = modes_of[k]
        amplitude = np.sqrt(kelvin_to_tau(float(temperatures[j])) / curvature) * rng.standard_normal(curvature.size)
        positions[j] = minima[k] + (vectors @ amplitude).reshape(-1, 3)
    return positions, temperatures
