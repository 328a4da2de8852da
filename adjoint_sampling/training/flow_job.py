"""Training jobs of the Adjoint Matching family (``method: {kind: flow_matching | adjoint_matching}``).

- ``flow_matching``: pre-trains the controller network as a flow's velocity on the problem's RDKit
  conformer pool (torsional mode: the pool's torsion angles; ``problem.pool_relaxation: mmff`` makes
  them ETKDG + MMFF). No energy is evaluated.
- ``adjoint_matching``: fine-tunes a control on top of a pre-trained flow (``method.base``: the
  flow job's ``model.pt``) towards ``p_base exp(-lambda E / kT)``, E the problem's energy.

Both need ``schedule: {kind: memoryless, t_start: ...}``; the method's settings sit flat in the
``method:`` section (:class:`FlowMatchingSettings` / :class:`AdjointMatchingSettings` fields plus the
job's own, below). Run directory: ``model.pt`` (a ``flow`` or ``adjoint_matching``
:class:`ModelCheckpoint`), ``metrics.jsonl`` (a line per save) and ``train_state/loop.pt`` (weights,
optimiser, random stream and losses), saved every ``checkpoint_interval`` steps and on SIGTERM; the
same command resumes. One process: these jobs do not run under torch.distributed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from adjoint_sampling.core.atomic_io import atomic_torch_save
from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.method.control_window import check_control_from
from adjoint_sampling.method.flow_sampling import FLOW_SOLVERS, flow_batch, flow_start
from adjoint_sampling.models.checkpoint import (
    ModelCheckpoint,
    load_model_checkpoint,
    save_model_checkpoint,
)
from adjoint_sampling.problems.base import TrainingProblem
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.schedules import MemorylessSchedule, NoiseSchedule
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    FlowMatchingSettings,
    LoopCheckpointing,
    fine_tune,
    pretrain_flow_on,
)
from adjoint_sampling.training.config import METHOD_KINDS, JobConfig, parse_dataclass
from adjoint_sampling.training.stop_signal import StopOnSigterm

__all__ = ["FLOW_METHODS", "FlowJobPlan", "FlowJobSettings", "fine_tune_settings", "molecular_fine_tune_task",
           "plan_flow_job", "run_flow_job"]

log = logging.getLogger(__name__)

FLOW_METHODS = METHOD_KINDS[1:]
"""``method.kind`` values run by this module (``adjoint_sampling`` is the default trainer)."""


@dataclass
class FlowJobSettings:
    """The job's own keys of a ``method:`` section.

    Attributes:
        kind: ``flow_matching`` or ``adjoint_matching``.
        checkpoint_interval: steps between saves (``adjoint_matching``: a multiple of
            ``grad_steps_per_batch``).
        base: ``adjoint_matching``: the pre-trained flow's ``model.pt``.
        sample_solver: how ``model.pt`` is sampled: ``ode`` (the flow's ODE) or ``sde`` (its
            memoryless SDE).
        sample_sde_steps / sample_grid: its steps and grid (``None`` steps: 10 for the ODE; for the
            SDE 30, or the fine-tune's training steps).
        sample_control_from: ``adjoint_matching``: where the control of ``model.pt`` is switched on
            (``method.control_window``; ``None``: the training's ``control_from``). Like the other
            ``sample_*`` keys it may change when a finished run is started again, which rewrites
            ``model.pt`` with it.
    """

    kind: str = "flow_matching"
    checkpoint_interval: int = 100
    base: str | None = None
    sample_solver: str = "ode"
    sample_sde_steps: int | None = None
    sample_grid: str = "uniform"
    sample_control_from: float | None = None


def _split_method(method: dict[str, Any]) -> tuple[FlowJobSettings, dict[str, Any]]:
    own = {f.name for f in dataclasses.fields(FlowJobSettings)}
    job = parse_dataclass(FlowJobSettings, {k: v for k, v in method.items() if k in own}, "config.method")
    if job.kind not in FLOW_METHODS:
        raise ConfigError(f"config.method.kind: {job.kind!r} is not one of {', '.join(FLOW_METHODS)}")
    if job.sample_solver not in FLOW_SOLVERS:
        raise ConfigError(f"config.method.sample_solver: {job.sample_solver!r} is not one of {', '.join(FLOW_SOLVERS)}")
    if job.sample_control_from is not None:
        if job.kind != "adjoint_matching":
            raise ConfigError("config.method.sample_control_from: only an adjoint_matching control has a window")
        job.sample_control_from = check_control_from(job.sample_control_from)
    if (job.kind == "adjoint_matching") != (job.base is not None):
        raise ConfigError("config.method.base (the pre-trained flow's model.pt) is needed by adjoint_matching "
                          "and by nothing else")
    return job, {k: v for k, v in method.items() if k not in own}


@dataclass(frozen=True)
class FlowJobPlan:
    """A flow job's config, checked and read: its own keys, the method's settings
    (:class:`FlowMatchingSettings` or :class:`AdjointMatchingSettings`), the steps to run, the
    sampling steps stored in ``model.pt`` and, for ``adjoint_matching``, the loaded base flow."""

    job: FlowJobSettings
    settings: FlowMatchingSettings | AdjointMatchingSettings
    total_steps: int
    sample_steps: int
    base: ModelCheckpoint | None


def plan_flow_job(cfg: JobConfig, schedule: NoiseSchedule) -> FlowJobPlan:
    """Check the ``flow_matching`` / ``adjoint_matching`` job of ``cfg`` before anything is built
    (ConfigError / CheckpointError with the reason) and load its base flow."""
    job, rest = _split_method(cfg.method)
    if not isinstance(schedule, MemorylessSchedule):
        raise ConfigError(f"config.schedule: {job.kind} needs kind memoryless, got {schedule.kind!r}")
    if cfg.init_from:
        raise ConfigError(f"config.init_from is for adjoint_sampling jobs; {job.kind} starts from method.base")
    if "t_start" in rest:
        raise ConfigError("config.method.t_start: set it in config.schedule.t_start")
    if job.kind == "flow_matching":
        flow = parse_dataclass(FlowMatchingSettings, rest, "config.method")
        return FlowJobPlan(job, flow, flow.steps, job.sample_sde_steps or (10 if job.sample_solver == "ode" else 30),
                           None)
    fine = fine_tune_settings(cfg, schedule)
    return FlowJobPlan(job, fine, fine.iterations,
                       job.sample_sde_steps or (10 if job.sample_solver == "ode" else fine.sde_steps),
                       _load_base(job.base or ""))


def fine_tune_settings(cfg: JobConfig, schedule: MemorylessSchedule) -> AdjointMatchingSettings:
    """The :class:`AdjointMatchingSettings` of an ``adjoint_matching`` job's ``method:`` section (the
    job's own keys left out, ``t_start`` from ``schedule``)."""
    _, rest = _split_method(cfg.method)
    return parse_dataclass(AdjointMatchingSettings, {**rest, "t_start": schedule.t_start}, "config.method")


def run_flow_job(
    plan: FlowJobPlan, cfg: JobConfig, problem: TrainingProblem, controller: nn.Module, schedule: MemorylessSchedule,
    run_dir: Path, stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) the planned job (:func:`plan_flow_job`); returns its counters (``steps``,
    ``train_seconds``, ``final_loss``)."""
    job, settings, base = plan.job, plan.settings, plan.base
    state_path = run_dir / "train_state" / "loop.pt"
    resume = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.is_file() else None
    counters: dict[str, Any] = dict(resume["counters"]) if resume else {"steps": 0, "train_seconds": 0.0}
    clock = [time.perf_counter()]

    def checkpoint() -> ModelCheckpoint:
        describe = getattr(problem, "describe", None)
        return ModelCheckpoint(
            controller_name=cfg.controller.name, controller_hparams=dict(getattr(controller, "hparams", {})),
            state_dict=controller.state_dict(), schedule_kind=schedule.kind, schedule_params=schedule.params(),
            sde_steps=plan.sample_steps, grid_kind=job.sample_grid, tau=float(problem.tau),
            problem=describe() if callable(describe) else {}, config=cfg.to_dict(), counters=dict(counters),
            kind="flow" if base is None else "adjoint_matching", solver=job.sample_solver,
            control_from=0.0 if base is None else (cast(AdjointMatchingSettings, settings).control_from
                                                   if job.sample_control_from is None else job.sample_control_from),
            base=None if base is None else {"controller_name": base.controller_name,
                                            "controller_hparams": dict(base.controller_hparams),
                                            "state_dict": base.state_dict})

    def save(state: dict[str, Any]) -> None:
        now = time.perf_counter()
        done_before = int(counters["steps"])
        counters.update(steps=int(state["step"]), train_seconds=round(counters["train_seconds"] + now - clock[0], 3))
        clock[0] = now
        recent = [x for x in state["losses"][done_before:] if math.isfinite(x)]
        counters["final_loss"] = sum(recent) / len(recent) if recent else float("nan")
        atomic_torch_save({**state, "counters": dict(counters)}, state_path)
        save_model_checkpoint(run_dir / "model.pt", checkpoint())
        with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"phase": job.kind, **counters, "loss": counters["final_loss"]}) + "\n")

    with StopOnSigterm() as stop:
        checkpointing = LoopCheckpointing(
            save, job.checkpoint_interval, resume,
            should_stop=lambda step: stop.requested or (stop_after_steps is not None and step >= stop_after_steps))
        if resume is not None and resume["step"] >= plan.total_steps:  # only the sampling settings may have changed
            controller.load_state_dict(resume["model"])
            save_model_checkpoint(run_dir / "model.pt", checkpoint())
            log.info("%s: already done (%d steps); model.pt rewritten with the config's sampling settings",
                     job.kind, resume["step"])
        elif isinstance(settings, FlowMatchingSettings):
            pretrain_flow_on(controller, lambda n, gen: _pool_draw(problem, n, gen), settings, log_every=50,
                             checkpointing=checkpointing)
        else:
            velocity = cast(ModelCheckpoint, base).build_controller().requires_grad_(False)
            task = molecular_fine_tune_task(problem, velocity, schedule.t_start)
            fine_tune(controller, task, settings, log_every=10, checkpointing=checkpointing)
    return counters


def _load_base(path: str) -> ModelCheckpoint:
    base = load_model_checkpoint(path)
    if base.kind != "flow":
        raise CheckpointError(f"config.method.base {path} is a {base.kind} checkpoint, not a pre-trained flow")
    return base


def _pool_draw(problem: TrainingProblem, n: int, gen: torch.Generator) -> tuple[SystemBatch, Tensor]:
    """``n`` systems of the problem and one pool conformer's state each, on the flow's space."""
    keys = problem.draw_keys(n, gen)
    x1 = problem.warm_start_samples(keys, gen)
    if x1 is None:
        raise ConfigError(f"{type(problem).__name__} has no conformer pool to pre-train a flow on")
    return flow_batch(problem.make_batch(keys)), x1


def molecular_fine_tune_task(problem: TrainingProblem, velocity: nn.Module, t_start: float) -> FineTuneTask:
    """The Adjoint Matching task of a molecular problem: batches of its molecules on the flow's space,
    the flow's start, and ``grad r = -dE/dx / kT`` at the paths' ends (zero where the energy failed;
    ``AdjointMatchingSettings.reward_scale`` is lambda); the torsions are wrapped before the energy,
    which is periodic in them."""

    def reward_grad(x1: Tensor, batch: SystemBatch) -> Tensor:
        native = problem.make_batch(batch.keys)
        evaluation = problem.evaluate(native, native.space.project_state(x1))
        grad = torch.where(evaluation.ok[native.space.batch][:, None], evaluation.energy_grad.to(x1.dtype),
                           torch.zeros_like(x1))
        return -grad / float(problem.tau)

    return FineTuneTask(
        make_batch=lambda keys: flow_batch(problem.make_batch(list(keys))),
        base_velocity=velocity,
        sample_start=lambda batch, gen: flow_start(batch, t_start, gen, next(velocity.parameters()).dtype),
        reward_grad=reward_grad,
        draw_keys=problem.draw_keys,
    )
