"""The Adjoint Sampling trainer: buffer refreshes (few energy calls) + many gradient steps.

Phases: optional bridge-matching warm start, initial buffer fill, then ``iterations`` times:
simulate ``samples_per_refresh`` new ``X_1`` with the current control, one energy+gradient call
each, push ``(X_1, a)`` into the replay buffer, then ``grad_steps_per_refresh`` RAM steps on
batches drawn from the buffer.

Run directory layout (rank 0 writes everything except the per-rank shards):
- ``metrics.jsonl``: one JSON object per iteration.
- ``model.pt``: the self-describing model checkpoint (:mod:`adjoint_sampling.checkpoint`).
- ``train_state/<tag>/shared.pt``: controller, optimizer and counters.
- ``train_state/<tag>/rank<r>.pt``: rank r's replay buffer and random generator state.
- ``train_state/latest.json``: the tag of the last complete state, written after all shards.

Resuming (``Trainer.run`` does it automatically) restores all of these, so a killed run started
again with the same command continues exactly where the last checkpoint left it.

Devices: the controller may run on an accelerator (``device``); everything else stays on the CPU:
the problem's batches and energies, the replay buffer, the random generator (every random number is
drawn on the CPU, so a run's random stream does not depend on the device) and every saved state. A
run can therefore be resumed on another device. Only the controller's forward and backward passes
move: the simulated paths' drift and the RAM regression.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from adjoint_sampling.core.atomic_io import atomic_torch_save, atomic_write_text
from adjoint_sampling.core.errors import CheckpointError, ConfigError, TrainingError
from adjoint_sampling.core.rng import make_generator, rank_seed
from adjoint_sampling.method.adjoint import terminal_adjoint
from adjoint_sampling.method.importance import effective_sample_fraction, terminal_log_weight
from adjoint_sampling.method.losses import bridge_matching_loss, ram_loss
from adjoint_sampling.method.posterior_target import ParticleSymmetry, batch_posterior_adjoint
from adjoint_sampling.method.replay_buffer import BufferItem, ReplayBuffer
from adjoint_sampling.problems.base import TrainingProblem
from adjoint_sampling.sde.batch import SystemBatch, batch_to, split_rows
from adjoint_sampling.sde.integrate import integrate_with_path_weight, sample_terminal
from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.time_grids import time_grid
from adjoint_sampling.models.checkpoint import ModelCheckpoint, save_model_checkpoint
from adjoint_sampling.training.distributed import DistributedContext
from adjoint_sampling.training.optim import cosine_lr, optimizer_step
from adjoint_sampling.training.stop_signal import StopOnSigterm
from adjoint_sampling.training.trainer_config import TrainerConfig

__all__ = ["TrainingCounters", "Trainer", "training_state_dir", "has_training_state"]

log = logging.getLogger(__name__)


def _on_cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict's tensors copied to the CPU (saved states load on any machine)."""
    return {k: v.detach().cpu() for k, v in state.items()}


def training_state_dir(run_dir: str | Path) -> Path:
    """Where a run keeps its resumable state (``train_state/`` in the run directory)."""
    return Path(run_dir) / "train_state"


