"""`adjoint-sampling train CONFIG.yaml [--run-dir DIR]`: train, or resume a stopped run.

Running the same command again continues from the last checkpoint in the run directory.
Multi-process: ``torchrun --nproc_per_node=2 -m adjoint_sampling.cli train CONFIG.yaml``.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML job config")
    parser.add_argument("--run-dir", default=None, help="run directory (default: run_dir of the config)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from adjoint_sampling.training.jobs import run_training_job  # imports torch: only when training

    counters = run_training_job(args.config, args.run_dir, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(
        f"trained {counters.iteration} iterations: {counters.grad_steps} gradient steps, "
        f"{counters.energy_evals} energy evaluations ({counters.failed_evals} failed), "
        f"{counters.grad_steps_per_energy_eval:.2f} gradient steps per energy evaluation, "
        f"{counters.train_seconds:.1f} s"
    )
    return 0
