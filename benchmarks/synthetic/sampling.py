"""Draw samples of a synthetic system from a trained model checkpoint."""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.checkpoint import ModelCheckpoint
from adjoint_sampling.errors import CheckpointError
from adjoint_sampling.synthetic_problem import SyntheticProblem
from adjoint_sampling.trainer import sample_terminal

__all__ = ["sample_checkpoint"]


@torch.no_grad()
def sample_checkpoint(ckpt: ModelCheckpoint, num_samples: int, seed: int, chunk: int = 500) -> tuple[Tensor, Tensor]:
    """Return ``(samples (K, n, D) float64, energies (K,))`` from a synthetic-system checkpoint."""
    system = ckpt.problem.get("system")
    if ckpt.problem.get("kind") != "synthetic" or system is None:
        raise CheckpointError(f"checkpoint is not a synthetic-system model (problem: {ckpt.problem})")
    problem = SyntheticProblem.from_name(system)
    controller, schedule, grid = ckpt.build_controller(), ckpt.build_schedule(), ckpt.time_grid()
    gen = torch.Generator().manual_seed(seed)
    n, d = problem.energy_model.n_particles, problem.energy_model.dim
    xs, es = [], []
    for start in range(0, num_samples, chunk):
        batch = problem.make_batch([0] * min(chunk, num_samples - start))
        x1 = sample_terminal(controller, batch, schedule, grid, gen).double().view(-1, n, d)
        xs.append(x1)
        es.append(problem.energy_model.energy(x1))
    return torch.cat(xs), torch.cat(es)
