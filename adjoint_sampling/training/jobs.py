"""Training jobs: problem builders registry and the ``train`` job runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import yaml

from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.devices import resolve_device
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.registry import Registry
from adjoint_sampling.models.checkpoint import load_controller_weights
from adjoint_sampling.problems.base import TrainingProblem
from adjoint_sampling.sde.schedules import MemorylessSchedule, build_schedule
from adjoint_sampling.training.config import JobConfig, load_job_config
from adjoint_sampling.training.distributed import init_distributed, shutdown_distributed
from adjoint_sampling.training.flow_job import plan_flow_job, run_flow_job
from adjoint_sampling.training.trainer import Trainer, TrainingCounters, has_training_state
from adjoint_sampling.training.trainer_config import TrainerConfig

__all__ = ["register_problem", "build_problem", "run_training_job", "control_bound_warning", "PROBLEM_BUILDERS"]

log = logging.getLogger(__name__)

ProblemBuilder = Callable[[dict[str, Any]], TrainingProblem]

PROBLEM_BUILDERS: Registry[ProblemBuilder] = Registry(
    "kind", ["adjoint_sampling.training.synthetic_job", "adjoint_sampling.training.molecular_job"]
)
"""Builders of the ``problem:`` section by ``kind``; a new problem kind adds its module here."""


def register_problem(kind: str) -> Callable[[ProblemBuilder], ProblemBuilder]:
    """Decorator: ``builder(params: dict) -> TrainingProblem`` handles ``problem: {kind: <kind>}``."""
    return PROBLEM_BUILDERS.register(kind)


def build_problem(spec: dict[str, Any]) -> TrainingProblem:
    """Build the problem of a ``problem:`` config section (``ConfigError`` for unknown kinds)."""
    try:
        builder = PROBLEM_BUILDERS.get(spec.get("kind"))
    except ConfigError as exc:
        raise ConfigError(f"config.problem: {exc}") from None
    return builder(dict(spec))


def _check_same_config(run_dir: Path, cfg: JobConfig) -> None:
    """A resumed run must use the config it started with (``trainer.iterations`` may grow, and a flow
    job's sampling settings ``method.sample_*`` may change)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        return
    saved = yaml.safe_load(saved_path.read_text())
    now = cfg.to_dict()
    for d in (saved, now):
        d.get("trainer", {}).pop("iterations", None)
        d.pop("run_dir", None)
        for key in [k for k in d.get("method", {}) if k.startswith("sample_")]:
            d["method"].pop(key)
    if saved != now:
        raise ConfigError(f"{run_dir} holds a run started with a different config ({saved_path}); use another --run-dir")


def control_bound_warning(controller: torch.nn.Module, adjoint_clip: float | None,
                          n_particles: int | None = None) -> str | None:
    """A warning if the controller's output cannot reach the adjoint targets it regresses onto.

    The RAM target of the scaled control is ``-a`` with ``|a|`` up to ``adjoint_clip`` per row; a
    controller whose ``output_bound()`` is below that clip cannot fit the largest targets (the
    fault that held LJ-13: an EGNN bounded at 30 against targets up to 100). With ``n_particles``
    (a fully connected graph) the push of one close pair, the bound over the ``n - 1`` neighbours
    it is averaged with, is checked too: the largest targets come from one overlapping pair.
    None when there is no clip, no known bound, or the bound is large enough.
    """
    bound_fn = getattr(controller, "output_bound", None)
    bound = bound_fn() if callable(bound_fn) else None
    if adjoint_clip is None or adjoint_clip <= 0 or bound is None:
        return None
    if bound < adjoint_clip:
        return (f"the controller's output is bounded by {bound:g} per particle, below trainer.adjoint_clip "
                f"{adjoint_clip:g}: it cannot fit the largest adjoint targets (raise output_scale or max_update)")
    if n_particles is not None and n_particles > 1 and bound / (n_particles - 1) < adjoint_clip:
        return (f"one close pair can move a particle by at most {bound / (n_particles - 1):g} (the output bound "
                f"{bound:g} over {n_particles - 1} neighbours), below trainer.adjoint_clip {adjoint_clip:g}: it "
                f"cannot fit the largest adjoint targets (raise output_scale or max_update)")
    return None


def run_training_job(
    config: str | Path | JobConfig,
    run_dir: str | Path | None = None,
    stop_after_iterations: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> TrainingCounters | dict[str, Any]:
    """Build problem, controller, schedule and trainer from a config and train (resuming if possible).

    ``device``: where an Adjoint Sampling job runs its controller (``cpu``, ``cuda``, ``cuda:1``, or
    ``auto``: CUDA when available); a run may be resumed on another device. Flow jobs run on the CPU.

    Returns the Adjoint Sampling trainer's counters, or for ``method: flow_matching | adjoint_matching``
    the flow job's (``training.flow_job.run_flow_job``; ``stop_after_iterations`` counts its steps).
    """
    from adjoint_sampling.models.registry import build_controller

    cfg = config if isinstance(config, JobConfig) else load_job_config(config)
    run_dir = Path(run_dir or cfg.run_dir or "")
    if str(run_dir) in ("", "."):
        raise ConfigError("no run directory: pass --run-dir or set run_dir in the config")
    torch.set_num_threads(cfg.num_threads)
    method = cfg.method.get("kind")
    if method != "adjoint_sampling" and cfg.trainer != TrainerConfig():
        raise ConfigError(f"config.trainer holds Adjoint Sampling's settings; a {method} job reads config.method")
    sched_params = {k: v for k, v in cfg.schedule.items() if k != "kind"}
    schedule = build_schedule(cfg.schedule["kind"], **sched_params)
    flow_plan = None if method == "adjoint_sampling" else plan_flow_job(cfg, schedule)  # its errors before any work
    device = resolve_device(device)
    if flow_plan is not None and device.type != "cpu":
        raise ConfigError(f"a {method} job runs on the CPU; --device {device} applies to adjoint_sampling jobs")
    dist_ctx = init_distributed()
    try:
        if flow_plan is not None and dist_ctx.world_size > 1:
            raise ConfigError(f"a {method} job runs in one process, not under torch.distributed")
        problem = build_problem(cfg.problem)
        defaults = getattr(problem, "controller_defaults", None)
        hparams = {**(defaults() if callable(defaults) else {}), **cfg.controller.hparams}
        torch.manual_seed(cfg.trainer.seed)  # same initial weights on every rank
        controller = build_controller(cfg.controller.name, hparams)
        n_particles = getattr(getattr(problem, "energy_model", None), "n_particles", None)
        if method == "adjoint_sampling" and (
                warning := control_bound_warning(controller, cfg.trainer.adjoint_clip, n_particles)):
            log.warning(warning)
        if cfg.init_from and not has_training_state(run_dir):  # a resumed run continues from its own state
            load_controller_weights(controller, cfg.init_from, cfg.controller.name)
            log.info("controller weights initialised from %s", cfg.init_from)
        if dist_ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _check_same_config(run_dir, cfg)
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        dist_ctx.barrier()
        if flow_plan is not None:
            return run_flow_job(flow_plan, cfg, problem, controller, cast(MemorylessSchedule, schedule), run_dir,
                                stop_after_iterations)
        trainer = Trainer(problem, controller, schedule, cfg.trainer, run_dir, dist_ctx=dist_ctx,
                          job_config=cfg.to_dict(), progress=progress, device=device)
        return trainer.run(stop_after_iterations=stop_after_iterations)
    finally:
        shutdown_distributed()
