"""Adjoint Matching as a training loop: pre-train a flow by flow matching, then fine-tune it towards
``p_base(x) exp(lambda r(x))`` (DESIGN.md section 8).

The fine-tuned SDE is ``dX = (b(t, X) + sigma_t^2 f(t, X)) dt + sigma_t dW`` on the memoryless
schedule, ``b`` the drift of the pre-trained flow (``sde.flow_sde_drift``) and ``f`` the trained
control. Every iteration draws ``batch_size`` paths from the current model (no gradient through
them), integrates the lean adjoint back along them (``method.adjoint_matching``) and regresses
``f`` onto ``-a`` at the grid times (all of them, or a random subset). Fields take the controller
signature ``(t (B,), x (M, D), batch: SystemBatch) -> (M, D)``, so the EGNN of Adjoint Sampling
serves as velocity and as control.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.adjoint_matching import (
    AdjointMatchingTargets,
    adjoint_matching_targets,
    reward_terminal_adjoint,
)
from adjoint_sampling.method.control_window import (
    check_control_from,
    window_indices,
    windowed_control,
)
from adjoint_sampling.method.flow_matching import flow_matching_loss
from adjoint_sampling.method.losses import adjoint_matching_loss
from adjoint_sampling.sde.base_drift import DriftFn, flow_sde_drift
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.integrate import integrate, integrate_path
from adjoint_sampling.sde.schedules import MemorylessSchedule
from adjoint_sampling.sde.time_grids import time_grid
from adjoint_sampling.training.optim import cosine_lr, optimizer_step

__all__ = ["AdjointMatchingSettings", "BatchedField", "FineTuneTask", "FlowDraw", "FlowMatchingSettings",
           "LoopCheckpointing", "draw_targets", "fine_tune", "pretrain_flow", "pretrain_flow_on", "sample_fine_tuned"]

log = logging.getLogger(__name__)

LOSS_WEIGHTS = ("none", "sigma_sq")
"""Weights of the grid times in the Adjoint Matching loss (:class:`AdjointMatchingSettings`)."""

BatchedField = Callable[[Tensor, Tensor, SystemBatch], Tensor]
"""``field(t (B,), x (M, D), batch) -> (M, D)``: a velocity or a control (a controller module)."""


@dataclass
class FlowMatchingSettings:
    """Flow-matching pre-training: ``steps`` Adam steps on ``batch_size`` data systems, cosine decay
    from ``lr`` to ``lr_final``, gradient-norm clip ``grad_clip``."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float | None = 1e-4
    grad_clip: float | None = 1.0
    seed: int = 0


@dataclass
class AdjointMatchingSettings:
    """Fine-tuning: ``iterations`` Adam steps, each on ``batch_size`` fresh paths of ``sde_steps``
    Euler-Maruyama steps on a ``grid`` time grid from ``t_start`` (the memoryless schedule's start),
    regressing at ``times_per_iteration`` random grid times (None: all). Each batch of paths serves
    ``grad_steps_per_batch`` steps (a fresh draw of times each; simulating the paths and their lean
    adjoint costs far more than a regression step), so ``iterations`` counts gradient steps and
    ``iterations / grad_steps_per_batch`` batches of paths are drawn. ``reward_scale`` is lambda;
    terminal adjoints are clipped per row to ``max_adjoint_norm`` (None: no clip). ``loss_weight``:
    ``none`` weighs every time alike (``|| f + a ||^2``), ``sigma_sq`` by the step's ``sigma^2``
    (DESIGN's ``|| u + sigma a ||^2``); same minimiser. ``control_from``: the control acts, and is
    regressed, only at grid times ``>= control_from`` (``method.control_window``; 0: everywhere), and
    ``times_per_iteration`` counts those times."""

    iterations: int = 300
    batch_size: int = 64
    sde_steps: int = 100
    grid: str = "uniform"
    t_start: float = 1e-3
    lr: float = 3e-2
    lr_final: float | None = 0.0
    grad_clip: float | None = None
    reward_scale: float = 1.0
    max_adjoint_norm: float | None = None
    times_per_iteration: int | None = None
    grad_steps_per_batch: int = 1
    loss_weight: str = "none"
    control_from: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.control_from = check_control_from(self.control_from)
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ConfigError(f"loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")
        if self.grad_steps_per_batch < 1:
            raise ConfigError(f"grad_steps_per_batch must be >= 1, got {self.grad_steps_per_batch}")
        if self.iterations < 0 or self.batch_size < 1 or self.sde_steps < 1:
            raise ConfigError("iterations >= 0, batch_size >= 1 and sde_steps >= 1 are needed")
        if self.times_per_iteration is not None and not 1 <= self.times_per_iteration <= self.sde_steps:
            raise ConfigError(f"times_per_iteration must be in [1, sde_steps], got {self.times_per_iteration}")

    def schedule(self) -> MemorylessSchedule:
        return MemorylessSchedule(self.t_start)

    def time_grid(self) -> Tensor:
        return time_grid(self.sde_steps, self.grid, start=self.t_start)


