"""Diagnostic: how well can the RAM regression fit the control when the buffer is already right?

Adjoint Sampling regresses the control onto the adjoint of buffer samples; its fixed point is the
target only as far as the regression is accurate. This module takes the self-consistent loop out:
it fits a fresh controller by the RAM loss on a *fixed* buffer of equilibrium samples (from an
independent random-walk Metropolis run, not the benchmark's reference), so the sampler it gives
shows the error floor of the regression alone (network, optimiser, number of steps).

``python -m adjoint_sampling.benchmarks.synthetic.oracle_fit --system dw4 --template benchmarks/synthetic/models/dw4.pt
--output /tmp/oracle.pt``, then ``adjoint-sampling bench synthetic --system dw4 --model /tmp/oracle.pt``.
"""

from __future__ import annotations

import argparse
import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from adjoint_sampling.core.atomic_io import atomic_torch_save
from adjoint_sampling.core.errors import AdjointSamplingError, ConfigError
from adjoint_sampling.energy.synthetic import ParticleEnergy
from adjoint_sampling.method.adjoint import terminal_adjoint
from adjoint_sampling.method.losses import ram_loss
from adjoint_sampling.method.posterior_target import batch_posterior_adjoint
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.models.checkpoint import ModelCheckpoint, load_model_checkpoint, save_model_checkpoint
from adjoint_sampling.training.optim import cosine_lr, optimizer_step
from adjoint_sampling.training.trainer_config import RAM_TARGETS, check_loss_time_window

__all__ = ["FitSettings", "random_walk_samples", "fit_on_samples", "main"]

log = logging.getLogger(__name__)


