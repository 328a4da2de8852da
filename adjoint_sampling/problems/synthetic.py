"""The synthetic particle problems (DW-4, LJ-13, LJ-55) as a :class:`TrainingProblem`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.energy.synthetic import ParticleEnergy, build_synthetic_energy, synthetic_energy_from_params
from adjoint_sampling.method.posterior_target import MAX_PERMUTED_PARTICLES, ParticleSymmetry
from adjoint_sampling.problems.base import TerminalEvaluation
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace

__all__ = ["SyntheticProblem", "SyntheticProblemParams"]


@dataclass
class SyntheticProblemParams:
    """``problem:`` section of a job config with ``kind: synthetic``."""

    kind: str = "synthetic"
    system: str = "dw4"
    pair_sum: str = "ordered"
    """Lennard-Jones convention: ``ordered`` (i != j, the papers' test sets) or ``unordered`` (i < j)."""


class SyntheticProblem:
    """One system (key 0) of ``n`` particles in D dimensions, zero centre of mass."""

    def __init__(self, energy: ParticleEnergy) -> None:
        self.energy_model = energy
        self.tau = float(energy.tau)

    @classmethod
    def from_name(cls, system: str, pair_sum: str = "ordered") -> SyntheticProblem:
        return cls(build_synthetic_energy(system, pair_sum))

    @classmethod
    def from_description(cls, problem: dict[str, Any]) -> SyntheticProblem:
        """The problem a checkpoint was trained on, from its :meth:`describe` (``ckpt.problem``)."""
        if problem.get("kind") != "synthetic" or problem.get("system") is None:
            raise CheckpointError(f"checkpoint is not a synthetic-system model (problem: {problem})")
        if "energy" not in problem:
            return cls.from_name(str(problem["system"]))
        return cls(synthetic_energy_from_params(problem["energy"]))

    def describe(self) -> dict[str, Any]:
        return {"kind": "synthetic", "system": self.energy_model.name, "energy": self.energy_model.params()}

    def draw_keys(self, n: int, generator: torch.Generator) -> list[int]:
        return [0] * n

    def make_batch(self, keys: Sequence[int]) -> SystemBatch:
        b, n = len(keys), self.energy_model.n_particles
        batch = torch.arange(b).repeat_interleave(n)
        return SystemBatch(list(keys), CenteredEuclideanSpace(batch, b, self.energy_model.dim), None)

    def evaluate(self, batch: SystemBatch, x1: Tensor) -> TerminalEvaluation:
        b, n, d = batch.space.num_systems, self.energy_model.n_particles, self.energy_model.dim
        e, grad = self.energy_model.energy_and_grad(x1.double().view(b, n, d))
        ok = torch.isfinite(e) & torch.isfinite(grad).all(dim=-1).all(dim=-1)
        grad = torch.where(ok.view(-1, 1, 1), grad, torch.zeros_like(grad))
        return TerminalEvaluation(energy=torch.where(ok, e, torch.full_like(e, float("nan"))),
                                  energy_grad=grad.view(b * n, d), ok=ok)

    def symmetry(self) -> ParticleSymmetry:
        """The energy's symmetries a posterior RAM target can average over: reflection always,
        permutations up to ``MAX_PERMUTED_PARTICLES`` particles, rotations in closed form in 2D."""
        e = self.energy_model
        return ParticleSymmetry(e.n_particles, e.dim, permutations=e.n_particles <= MAX_PERMUTED_PARTICLES,
                                reflection=True, planar_rotations=e.dim == 2)

    def warm_start_samples(self, keys: Sequence[int], generator: torch.Generator) -> Tensor | None:
        return None