def _single_system_keys(n: int, generator: torch.Generator) -> list[int]:
    return [0] * n


@dataclass(frozen=True)
class FineTuneTask:
    """What Adjoint Matching fine-tunes, and towards what.

    Attributes:
        make_batch: ``keys -> SystemBatch`` of one system per key (rows system after system).
        base_velocity: the pre-trained flow's velocity (t = 0 noise, t = 1 data).
        sample_start: ``(batch, generator) -> (M, D)``: states of the batch's systems at ``t_start``
            under the base flow (its marginal there: ``(1 - t) X_0 + t X_1``).
        reward_grad: ``(x1 (M, D), batch) -> grad r (M, D)`` at the paths' ends (``r = -E / kT``:
            ``-grad E / kT``).
        draw_keys: ``(n, generator) -> keys`` of the systems of a batch of paths (default: ``n``
            copies of system 0, for a task of one system).
    """

    make_batch: Callable[[Sequence[int]], SystemBatch]
    base_velocity: BatchedField
    sample_start: Callable[[SystemBatch, torch.Generator], Tensor]
    reward_grad: Callable[[Tensor, SystemBatch], Tensor]
    draw_keys: Callable[[int, torch.Generator], list[int]] = _single_system_keys

    @classmethod
    def of_one_system(
        cls, make_batch: Callable[[int], SystemBatch], base_velocity: BatchedField,
        sample_start: Callable[[int, torch.Generator], Tensor], reward_grad: Callable[[Tensor, SystemBatch], Tensor],
    ) -> FineTuneTask:
        """A task whose batches are ``n`` copies of one system: ``make_batch(n)``, ``sample_start(n, generator)``."""
        return cls(lambda keys: make_batch(len(keys)), base_velocity,
                   lambda batch, gen: sample_start(batch.space.num_systems, gen), reward_grad)

    def base_drift(self, batch: SystemBatch, schedule: MemorylessSchedule) -> DriftFn:
        """The memoryless SDE drift of the base flow on ``batch``."""
        return flow_sde_drift(lambda t, x: self.base_velocity(t, x, batch), schedule, batch.space)


@dataclass
class LoopCheckpointing:
    """Resumable optimisation loops (:func:`pretrain_flow_on`, :func:`fine_tune`).

    Attributes:
        save: called with the loop state every ``every`` steps and after the last: a dict of ``step``
            (steps done), ``model`` and ``optimiser`` state dicts, ``generator`` state and ``losses``.
        every: steps between saves (for :func:`fine_tune` a multiple of ``grad_steps_per_batch``, so
            a resumed run starts with a fresh batch of paths).
        resume: a state ``save`` received earlier, to continue from (``None``: start afresh).
        should_stop: ``steps done -> bool``, asked after every step: true saves and ends the loop
            early (a signal, or a test stopping at a known step). A :func:`fine_tune` stopped inside a
            batch of paths resumes with a fresh batch: nothing is lost, but the run is no longer
            step-for-step the uninterrupted one.
    """

    save: Callable[[dict[str, Any]], None]
    every: int = 100
    resume: dict[str, Any] | None = None
    should_stop: Callable[[int], bool] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"checkpoint interval must be >= 1, got {self.every}")


