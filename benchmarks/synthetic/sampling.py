"""Draw samples of a synthetic system from a trained model checkpoint."""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.method.importance import terminal_log_weight
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.integrate import integrate_with_path_weight
from adjoint_sampling.models.checkpoint import ModelCheckpoint

__all__ = ["sample_checkpoint", "sample_checkpoint_with_log_weights"]


def sample_checkpoint(ckpt: ModelCheckpoint, num_samples: int, seed: int, chunk: int = 500) -> tuple[Tensor, Tensor]:
    """Return ``(samples (K, n, D) float64, energies (K,))`` from a synthetic-system checkpoint."""
    x, e, _ = sample_checkpoint_with_log_weights(ckpt, num_samples, seed, chunk)
    return x, e


@torch.no_grad()
def sample_checkpoint_with_log_weights(ckpt: ModelCheckpoint, num_samples: int, seed: int,
                                       chunk: int = 500) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`sample_checkpoint` (the same samples for the same seed), also returning each
    sample's log importance weight ``(K,)`` with respect to the target, up to a constant
    (:mod:`adjoint_sampling.importance`)."""
    problem = SyntheticProblem.from_description(ckpt.problem)
    controller, schedule, grid = ckpt.build_controller(), ckpt.build_schedule(), ckpt.time_grid()
    gen = torch.Generator().manual_seed(seed)
    n, d = problem.energy_model.n_particles, problem.energy_model.dim
    xs, es, ws = [], [], []
    for start in range(0, num_samples, chunk):
        batch = problem.make_batch([0] * min(chunk, num_samples - start))
        rows, log_path_ratio = integrate_with_path_weight(lambda t, x: controller(t, x, batch), batch.space, schedule,
                                                          grid, gen)
        x1 = rows.double().view(-1, n, d)
        energy = problem.energy_model.energy(x1)
        xs.append(x1)
        es.append(energy)
        ws.append(terminal_log_weight(log_path_ratio, energy, batch.space.base_log_density(rows, schedule),
                                      float(ckpt.tau)))
    return torch.cat(xs), torch.cat(es), torch.cat(ws)
