"""Reference-free scores of a training run's model snapshots: which one to keep, from the energy alone.

For each checkpoint, ``num_samples`` fresh samples with their path log-importance weights
(:func:`sample_checkpoint_with_log_weights`). The mean log weight estimates ``log Z - KL(P_u || P*)``
(path measures; the same constant ``log Z`` for every model of one energy), so a higher mean log
weight means a sampler closer to the target, without reference samples. Also the effective sample
fraction, the samples' mean and median energy, and their configurational temperature over the
target's (:mod:`configurational_temperature`: 1 for exact samples, above 1 too hot, below 1 too cold),
and the tail a mean over a few hundred samples can miss: the highest energy, and quantiles of each
sample's closest pair distance (near-overlapping particles, which dominate an energy W2 when present).

Selection rule (fixed in the twenty-fourth session on LJ-13 seed 0 and checked on seed 1,
benchmarks/RESULTS.md): within one run, whose snapshots are all too hot, keep the snapshot whose fresh
samples have the lowest mean energy. The command prints it last. It uses the energy only, never
reference samples; it cannot tell a too cold sampler from a good one, so it is for comparing
snapshots of one run, not models in general (the configurational temperature is the check for that).

Usage: python -m adjoint_sampling.benchmarks.synthetic.snapshot_scores OUT.jsonl CKPT [CKPT ...]
       [--num-samples 1000] [--seed 1] [--sde-steps N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from adjoint_sampling.benchmarks.synthetic.configurational_temperature import configurational_temperature
from adjoint_sampling.benchmarks.synthetic.metrics import closest_pair_distances
from adjoint_sampling.benchmarks.synthetic.sampling import sample_checkpoint_with_log_weights
from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.method.importance import effective_sample_fraction
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.problems.synthetic import SyntheticProblem

__all__ = ["closest_pair_quantiles", "snapshot_score"]

CLOSEST_PAIR_QUANTILES = {"min": 0.0, "q01": 0.01, "q05": 0.05, "median": 0.5}

log = logging.getLogger(__name__)


def closest_pair_quantiles(samples: Tensor) -> dict[str, float]:
    """Quantiles (:data:`CLOSEST_PAIR_QUANTILES`) of the closest pair distance of each of the samples
    ``(K, n, D)``, as ``closest_pair_<name>`` keys; the low ones flag near-overlapping particles."""
    closest = closest_pair_distances(samples)
    levels = torch.tensor(list(CLOSEST_PAIR_QUANTILES.values()), dtype=closest.dtype)
    values = torch.quantile(closest, levels)
    return {f"closest_pair_{name}": float(v) for name, v in zip(CLOSEST_PAIR_QUANTILES, values)}


def snapshot_score(path: str | Path, num_samples: int, seed: int, sde_steps: int | None = None) -> dict[str, float]:
    """Score one checkpoint: ``mean_log_weight`` (higher is better), ``effective_fraction``, energies,
    ``configurational_temperature`` (over the target's; 1 is exact), ``closest_pair_*`` quantiles."""
    ckpt = load_model_checkpoint(path)
    if sde_steps is not None:
        ckpt.sde_steps = sde_steps
    start = time.perf_counter()
    samples, energies, log_w = sample_checkpoint_with_log_weights(ckpt, num_samples, seed)
    temperature = configurational_temperature(SyntheticProblem.from_description(ckpt.problem).energy_model, samples)
    finite = torch.isfinite(log_w)
    return {"model": str(path), "iteration": int(ckpt.counters.get("iteration", -1)), "num_samples": num_samples,
            "seed": seed, "sde_steps": ckpt.sde_steps,
            "mean_log_weight": float(log_w[finite].mean()) if bool(finite.any()) else float("-inf"),
            "non_finite_weights": int((~finite).sum()),
            "effective_fraction": effective_sample_fraction(log_w, torch.zeros(num_samples, dtype=torch.long)),
            "energy_mean": float(energies.mean()), "energy_median": float(energies.median()),
            "energy_max": float(energies.max()), **closest_pair_quantiles(samples),
            "configurational_temperature": temperature,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="JSON-lines file (one line per checkpoint, rewritten)")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1, help="sampling seed (another than the benchmark's 0)")
    parser.add_argument("--sde-steps", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if args.num_samples < 2:
        print(f"error: --num-samples must be at least 2, got {args.num_samples}", file=sys.stderr)
        return 2
    scores: list[dict[str, float]] = []
    for path in args.checkpoints:
        try:
            score = snapshot_score(path, args.num_samples, args.seed, args.sde_steps)
        except AdjointSamplingError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
        log.info("%s", score)
        scores.append(score)
        atomic_write_text(args.output, "".join(json.dumps(row) + "\n" for row in scores))  # what is done so far
    best = min(scores, key=lambda row: row["energy_mean"])
    print(f"lowest mean energy: {best['model']} ({best['energy_mean']:.3f}, iteration {best['iteration']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