FlowDraw = Callable[[int, torch.Generator], tuple[SystemBatch, Tensor]]
"""``(n, generator) -> (batch, X_1)``: ``n`` data systems and their states ``(M, D)`` for flow matching."""


def pretrain_flow(
    velocity: nn.Module, data: Tensor, make_batch: Callable[[int], SystemBatch], settings: FlowMatchingSettings,
    log_every: int = 0,
) -> list[float]:
    """Train ``velocity`` (a :data:`BatchedField` module) by flow matching on ``data`` ``(N, n, D)``
    (systems of ``n`` rows, batches from ``make_batch(size)``); returns the loss of every step."""
    batch = make_batch(settings.batch_size)

    def draw(n: int, gen: torch.Generator) -> tuple[SystemBatch, Tensor]:
        pick = torch.randint(data.shape[0], (n,), generator=gen)
        return batch, batch.space.project_state(data[pick].reshape(-1, data.shape[-1]))

    return pretrain_flow_on(velocity, draw, settings, log_every)


def pretrain_flow_on(
    velocity: nn.Module, draw: FlowDraw, settings: FlowMatchingSettings, log_every: int = 0,
    checkpointing: LoopCheckpointing | None = None,
) -> list[float]:
    """Train ``velocity`` by flow matching on batches of ``settings.batch_size`` systems from ``draw``;
    returns the loss of every step (all of them, the resumed run's earlier ones included)."""
    gen = torch.Generator().manual_seed(settings.seed)
    dtype = next(velocity.parameters()).dtype

    def loss_at(step: int) -> Tensor:
        batch, x1 = draw(settings.batch_size, gen)
        return flow_matching_loss(lambda t, x: velocity(t, x, batch), x1.to(dtype), batch.space, gen)

    return _adam_loop(velocity, loss_at, settings.steps, settings.lr, settings.lr_final, settings.grad_clip,
                      "flow matching step", log_every, gen, checkpointing)


def fine_tune(
    control: nn.Module, task: FineTuneTask, settings: AdjointMatchingSettings, log_every: int = 0,
    checkpointing: LoopCheckpointing | None = None,
) -> list[float]:
    """Fine-tune ``control`` (a :data:`BatchedField` module, the scaled control ``f``) with Adjoint
    Matching; returns the loss of every iteration. Float64 paths if ``control`` is float64."""
    if checkpointing is not None and checkpointing.every % settings.grad_steps_per_batch:
        raise ConfigError(f"checkpoint interval {checkpointing.every} must be a multiple of grad_steps_per_batch "
                          f"{settings.grad_steps_per_batch}")
    gen = torch.Generator().manual_seed(settings.seed)
    dtype = next(control.parameters()).dtype
    acting = window_indices(settings.time_grid()[:-1], settings.control_from)
    if settings.times_per_iteration is not None and settings.times_per_iteration > acting.numel():
        raise ConfigError(f"times_per_iteration {settings.times_per_iteration} exceeds the {acting.numel()} grid "
                          f"times at or after control_from {settings.control_from}")
    times = settings.times_per_iteration or acting.numel()
    current: list[tuple[AdjointMatchingTargets, SystemBatch, SystemBatch]] = []

    def loss_at(step: int) -> Tensor:
        if step % settings.grad_steps_per_batch == 0 or not current:
            keys = task.draw_keys(settings.batch_size, gen)
            batch = task.make_batch(keys)
            current[:] = [(draw_targets(control, task, batch, settings, gen, dtype), batch,
                           task.make_batch(list(keys) * times))]
        targets, batch, stacked = current[0]
        if settings.times_per_iteration is not None:
            targets = targets.at(acting[torch.randperm(acting.numel(), generator=gen)[:times]])
        elif acting.numel() < settings.sde_steps:
            targets = targets.at(acting)
        rows = targets.states.reshape(-1, targets.states.shape[-1])
        f_pred = control(targets.times.repeat_interleave(batch.space.num_systems), rows, stacked)
        weight = targets.sigma_sq if settings.loss_weight == "sigma_sq" else None
        return adjoint_matching_loss(f_pred.view_as(targets.states), targets.adjoint, batch.space, weight=weight)

    return _adam_loop(control, loss_at, settings.iterations, settings.lr, settings.lr_final, settings.grad_clip,
                      "adjoint matching iteration", log_every, gen, checkpointing)


