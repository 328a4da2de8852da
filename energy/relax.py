"""Local relaxation of conformers with one of the energy backends.

* ``"mmff"``: RDKit's own MMFF94 optimiser (C++, multi-threaded over conformers).
* any other backend name (``"xtb"``, ``"fairchem"``, ``"gnn"``) or an :class:`~energy.base.EnergyModel`
  (the conformer pipeline passes its loaded :class:`~energy.gnn.GNNEnergy` for ``relax="gnn"``):
  a batched L-BFGS on the backend's forces (one batched energy+forces call per step for the
  conformers still moving), with a maximum atomic step, as ASE's LBFGS does.

Positions in angstrom, energies in kcal/mol, forces in kcal/mol/angstrom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.core.errors import ConfigError, EnergyCalculationError
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.registry import ENERGY_BACKENDS, build_energy

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEPS: int = 500
DEFAULT_FMAX: float = 0.5
"""Convergence threshold of the generic optimiser: max atomic force, kcal/mol/angstrom."""

EvaluationCallback = Callable[[np.ndarray, torch.Tensor, EnergyResult], None]
"""``on_evaluation(indices (k,), positions (k, N, 3) float64 angstrom, result)`` of
:func:`relax_with_model`: called after every batched energy call with the conformers evaluated."""


@dataclass
class RelaxResult:
    """Relaxed conformers.

    Attributes:
        positions: ``(B, N, 3)`` float64 angstrom (the input where ``ok`` is False).
        energy: ``(B,)`` float64 kcal/mol at ``positions`` (``nan`` where ``ok`` is False).
        ok: ``(B,)`` bool, False where an energy calculation failed.
        num_steps: ``(B,)`` long, optimiser iterations taken (for ``"mmff"``: RDKit does not report
            iterations, so this is ``max_steps`` for unconverged and ``-1`` for converged conformers).
        converged: ``(B,)`` bool, the optimiser met its convergence criterion within ``max_steps``.
    """

    positions: torch.Tensor
    energy: torch.Tensor
    ok: torch.Tensor
    num_steps: torch.Tensor
    converged: torch.Tensor


def _check_positions(system: AtomicSystem, positions: torch.Tensor) -> torch.Tensor:
    if positions.dim() == 2:
        positions = positions.unsqueeze(0)
    if positions.dim() != 3 or tuple(positions.shape[1:]) != (system.num_atoms, 3):
        raise ValueError(f"positions must be (B, {system.num_atoms}, 3), got {tuple(positions.shape)}")
    return positions.detach().to("cpu", torch.float64)


def relax_mmff(
    system: AtomicSystem, positions: torch.Tensor, max_steps: int = DEFAULT_MAX_STEPS, num_threads: int | None = None
) -> RelaxResult:
    """Relax ``positions`` ``(B, N, 3)`` with RDKit's MMFF94 optimiser (needs ``system.rdkit_mol``).

    Conformers with non-finite coordinates are not optimised; they come back with ``ok=False``.
    """
    pos = _check_positions(system, positions)
    if system.rdkit_mol is None:
        raise EnergyCalculationError("MMFF94 relaxation needs the RDKit molecule (AtomicSystem.rdkit_mol is None)")
    mol = Chem.Mol(system.rdkit_mol)
    mol.RemoveAllConformers()
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise EnergyCalculationError(f"MMFF94 has no parameters for {Chem.MolToSmiles(system.rdkit_mol)}")
    batch = pos.shape[0]
    finite = torch.isfinite(pos).flatten(1).all(dim=1)
    todo = torch.nonzero(finite).flatten().tolist()
    for b in todo:
        conf = Chem.Conformer(mol.GetNumAtoms())
        for i, xyz in enumerate(pos[b].tolist()):
            conf.SetAtomPosition(i, xyz)
        mol.AddConformer(conf, assignId=True)
    not_converged = torch.full((batch,), -1, dtype=torch.long)
    energy = torch.full((batch,), float("nan"), dtype=torch.float64)
    out = pos.clone()
    if todo:
        results = AllChem.MMFFOptimizeMoleculeConfs(
            mol, numThreads=num_threads or available_cores(), maxIters=int(max_steps), ignoreInterfragInteractions=False
        )
        not_converged[todo] = torch.tensor([r[0] for r in results], dtype=torch.long)
        energy[todo] = torch.tensor([r[1] for r in results], dtype=torch.float64)
        out[todo] = torch.from_numpy(np.stack([c.GetPositions() for c in mol.GetConformers()]))
    ok = finite & torch.isfinite(energy) & (not_converged >= 0)
    out = torch.where(ok[:, None, None], out, pos)
    energy = torch.where(ok, energy, torch.full_like(energy, float("nan")))
    converged = ok & (not_converged == 0)
    num_steps = torch.where(converged, torch.full_like(not_converged, -1), torch.full_like(not_converged, max_steps))
    return RelaxResult(positions=out, energy=energy, ok=ok, num_steps=num_steps, converged=converged)


def _lbfgs_direction(grad: np.ndarray, s_hist: list[np.ndarray], y_hist: list[np.ndarray]) -> np.ndarray:
    """Two-loop recursion: approximate -H^-1 grad for flat ``grad`` ``(3N,)``."""
    q = grad.copy()
    alphas = []
    rhos = [1.0 / float(y @ s) for s, y in zip(s_hist, y_hist)]
    for s, y, rho in reversed(list(zip(s_hist, y_hist, rhos))):
        alpha = rho * float(s @ q)
        alphas.append(alpha)
        q -= alpha * y
    if s_hist:
        gamma = float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
    else:
        gamma = 1.0 / 70.0  # initial inverse Hessian, angstrom^2/(kcal/mol) (~ ASE's 70 eV/A^2 guess)
    r = gamma * q
    for (s, y, rho), alpha in zip(zip(s_hist, y_hist, rhos), reversed(alphas)):
        beta = rho * float(y @ r)
        r += s * (alpha - beta)
    return -r


def relax_with_model(
    model: EnergyModel,
    system: AtomicSystem,
    positions: torch.Tensor,
    max_steps: int = DEFAULT_MAX_STEPS,
    fmax: float = DEFAULT_FMAX,
    max_step_size: float = 0.2,
    memory: int = 20,
    on_evaluation: EvaluationCallback | None = None,
) -> RelaxResult:
    """Batched L-BFGS relaxation of ``positions`` ``(B, N, 3)`` on ``model``'s forces.

    Each iteration makes one batched ``energy_and_forces`` call for the conformers not yet
    converged or failed. A step is scaled so no atom moves more than ``max_step_size`` angstrom;
    an uphill step resets that conformer's L-BFGS memory and is retried along the force.

    Args:
        fmax: convergence when the largest atomic force is below this (kcal/mol/angstrom).
        on_evaluation: if given, called after each batched energy call with the batch indices of
            the conformers evaluated, their positions (every point the optimiser visits, uphill
            trial points included) and the backend's result for them (see :data:`EvaluationCallback`).
    """
    pos = _check_positions(system, positions).numpy().copy()
    batch, n_atoms = pos.shape[0], pos.shape[1]
    energy = np.full(batch, np.nan)
    ok = np.ones(batch, dtype=bool)
    converged = np.zeros(batch, dtype=bool)
    num_steps = np.zeros(batch, dtype=np.int64)
    s_hist: list[list[np.ndarray]] = [[] for _ in range(batch)]
    y_hist: list[list[np.ndarray]] = [[] for _ in range(batch)]
    grad = np.zeros((batch, 3 * n_atoms))
    trial = pos.copy()
    first = True
    for _ in range(int(max_steps) + 1):
        active = np.flatnonzero(ok & ~converged)
        if active.size == 0:
            break
        trial_positions = torch.from_numpy(trial[active].copy())
        result = model.energy_and_forces(system, trial_positions)
        if on_evaluation is not None:
            on_evaluation(active.copy(), trial_positions, result)
        r_ok = result.ok.numpy()
        r_energy = result.energy.numpy().astype(np.float64)
        r_grad = -result.forces.numpy().reshape(active.size, -1).astype(np.float64)
        for j, b in enumerate(active):
            if not r_ok[j]:
                ok[b] = False
                continue
            if not first:
                if r_energy[j] > energy[b] + 1e-6 and num_steps[b] < max_steps:
                    # Uphill: forget the curvature model; retry from the old point along -grad,
                    # or with half the step if that was already a steepest-descent step.
                    if s_hist[b]:
                        s_hist[b].clear()
                        y_hist[b].clear()
                        step = _limit_step(_lbfgs_direction(grad[b], [], []), max_step_size)
                    else:
                        step = 0.5 * (trial[b] - pos[b]).reshape(-1)
                    trial[b] = pos[b] + step.reshape(n_atoms, 3)
                    num_steps[b] += 1
                    continue
                s = (trial[b] - pos[b]).reshape(-1)
                y = r_grad[j] - grad[b]
                if float(s @ y) > 1e-10:
                    s_hist[b].append(s)
                    y_hist[b].append(y)
                    if len(s_hist[b]) > memory:
                        s_hist[b].pop(0)
                        y_hist[b].pop(0)
            pos[b] = trial[b]
            energy[b] = r_energy[j]
            grad[b] = r_grad[j]
            if np.abs(grad[b].reshape(n_atoms, 3)).max() == 0 or np.linalg.norm(
                grad[b].reshape(n_atoms, 3), axis=1
            ).max() < fmax:
                converged[b] = True
                continue
            if num_steps[b] >= max_steps:
                continue
            step = _lbfgs_direction(grad[b], s_hist[b], y_hist[b])
            if float(step @ grad[b]) >= 0:  # not a descent direction
                s_hist[b].clear()
                y_hist[b].clear()
                step = _lbfgs_direction(grad[b], [], [])
            trial[b] = pos[b] + _limit_step(step, max_step_size).reshape(n_atoms, 3)
            num_steps[b] += 1
        first = False
        if np.all(num_steps[ok & ~converged] >= max_steps):
            break
    energy[~ok] = np.nan
    return RelaxResult(
        positions=torch.from_numpy(pos),
        energy=torch.from_numpy(energy),
        ok=torch.from_numpy(ok),
        num_steps=torch.from_numpy(num_steps),
        converged=torch.from_numpy(converged),
    )


def _limit_step(step: np.ndarray, max_step_size: float) -> np.ndarray:
    """Scale a flat step ``(3N,)`` so that no atom moves more than ``max_step_size`` angstrom."""
    largest = float(np.linalg.norm(step.reshape(-1, 3), axis=1).max())
    if largest > max_step_size:
        step = step * (max_step_size / largest)
    return step


def relax(
    system: AtomicSystem,
    positions: torch.Tensor,
    method: str | EnergyModel = "mmff",
    max_steps: int = DEFAULT_MAX_STEPS,
    fmax: float = DEFAULT_FMAX,
    **backend_kwargs: object,
) -> RelaxResult:
    """Relax conformers ``positions`` ``(B, N, 3)`` angstrom of ``system``.

    Args:
        method: ``"mmff"`` (RDKit's optimiser), ``"xtb"``, ``"fairchem"`` or ``"gnn"`` (generic L-BFGS
            on a backend built with ``backend_kwargs``, e.g. ``checkpoint_path=`` for fairchem and gnn),
            or an :class:`EnergyModel` instance (``backend_kwargs`` unused).
        max_steps: optimiser iterations per conformer.
        fmax: convergence threshold of the generic optimiser (largest atomic force,
            kcal/mol/angstrom); RDKit's MMFF optimiser uses its own criteria.

    Raises:
        ConfigError: unknown method.
    """
    if isinstance(method, EnergyModel):
        return relax_with_model(method, system, positions, max_steps=max_steps, fmax=fmax)
    if method == "mmff":
        return relax_mmff(system, positions, max_steps=max_steps, **backend_kwargs)  # type: ignore[arg-type]
    if method not in ENERGY_BACKENDS:
        raise ConfigError(f"unknown relaxation method {method!r}; choose one of {', '.join(ENERGY_BACKENDS)}")
    model = build_energy(method, **backend_kwargs)
    return relax_with_model(model, system, positions, max_steps=max_steps, fmax=fmax)
