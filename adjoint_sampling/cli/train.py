"""`adjoint-sampling train CONFIG.yaml [--run-dir DIR] [--seed N] [--init-from MODEL.pt] [--device DEV]`.

Train, or resume a stopped run.

Two kinds of job: a sampler (controller) job, and a GNN potential job (a config with a ``fit``
section, ``configs/energy_*.yaml``). Running the same command again continues from the last
checkpoint in the run directory. Multi-process: ``torchrun --nproc_per_node=2 -m adjoint_sampling.cli
train CONFIG.yaml``.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML job config")
    parser.add_argument("--run-dir", default=None, help="run directory (default: run_dir of the config)")
    parser.add_argument("--seed", type=int, default=None,
                        help="sampler jobs: replace trainer.seed of the config (for repeated runs over seeds; "
                             "give each its own --run-dir)")
    parser.add_argument("--init-from", default=None, metavar="MODEL.pt",
                        help="sampler jobs: replace init_from of the config (a later stage of each seed's run "
                             "starts from that seed's weights); ignored when the run directory resumes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda[:N] or auto. GNN potential jobs: default auto (CUDA when available); "
                             "sampler (adjoint_sampling) jobs: default cpu, the controller only, resumable on "
                             "another device; flow jobs: cpu only")


def run(args: argparse.Namespace) -> int:
    from adjoint_sampling.labelling.fit_job import energy_fit_job_from_dict, is_energy_fit_config, run_energy_fit_job
    from adjoint_sampling.training.config import job_config_from_dict, read_yaml

    document = read_yaml(args.config)  # read once: the kind of job, then its dataclass
    overrides = {"--seed": args.seed, "--init-from": args.init_from}
    given = [flag for flag, value in overrides.items() if value is not None]
    if given:
        from adjoint_sampling.core.errors import ConfigError

        if is_energy_fit_config(document) or "method" in document or not isinstance(document.get("trainer"), dict):
            verb = "apply" if len(given) > 1 else "applies"
            raise ConfigError(f"{' and '.join(given)} {verb} to sampler jobs with a trainer section; "
                              f"{args.config} is not one")
    if args.seed is not None:
        document["trainer"]["seed"] = args.seed
    if args.init_from is not None:
        document["init_from"] = args.init_from
    if is_energy_fit_config(document):
        path = run_energy_fit_job(energy_fit_job_from_dict(document), args.run_dir, device=args.device)
        if os.environ.get("RANK", "0") == "0":
            print(f"GNN potential written to {path}")
        return 0
    from adjoint_sampling.training.jobs import run_training_job  # imports torch: only when training

    counters = run_training_job(job_config_from_dict(document), args.run_dir, progress=not args.no_progress,
                                device=args.device or "cpu")
    if os.environ.get("RANK", "0") != "0":
        return 0
    if isinstance(counters, dict):  # flow_matching / adjoint_matching
        print(f"trained {counters['steps']} steps ({document['method']['kind']}), final loss "
              f"{counters.get('final_loss', float('nan')):.4g}, {counters['train_seconds']:.1f} s")
        return 0
    print(
        f"trained {counters.iteration} iterations: {counters.grad_steps} gradient steps, "
        f"{counters.energy_evals} energy evaluations ({counters.failed_evals} failed), "
        f"{counters.grad_steps_per_energy_eval:.2f} gradient steps per energy evaluation, "
        f"{counters.train_seconds:.1f} s"
    )
    return 0