@torch.no_grad()
def draw_targets(
    control: nn.Module, task: FineTuneTask, batch: SystemBatch, settings: AdjointMatchingSettings,
    generator: torch.Generator, dtype: torch.dtype,
) -> AdjointMatchingTargets:
    """Paths of ``batch``'s systems from the current model (the base flow's memoryless SDE plus
    ``control``, switched on from ``settings.control_from``, from ``task.sample_start``) and their
    lean adjoint targets (at every grid time)."""
    schedule, grid = settings.schedule(), settings.time_grid()
    drift = task.base_drift(batch, schedule)
    start = task.sample_start(batch, generator)
    field = windowed_control(control, settings.control_from)
    path = integrate_path(lambda t, x: field(t, x, batch), batch.space, schedule, grid, generator, dtype, start, drift)
    terminal = reward_terminal_adjoint(task.reward_grad(path[-1], batch), batch.space, settings.reward_scale,
                                       settings.max_adjoint_norm)
    return adjoint_matching_targets(path, grid, terminal, batch.space, schedule, drift)


def _adam_loop(
    model: nn.Module, loss_at: Callable[[int], Tensor], steps: int, lr: float, lr_final: float | None,
    grad_clip: float | None, label: str, log_every: int, generator: torch.Generator,
    checkpointing: LoopCheckpointing | None = None,
) -> list[float]:
    """``steps`` Adam steps on ``loss_at(step)`` with cosine decay from ``lr`` to ``lr_final``; the loss
    of every step (``nan`` for a step skipped for a non-finite gradient). ``generator`` is the loop's
    random stream, saved and restored with the rest by ``checkpointing``."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    first = 0
    if checkpointing is not None and checkpointing.resume is not None:
        state = checkpointing.resume
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        losses, first = list(state["losses"]), int(state["step"])
        log.info("%s: resumed after step %d of %d", label, first, steps)
    for step in range(first, steps):
        for group in optimiser.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, lr_final)
        value = optimizer_step(model, optimiser, loss_at(step), grad_clip)
        losses.append(float("nan") if value is None else value)
        if log_every and (step + 1) % log_every == 0:
            log.info("%s %d/%d: loss %.4f", label, step + 1, steps, sum(losses[-log_every:]) / log_every)
        if checkpointing is None:
            continue
        stop = checkpointing.should_stop is not None and checkpointing.should_stop(step + 1)
        if stop or (step + 1) % checkpointing.every == 0 or step + 1 == steps:
            checkpointing.save({"step": step + 1, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                "generator": generator.get_state(), "losses": list(losses)})
        if stop:
            log.info("%s: stopped after step %d of %d", label, step + 1, steps)
            break
    return losses


@torch.no_grad()
def sample_fine_tuned(
    control: nn.Module | None, task: FineTuneTask, num: int, settings: AdjointMatchingSettings,
    generator: torch.Generator, dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``X_1`` ``(M, D)`` of ``num`` systems from the memoryless SDE of the base flow plus ``control``
    (``None``: the base flow alone; switched on from ``settings.control_from``), on the settings'
    schedule and grid."""
    schedule, grid = settings.schedule(), settings.time_grid()
    batch = task.make_batch(task.draw_keys(num, generator))
    start = task.sample_start(batch, generator)
    field = None if control is None else windowed_control(control, settings.control_from)
    fn = None if field is None else (lambda t, x: field(t, x, batch))
    return integrate(fn, batch.space, schedule, grid, generator, dtype, start, task.base_drift(batch, schedule))