def random_walk_samples(energy: ParticleEnergy, num_chains: int, num_steps: int, step_size: float,
                        seed: int, init_scale: float = 2.0) -> tuple[Tensor, Tensor, float]:
    """Final states ``(C, n, D)`` float64 and energies ``(C,)`` of ``C`` independent random-walk
    Metropolis chains at ``energy.tau`` on the zero-CoM subspace, and the mean acceptance.

    Proposal: ``x + step_size * eps``, centred (symmetric, so plain Metropolis). Start: centred
    ``N(0, init_scale^2)``.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (num_chains, energy.n_particles, energy.dim)

    def centred(z: Tensor) -> Tensor:
        return z - z.mean(1, keepdim=True)

    x = centred(init_scale * torch.randn(shape, generator=gen, dtype=torch.float64))
    e = energy.energy(x)
    accepted = 0.0
    for _ in range(num_steps):
        proposal = centred(x + step_size * torch.randn(shape, generator=gen, dtype=torch.float64))
        e_new = energy.energy(proposal)
        accept = torch.rand(num_chains, generator=gen, dtype=torch.float64).log() < (e - e_new) / energy.tau
        x = torch.where(accept[:, None, None], proposal, x)
        e = torch.where(accept, e_new, e)
        accepted += float(accept.double().mean())
    return x, e, accepted / max(num_steps, 1)


@dataclass
class FitSettings:
    """RAM regression on a fixed buffer: Adam, cosine learning rate, optional clip and EMA; loss times
    as the trainer draws them (``loss_time_window`` / ``loss_time_window_fraction``, see
    ``NoiseSchedule.sample_times``)."""

    steps: int = 20_000
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-4
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    adjoint_clip: float | None = 30.0
    seed: int = 0
    ram_target: str = "sample"
    posterior_group_size: int = 64
    loss_time_window: tuple[float, float] | None = None
    loss_time_window_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.ram_target not in RAM_TARGETS:
            raise ConfigError(f"ram_target must be one of {list(RAM_TARGETS)}, got {self.ram_target!r}")
        window = check_loss_time_window(self.loss_time_window, self.loss_time_window_fraction)
        self.loss_time_window = window


def fit_on_samples(template: ModelCheckpoint, samples: Tensor, settings: FitSettings,
                   controller_hparams: dict | None = None) -> tuple[ModelCheckpoint, list[float]]:
    """Fit a fresh controller (the template's kind, hparams updated by ``controller_hparams``) by
    the RAM loss on ``samples`` ``(K, n, D)`` of the template's synthetic system (no rotation or
    permutation augmentation: the controllers are equivariant, so it would not change the loss's
    distribution). Returns a checkpoint like the template with the fitted weights (the EMA if set)
    and the loss every 100 steps."""
    problem = SyntheticProblem.from_description(template.problem)
    hparams = {**template.controller_hparams, **(controller_hparams or {})}
    torch.manual_seed(settings.seed)
    model = build_controller(template.controller_name, hparams)
    schedule = template.build_schedule()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    ema = copy.deepcopy(model.state_dict()) if settings.ema_decay else None
    gen = torch.Generator().manual_seed(settings.seed)
    # the buffer is fixed, so every sample's adjoint is computed once
    k, n, d = samples.shape
    x1_all = samples.to(torch.float32)
    _, grad = problem.energy_model.energy_and_grad(x1_all.double())
    adjoints = terminal_adjoint(grad.to(x1_all.dtype).reshape(-1, d), x1_all.reshape(-1, d),
                                problem.make_batch([0] * k).space, schedule, problem.tau,
                                settings.adjoint_clip).view(k, n, d)
    bs = settings.batch_size
    batch = problem.make_batch([0] * bs)
    symmetry = problem.symmetry() if settings.ram_target == "batch_posterior" else None
    losses: list[float] = []
    for step in range(settings.steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, settings.steps, settings.lr, settings.lr_final)
        pick = torch.randint(0, k, (bs,), generator=gen)
        x1, adj = x1_all[pick].reshape(-1, d), adjoints[pick].reshape(-1, d)
        t = schedule.sample_times(bs, 0.0, gen, torch.float32, settings.loss_time_window,
                                  settings.loss_time_window_fraction)
        xt = batch.space.sample_bridge(x1, t, schedule, gen)
        if symmetry is not None:
            adj = batch_posterior_adjoint(xt, t, x1, adj, schedule, symmetry, settings.posterior_group_size)
        loss = optimizer_step(model, opt, ram_loss(model(t, xt, batch), adj, batch.space), settings.grad_clip,
                              ema, settings.ema_decay)
        if loss is None:  # non-finite gradient: the step was dropped
            log.warning("step %d: non-finite gradient, step skipped", step)
        elif step % 100 == 0:
            losses.append(loss)
            if step % 1000 == 0:
                log.info("step %d: RAM loss %.3f", step, loss)
    fitted = copy.copy(template)
    fitted.controller_hparams = hparams
    fitted.state_dict = ema if ema is not None else model.state_dict()
    fitted.counters = {"oracle_fit_steps": settings.steps}
    return fitted, losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="dw4")
    parser.add_argument("--template", type=Path, required=True, help="checkpoint giving controller, schedule, grid")
    parser.add_argument("--output", type=Path, required=True, help="fitted model checkpoint")
    parser.add_argument("--samples", type=Path, default=Path("runs/oracle_samples.pt"),
                        help="cache of the random-walk samples (made if absent)")
    parser.add_argument("--chains", type=int, default=8000)
    parser.add_argument("--mcmc-steps", type=int, default=50_000)
    parser.add_argument("--step-size", type=float, default=0.3)
    parser.add_argument("--mcmc-seed", type=int, default=7, help="seed of the random-walk run")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--no-clip", action="store_true", help="no gradient-norm clipping (default: clip at 1)")
    parser.add_argument("--ema", type=float, default=None, help="weight EMA decay (default: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=list(RAM_TARGETS), default="sample",
                        help="RAM target: the sample's adjoint, or its posterior mean over the batch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    try:
        template = load_model_checkpoint(args.template)
    except (AdjointSamplingError, OSError) as exc:
        parser.error(f"cannot load --template {args.template}: {exc}")
    if template.problem.get("system") != args.system:
        parser.error(f"{args.template} is not a model of {args.system}")
    if args.samples.exists():
        samples = torch.load(args.samples, weights_only=False)["samples"]
    else:
        energy = SyntheticProblem.from_name(args.system).energy_model
        samples, energies, acceptance = random_walk_samples(energy, args.chains, args.mcmc_steps, args.step_size,
                                                            seed=args.mcmc_seed)
        log.info("random walk: acceptance %.3f, mean energy %.3f", acceptance, float(energies.mean()))
        atomic_torch_save({"samples": samples, "energies": energies, "acceptance": acceptance}, args.samples)
    settings = FitSettings(steps=args.steps, grad_clip=None if args.no_clip else 1.0, ema_decay=args.ema,
                           seed=args.seed, ram_target=args.target)
    fitted, _ = fit_on_samples(template, samples, settings)
    save_model_checkpoint(args.output, fitted)
    log.info("fitted controller written to %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
