"""A short, monotone descent on an energy backend in torsion space: bond lengths, angles, rings and
stereo stay as they are, only the rotatable bonds turn.

Each step is ``theta <- theta - h_b dE/dtheta`` (each torsion moved at most ``max_rotation`` rad),
with a step size ``h_b`` per conformer: a step that lowers the conformer's energy is kept and
``h_b`` grows by ``GROW``; one that does not is undone and ``h_b`` shrinks by ``SHRINK``. So no
conformer ends higher in energy than it started. A conformer whose kept step lowered its energy by
less than ``tolerance`` stops there (converged). One batched energy + forces call per step, on the
conformers still moving.

Units: positions angstrom, energies kcal/mol, ``step_size`` rad per (kcal/mol/rad).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from adjoint_sampling.chemistry.torsions import TorsionTopology, rotate_torsions, torsion_gradient
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.base import EnergyModel

__all__ = ["TorsionalDescent", "torsional_descent", "GROW", "SHRINK"]

logger = logging.getLogger(__name__)

GROW: float = 1.2
"""Factor on a conformer's step size after a step that lowered its energy."""
SHRINK: float = 0.5
"""Factor on a conformer's step size after a step that did not (the step is undone)."""


@dataclass(frozen=True)
class TorsionalDescent:
    """The result of :func:`torsional_descent`.

    Attributes:
        positions: ``(B, N, 3)`` float64 angstrom.
        energy: ``(B,)`` float64 kcal/mol at ``positions`` (NaN where the backend failed at the start).
        initial_energy: ``(B,)`` float64 kcal/mol at the input positions (NaN where it failed).
        accepted_steps: ``(B,)`` long, steps that lowered each conformer's energy.
    """

    positions: Tensor
    energy: Tensor
    initial_energy: Tensor
    accepted_steps: Tensor


def torsional_descent(
    model: EnergyModel, system: AtomicSystem, positions: Tensor, topology: TorsionTopology, steps: int,
    step_size: float, max_rotation: float = 0.3, tolerance: float = 0.0,
) -> TorsionalDescent:
    """At most ``steps`` monotone descent steps in torsion space on ``model``'s energy of
    ``positions`` ``(B, N, 3)`` angstrom (see the module docstring). A conformer whose energy the
    backend cannot compute at the start is returned unchanged; a step whose energy it cannot
    compute counts as one that did not lower it. ``tolerance`` (kcal/mol, 0: never) ends a
    conformer's descent after a kept step that gained less.

    Raises:
        ConfigError: ``steps`` < 0, ``step_size`` <= 0, ``max_rotation`` <= 0 or ``tolerance`` < 0.
    """
    if steps < 0 or not step_size > 0 or not max_rotation > 0 or not tolerance >= 0:
        raise ConfigError(f"torsional descent takes steps >= 0 ({steps}), step_size > 0 ({step_size}), "
                          f"max_rotation > 0 ({max_rotation}) and tolerance >= 0 ({tolerance})")
    pos = positions.detach().to(torch.float64).clone()
    batch = pos.shape[0]
    accepted = torch.zeros(batch, dtype=torch.long)
    if batch == 0 or topology.num_torsions == 0 or steps == 0:
        energy = model.energy_and_forces(system, pos).energy.to(torch.float64) if batch else torch.zeros(0)
        return TorsionalDescent(pos, energy, energy.clone(), accepted)
    start = model.energy_and_forces(system, pos)
    nan = torch.full((batch,), float("nan"), dtype=torch.float64)
    energy = torch.where(start.ok, start.energy.to(torch.float64), nan)
    initial = energy.clone()
    forces = start.forces.to(torch.float64)
    size = torch.full((batch,), float(step_size), dtype=torch.float64)
    active = start.ok.clone()
    for _ in range(steps):
        rows = torch.nonzero(active).flatten()
        if len(rows) == 0:
            break
        sub = pos[rows]
        grad = torsion_gradient(sub, forces[rows], topology)  # (b, m) kcal/mol/rad
        step = (-size[rows, None] * grad).clamp(-max_rotation, max_rotation)
        trial = rotate_torsions(sub, topology, step)
        result = model.energy_and_forces(system, trial)
        trial_energy = result.energy.to(torch.float64)
        lower = result.ok & (trial_energy < energy[rows])
        keep = rows[lower]
        active[keep[(energy[keep] - trial_energy[lower]) < tolerance]] = False
        pos[keep] = trial[lower]
        energy[keep] = trial_energy[lower]
        forces[keep] = result.forces.to(torch.float64)[lower]
        accepted[keep] += 1
        size[rows] = torch.where(lower, size[rows] * GROW, size[rows] * SHRINK)
    logger.debug("torsional descent: %d conformers, mean %.1f accepted steps", batch, float(accepted.float().mean()))
    return TorsionalDescent(pos, energy, initial, accepted)
