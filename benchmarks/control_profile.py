"""Where along the path an Adjoint Matching fine-tune has learned its targets: the control against
its lean adjoint target, at every grid time, on the molecules it was trained on (no reference
conformers, no test molecule).

The checkpoint's own training config rebuilds its problem (the first ``--molecules`` molecules of
the training shuffle, its energy: the terminal adjoints need the reward's gradient), its base flow
and its Adjoint Matching settings (schedule, training grid, ``control_from``). Prints and writes one
row per grid time: ``t``, the mean lean-adjoint norm, the mean control norm and their cosine
(``training.control_alignment``).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.control_profile \\
        models/archive/am_torsional_spice_xtb_lambda025.pt --molecules 32 --paths 32 --batches 2 --out profile.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from adjoint_sampling.models.checkpoint import load_model_checkpoint

from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.errors import AdjointSamplingError, CheckpointError
from adjoint_sampling.sde.schedules import MemorylessSchedule, build_schedule
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.control_alignment import (
    ControlAlignment,
    control_alignment,
)
from adjoint_sampling.training.flow_job import (
    fine_tune_settings,
    molecular_fine_tune_task,
)
from adjoint_sampling.training.jobs import build_problem

__all__ = ["main", "profile_checkpoint"]

log = logging.getLogger(__name__)


def profile_checkpoint(path: Path, molecules: int, paths: int, batches: int, seed: int = 0,
                       control_from: float | None = None) -> list[ControlAlignment]:
    """Control alignment of the ``adjoint_matching`` checkpoint at ``path`` on ``batches`` batches of
    ``paths`` paths of its first ``molecules`` training molecules (``control_from``: another window
    than the checkpoint's own)."""
    checkpoint = load_model_checkpoint(path)
    if checkpoint.kind != "adjoint_matching":
        raise CheckpointError(f"{path} is a {checkpoint.kind} checkpoint, not an Adjoint Matching fine-tune")
    cfg = job_config_from_dict(checkpoint.config)
    schedule = build_schedule(cfg.schedule["kind"], **{k: v for k, v in cfg.schedule.items() if k != "kind"})
    if not isinstance(schedule, MemorylessSchedule):
        raise CheckpointError(f"{path}: its config's schedule is {schedule.kind!r}, not memoryless")
    window = checkpoint.control_from if control_from is None else control_from  # the window it samples with
    settings = dataclasses.replace(fine_tune_settings(cfg, schedule), control_from=window)
    problem = build_problem({**cfg.problem, "max_molecules": molecules})
    velocity = checkpoint.build_base_velocity().requires_grad_(False)
    control = checkpoint.build_controller()
    task = molecular_fine_tune_task(problem, velocity, schedule.t_start)
    return control_alignment(control, task, settings, paths, torch.Generator().manual_seed(seed), batches,
                             next(control.parameters()).dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.control_profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="an adjoint_matching model.pt")
    parser.add_argument("--molecules", type=int, default=32, help="first training molecules of its shuffle")
    parser.add_argument("--paths", type=int, default=32, help="paths per batch")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--control-from", type=float, default=None, help="another window than the checkpoint's")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        rows = profile_checkpoint(args.checkpoint, args.molecules, args.paths, args.batches, args.seed,
                                  args.control_from)
    except AdjointSamplingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'t':>7} {'|a|':>8} {'|f|':>8} {'cosine':>7}")
    for row in rows:
        print(f"{row.t:7.3f} {row.adjoint_norm:8.3f} {row.control_norm:8.3f} {row.cosine:7.3f}")
    if args.out is not None:
        command = "python -m adjoint_sampling.benchmarks.control_profile " + " ".join(argv or sys.argv[1:])
        atomic_write_text(args.out, json.dumps({"command": command, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