def has_training_state(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a complete training state to resume from."""
    return (training_state_dir(run_dir) / "latest.json").is_file()


@dataclass
class TrainingCounters:
    """Progress of a run, summed over ranks where it says so."""

    iteration: int = 0
    warm_start_steps: int = 0
    initial_fill_done: bool = False
    grad_steps: int = 0
    energy_evals: int = 0  # all ranks
    failed_evals: int = 0  # all ranks
    train_seconds: float = 0.0
    checkpoint_index: int = 0
    metrics_bytes: int = 0  # length of metrics.jsonl at the last checkpoint
    skipped_steps: int = 0  # gradient steps dropped for a non-finite gradient (counted in grad_steps)

    @property
    def grad_steps_per_energy_eval(self) -> float:
        return self.grad_steps / max(self.energy_evals, 1)


class _Stop(Exception):
    """Raised inside the loop to stop cleanly after a signal."""


class Trainer:
    """Runs (and resumes) Adjoint Sampling training of ``controller`` on ``problem``."""

    def __init__(
        self,
        problem: TrainingProblem,
        controller: nn.Module,
        schedule: NoiseSchedule,
        config: TrainerConfig,
        run_dir: str | Path,
        dist_ctx: DistributedContext | None = None,
        job_config: dict[str, Any] | None = None,
        progress: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.problem = problem
        self.controller = controller
        self.schedule = schedule
        self.config = config
        self.run_dir = Path(run_dir)
        self.dist = dist_ctx or DistributedContext()
        self.job_config = job_config or {}
        self.progress = progress
        self.device = torch.device(device)
        if self.device.type != "cpu":
            self._check_device()
            controller.to(self.device)
        self.model = self.dist.wrap(controller)
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=config.lr)
        self.buffer = ReplayBuffer(config.buffer_capacity)
        self.generator = make_generator(rank_seed(config.seed, self.dist.rank))
        self.counters = TrainingCounters()
        self.ema: dict[str, Tensor] | None = (
            {k: v.detach().clone() for k, v in controller.state_dict().items()} if config.ema_decay else None
        )
        self.grid = time_grid(config.sde_steps, config.grid_kind, power=config.grid_power)
        self.symmetry: ParticleSymmetry | None = None
        if config.ram_target == "batch_posterior":
            symmetry = getattr(problem, "symmetry", None)
            if not callable(symmetry):
                raise ConfigError(f"trainer.ram_target 'batch_posterior' needs a problem with symmetry(); "
                                  f"{type(problem).__name__} has none")
            self.symmetry = symmetry()
        self.stop_signal = StopOnSigterm()

    def _check_device(self) -> None:
        """``ConfigError`` unless the controller can run on ``self.device`` for this problem and run."""
        if self.dist.world_size > 1:
            raise ConfigError("multi-process training runs on the CPU; on an accelerator, train in one process")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device} asked for, but this torch build sees no CUDA device")
        try:
            batch_to(self.problem.make_batch(self.problem.draw_keys(1, make_generator(0))), self.device)
        except TypeError as exc:
            raise ConfigError(f"{type(self.problem).__name__} cannot train on {self.device}: {exc}") from None

    # ------------------------------------------------------------------ paths
    @property
    def state_dir(self) -> Path:
        return training_state_dir(self.run_dir)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.pt"

    # ------------------------------------------------------------------ state
    def save_state(self) -> None:
        """Checkpoint atomically: rank shards, shared state (rank 0), then ``latest.json``."""
        self.counters.checkpoint_index += 1
        size = self.metrics_path.stat().st_size if self.dist.is_main and self.metrics_path.exists() else 0
        self.counters.metrics_bytes = int(self.dist.sum([float(size)])[0])  # rank 0's value on every rank
        tag = f"{self.counters.checkpoint_index:08d}"
        tag_dir = self.state_dir / tag
        atomic_torch_save(
            {"buffer": self.buffer.save_state(), "generator": self.generator.get_state(),
             "rank": self.dist.rank, "world_size": self.dist.world_size},
            tag_dir / f"rank{self.dist.rank}.pt",
        )
        if self.dist.is_main:
            atomic_torch_save(
                {"controller": _on_cpu(self.controller.state_dict()), "optimizer": self.optimizer.state_dict(),
                 "ema": None if self.ema is None else _on_cpu(self.ema),
                 "counters": dataclasses.asdict(self.counters), "world_size": self.dist.world_size,
                 "config": dataclasses.asdict(self.config)},
                tag_dir / "shared.pt",
            )
            self._save_model()
        self.dist.barrier()  # every shard of this tag is on disk
        if self.dist.is_main:
            atomic_write_text(self.state_dir / "latest.json", json.dumps({"tag": tag, "world_size": self.dist.world_size}))
            self._prune(tag)
        self.dist.barrier()

    def _prune(self, latest: str) -> None:
        tags = sorted(p.name for p in self.state_dir.iterdir() if p.is_dir() and p.name != latest)
        for old in tags[: max(len(tags) - self.config.keep_checkpoints, 0)]:
            shutil.rmtree(self.state_dir / old, ignore_errors=True)

    def has_state(self) -> bool:
        return has_training_state(self.run_dir)

    def load_state(self) -> None:
        """Restore the last complete checkpoint (``CheckpointError`` if it is unreadable)."""
        try:
            latest = json.loads((self.state_dir / "latest.json").read_text())
            tag_dir = self.state_dir / latest["tag"]
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot read {self.state_dir / 'latest.json'}: {exc}") from exc
        if int(latest.get("world_size", 1)) != self.dist.world_size:
            raise CheckpointError(
                f"run was checkpointed with {latest.get('world_size')} processes, resumed with {self.dist.world_size}"
            )
        try:
            shared = torch.load(tag_dir / "shared.pt", map_location="cpu", weights_only=False)
            shard = torch.load(tag_dir / f"rank{self.dist.rank}.pt", map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            raise CheckpointError(f"cannot read training state in {tag_dir}: {exc}") from exc
        self.controller.load_state_dict(shared["controller"])
        self.optimizer.load_state_dict(shared["optimizer"])
        if self.ema is not None:
            saved = shared.get("ema")
            self.ema = ({k: v.to(self.device) for k, v in saved.items()} if saved else
                        {k: v.detach().clone() for k, v in self.controller.state_dict().items()})
        self.counters = TrainingCounters(**shared["counters"])
        self.buffer.load_state(shard["buffer"])
        self.generator.set_state(shard["generator"])
        if self.dist.is_main and self.metrics_path.exists():
            with open(self.metrics_path, "r+b") as fh:  # drop lines written after the checkpoint
                fh.truncate(self.counters.metrics_bytes)
        log.info("resumed from %s at iteration %d (%d gradient steps)", tag_dir, self.counters.iteration,
                 self.counters.grad_steps)

    def model_checkpoint(self) -> ModelCheckpoint:
        name = getattr(self.controller, "controller_name", type(self.controller).__name__)
        describe = getattr(self.problem, "describe", None)
        return ModelCheckpoint(
            controller_name=name,
            controller_hparams=dict(getattr(self.controller, "hparams", {})),
            state_dict=_on_cpu(self.ema if self.ema is not None else self.controller.state_dict()),
            schedule_kind=self.schedule.kind,
            schedule_params=self.schedule.params(),
            sde_steps=self.config.sde_steps,
            grid_kind=self.config.grid_kind,
            grid_power=self.config.grid_power,
            tau=float(self.problem.tau),
            problem=describe() if callable(describe) else {},
            config=self.job_config,
            counters=dataclasses.asdict(self.counters),
        )

    def _save_model(self) -> None:
        save_model_checkpoint(self.model_path, self.model_checkpoint())

    @property
    def snapshot_dir(self) -> Path:
        return self.run_dir / "snapshots"

    def _maybe_snapshot(self) -> None:
        """Every ``snapshot_interval`` iterations, keep the model as ``snapshots/iteration_NNNNNN.pt``.

        With a weight EMA the live weights go beside it as ``iteration_NNNNNN_live.pt``. A snapshot
        is rewritten if a resumed run passes its iteration again (same weights up to replay).
        """
        interval = self.config.snapshot_interval
        if not interval or self.counters.iteration % interval or not self.dist.is_main:
            return
        stem = self.snapshot_dir / f"iteration_{self.counters.iteration:06d}"
        checkpoint = self.model_checkpoint()
        save_model_checkpoint(stem.with_suffix(".pt"), checkpoint)
        if self.ema is not None:
            live = dataclasses.replace(checkpoint, state_dict=_on_cpu(self.controller.state_dict()))
            save_model_checkpoint(stem.parent / f"{stem.name}_live.pt", live)

    # ------------------------------------------------------------------ steps
    def _simulate_and_push(self, num_systems: int) -> dict[str, float]:
        """Simulate ``num_systems`` systems with the current control, evaluate, push to the buffer."""
        energies: list[Tensor] = []
        evals = failed = 0
        remaining = num_systems
        while remaining > 0:
            n = min(remaining, self.config.sample_batch_size)
            remaining -= n
            batch = self.problem.make_batch(self.problem.draw_keys(n, self.generator))
            on_device = batch_to(batch, self.device)
            log_path_ratio: Tensor | None = None
            if self.config.importance_fraction > 0:
                x1, log_path_ratio = integrate_with_path_weight(
                    lambda t, x: self.controller(t, x, on_device), on_device.space, self.schedule, self.grid,
                    self.generator)
                x1, log_path_ratio = x1.cpu(), log_path_ratio.cpu()
            else:
                x1 = sample_terminal(self.controller, on_device, self.schedule, self.grid, self.generator).cpu()
            ev = self.problem.evaluate(batch, x1)
            log_w = ([0.0] * batch.space.num_systems if log_path_ratio is None else
                     terminal_log_weight(log_path_ratio, ev.energy, self._base_log_density(batch, x1),
                                         self.problem.tau).tolist())
            adj = terminal_adjoint(ev.energy_grad.to(x1.dtype), x1, batch.space, self.schedule,
                                   self.problem.tau, self.config.adjoint_clip)
            ok = ev.ok & torch.isfinite(ev.energy)
            evals += n
            failed += int((~ok).sum())
            self.buffer.push(
                BufferItem(key, xs, a, float(e), w)
                for key, xs, a, e, w, good in zip(batch.keys, split_rows(x1, batch.space), split_rows(adj, batch.space),
                                                  ev.energy.tolist(), log_w, ok.tolist())
                if good and math.isfinite(w)
            )
            energies.append(ev.energy[ok].double())
        e = torch.cat(energies) if energies else torch.zeros(0, dtype=torch.float64)
        return {"evals": evals, "failed": failed, "energy_sum": float(e.sum()), "energy_count": int(e.numel()),
                "energy_min": float(e.min()) if e.numel() else None}

    def _base_log_density(self, batch: SystemBatch, x1: Tensor) -> Tensor:
        try:
            return batch.space.base_log_density(x1, self.schedule)
        except NotImplementedError as exc:
            raise ConfigError(f"trainer.importance_fraction > 0 needs a closed-form base density: {exc}") from exc

    def _lr_at(self, step: int, total: int) -> float:
        return cosine_lr(step, total, self.config.lr, self.config.lr_final)

    def _optimizer_step(self, loss: Tensor) -> float | None:
        return optimizer_step(self.controller, self.optimizer, loss, self.config.grad_clip, self.ema,
                              self.config.ema_decay)

    def _ram_step(self) -> float | None:
        by_weight = round(self.config.importance_fraction * self.config.batch_size)
        uniform = self.buffer.sample(self.config.batch_size - by_weight, self.generator)
        weighted = self.buffer.sample_by_weight(by_weight, self.generator) if by_weight else []
        items = uniform + weighted
        batch = self.problem.make_batch([it.key for it in items])
        x1 = torch.cat([it.x1 for it in items])
        adj = torch.cat([it.adjoint for it in items])
        t = self.schedule.sample_times(batch.space.num_systems, self.config.loss_time_noise_fraction, self.generator,
                                       x1.dtype, self.config.loss_time_window, self.config.loss_time_window_fraction)
        xt = batch.space.sample_bridge(x1, t, self.schedule, self.generator)
        if self.symmetry is not None:
            # each part on its own: a group's candidates must be exchangeable draws of one distribution
            rows, parts = sum(int(it.x1.shape[0]) for it in uniform), []
            for lo, hi, s0, s1 in ((0, rows, 0, len(uniform)), (rows, x1.shape[0], len(uniform), len(items))):
                if s1 > s0:
                    parts.append(batch_posterior_adjoint(xt[lo:hi], t[s0:s1], x1[lo:hi], adj[lo:hi], self.schedule,
                                                         self.symmetry, self.config.posterior_group_size))
            adj = torch.cat(parts)
        batch, t, xt, adj = batch_to(batch, self.device), t.to(self.device), xt.to(self.device), adj.to(self.device)
        return self._optimizer_step(ram_loss(self.model(t, xt, batch), adj, batch.space))

    def _finite_losses(self, losses: list[float | None], where: str) -> list[float]:
        """The losses of the steps taken; counts the steps dropped for a non-finite gradient (None)
        and raises ``TrainingError`` if all of them were."""
        finite = [x for x in losses if x is not None]
        skipped = len(losses) - len(finite)
        if not skipped:
            return finite
        self.counters.skipped_steps += skipped
        log.warning("%s: %d of %d gradient steps skipped (non-finite gradient)", where, skipped, len(losses))
        if skipped == len(losses):
            raise TrainingError(
                f"training diverged: every gradient step of {where} had a non-finite gradient; the last checkpoint "
                f"in {self.state_dir} is intact (try a lower trainer.lr or a trainer.grad_clip)")
        return finite

    def _warm_start_step(self, keys: list[int], x1: Tensor) -> float | None:
        """One bridge-matching step on warm-start samples ``x1`` (rows) of systems ``keys``: its
        loss, None if it was skipped (non-finite gradient)."""
        batch = self.problem.make_batch(keys)
        t = torch.rand(batch.space.num_systems, generator=self.generator, dtype=x1.dtype) * 0.99
        xt = batch.space.sample_bridge(x1, t, self.schedule, self.generator)
        batch, t, xt, x1 = batch_to(batch, self.device), t.to(self.device), xt.to(self.device), x1.to(self.device)
        loss = bridge_matching_loss(self.model(t, xt, batch), x1, xt, t[batch.space.batch], self.schedule, batch.space)
        return self._optimizer_step(loss)

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ run
    def run(self, stop_after_iterations: int | None = None) -> TrainingCounters:
        """Train to ``config.iterations`` (resuming if a checkpoint exists); returns the counters.

        ``stop_after_iterations`` stops early (after checkpointing) once that many iterations
        are done in total, which lets tests interrupt a run at a known point.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.has_state():
            self.load_state()
        if not self.dist.all_equal(self.counters.iteration):
            raise CheckpointError("ranks resumed at different iterations")
        with self.stop_signal:
            try:
                self._run_phases(stop_after_iterations)
            except _Stop:
                pass
        if self.dist.is_main:
            log.info("done: %d iterations, %d gradient steps, %d energy evaluations (%d failed), "
                     "%.2f gradient steps per energy evaluation", self.counters.iteration, self.counters.grad_steps,
                     self.counters.energy_evals, self.counters.failed_evals, self.counters.grad_steps_per_energy_eval)
        return self.counters

    def _checkpoint_and_maybe_stop(self, force: bool = False) -> None:
        stop = float(self.stop_signal.requested)
        stop = self.dist.sum([stop])[0] > 0
        if force or stop or self.counters.iteration % self.config.checkpoint_interval == 0:
            self.save_state()
        if stop:
            raise _Stop()

    def _run_phases(self, stop_after_iterations: int | None) -> None:
        cfg, c = self.config, self.counters
        # warm start (bridge matching)
        if c.warm_start_steps < cfg.warm_start_steps:
            t0 = time.perf_counter()
            losses = []
            while c.warm_start_steps < cfg.warm_start_steps:
                keys = self.problem.draw_keys(cfg.batch_size, self.generator)
                x1 = self.problem.warm_start_samples(keys, self.generator)
                if x1 is None:
                    log.warning("problem has no warm-start samples: skipping bridge matching")
                    c.warm_start_steps = cfg.warm_start_steps
                    break
                losses.append(self._warm_start_step(keys, x1))
                c.warm_start_steps += 1
                c.grad_steps += 1
            losses = self._finite_losses(losses, "warm start")
            c.train_seconds += time.perf_counter() - t0
            self._log({"phase": "warm_start", "warm_start_steps": c.warm_start_steps,
                       "bm_loss": sum(losses) / max(len(losses), 1)})
            self._checkpoint_and_maybe_stop(force=True)
        # initial buffer fill
        if not c.initial_fill_done:
            t0 = time.perf_counter()
            stats = self._simulate_and_push(max(cfg.initial_buffer_fill, 1))
            evals, failed = self.dist.sum([stats["evals"], stats["failed"]])
            c.energy_evals += int(evals)
            c.failed_evals += int(failed)
            c.initial_fill_done = True
            c.train_seconds += time.perf_counter() - t0
            self._log({"phase": "initial_fill", "energy_evals": c.energy_evals, "failed_evals": c.failed_evals})
            self._checkpoint_and_maybe_stop(force=True)
        total_steps = cfg.iterations * cfg.grad_steps_per_refresh
        bar = tqdm(total=cfg.iterations, initial=c.iteration, desc="train", disable=not (self.progress and self.dist.is_main),
                   dynamic_ncols=True)
        try:
            while c.iteration < cfg.iterations:
                if stop_after_iterations is not None and c.iteration >= stop_after_iterations:
                    if c.iteration % cfg.checkpoint_interval:
                        self.save_state()
                    break
                t0 = time.perf_counter()
                stats = self._simulate_and_push(cfg.samples_per_refresh)
                losses = []
                for g in self.optimizer.param_groups:
                    g["lr"] = self._lr_at(c.iteration * cfg.grad_steps_per_refresh, total_steps)
                for _ in range(cfg.grad_steps_per_refresh):
                    losses.append(self._ram_step())
                    c.grad_steps += 1
                losses = self._finite_losses(losses, f"iteration {c.iteration + 1}")
                evals, failed, esum, ecount = self.dist.sum(
                    [stats["evals"], stats["failed"], stats["energy_sum"], stats["energy_count"]])
                c.energy_evals += int(evals)
                c.failed_evals += int(failed)
                c.iteration += 1
                c.train_seconds += time.perf_counter() - t0
                record = {
                    "iteration": c.iteration, "grad_steps": c.grad_steps, "energy_evals": c.energy_evals,
                    "failed_evals": c.failed_evals, "ram_loss": sum(losses) / len(losses),
                    "skipped_steps": c.skipped_steps,
                    "energy_mean": esum / max(ecount, 1), "energy_min_rank0": stats["energy_min"],
                    "buffer_size": len(self.buffer), "lr": self.optimizer.param_groups[0]["lr"],
                    "grad_steps_per_energy_eval": c.grad_steps_per_energy_eval,
                    "train_seconds": round(c.train_seconds, 3),
                }
                if cfg.importance_fraction > 0:
                    record["buffer_effective_fraction"] = effective_sample_fraction(self.buffer.log_weights(),
                                                                                    self.buffer.keys())
                self._log(record)
                self._maybe_snapshot()
                bar.update(1)
                bar.set_postfix(loss=f"{record['ram_loss']:.3g}", E=f"{record['energy_mean']:.3g}")
                self._checkpoint_and_maybe_stop(force=c.iteration == cfg.iterations)
        finally:
            bar.close()
