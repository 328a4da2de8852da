"""Train one GNN potential config within a wall-clock budget (how the GPU runs were made).

Runs 60 calibration steps, sets ``fit.steps`` so that the run ends within ``--budget-s`` seconds
of the start (the cosine schedule then completes), writes that config as ``OUT/config.yaml`` and
trains into ``OUT/run``. Several of these can share one GPU.

    python configs/energy/fit_within_budget.py configs/energy/nequip_small.yaml --out runs/x --budget-s 450
    python configs/energy/fit_within_budget.py CONFIG --out runs/x --budget-s 450 --data .device/spice_xtb.pack.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch
import yaml

from adjoint_sampling.labelling.fit import fit_potential
from adjoint_sampling.labelling.fit_job import load_energy_fit_job

RESERVE_S = 40.0  # data loading, final validation and checkpoints
SAFETY = 0.6  # on the H200 run of 2026-12-04 five concurrent runs took 1.7x their calibrated time per step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", action="append", default=None,
                        help="glob pattern of labelled files (extxyz or a label pack) instead of the config's data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    started = time.time()
    job = load_energy_fit_job(args.config)
    if args.data:
        job = dataclasses.replace(job, data=tuple(args.data))
    torch.set_num_threads(job.num_threads)
    files = job.data_files()
    calibration = dataclasses.replace(job.fit, steps=60, log_every=10, checkpoint_every=60, warmup_steps=0)
    fit_potential(files, calibration, args.out / "calibration", device=args.device)
    records = {r["step"]: r for r in map(json.loads, (args.out / "calibration" / "metrics.jsonl").read_text().splitlines())}
    seconds_per_step = (records[60]["elapsed_s"] - records[20]["elapsed_s"]) / 40
    remaining = args.budget_s - (time.time() - started) - RESERVE_S
    steps = max(int(SAFETY * remaining / seconds_per_step), 100)
    fit = dataclasses.replace(job.fit, steps=steps, checkpoint_every=max(steps // 4, 1),
                              warmup_steps=min(job.fit.warmup_steps, steps // 10))
    config = {**yaml.safe_load(Path(args.config).read_text()), "data": list(job.data),
              "fit": json.loads(json.dumps(dataclasses.asdict(fit)))}
    (args.out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"{args.config}: {seconds_per_step * 1e3:.1f} ms per step, {steps} steps", flush=True)
    fit_potential(files, fit, args.out / "run", device=args.device)
    print(f"{args.config}: done in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
