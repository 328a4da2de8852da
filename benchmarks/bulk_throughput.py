"""Bulk generation on Ray, measured: molecules per second on 1 vs 2 (or more) cores, and one large run's
wall time, failures by reason and peak memory.

A random sample of ``--molecules`` SMILES of a library (default: the SPICE training list, SMILES only)
is written to a ``.smi`` file, then for every ``--cores`` value the real CLI runs
``adjoint-sampling sample LIB -n N -o DIR --engine ray --num-cpus K`` in a subprocess while this script
samples the resident memory of its whole process tree (driver, Ray's GCS and raylet, the actors)
every ``--poll-s`` seconds. Per run it reports wall time, molecules per second, conformers, failures
by reason (from the run's manifest) and peak memory (sum over the tree, and the largest process).
A run folder that already holds finished shards is resumed (the resumed shards are reported, and
the rate is then not a clean measurement).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.bulk_throughput --molecules 200 --cores 1 2 \\
        -n 50 --out-dir runs/bulk_scaling --output benchmarks/results/bulk_scaling.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from adjoint_sampling.bulk.library import iter_library
from adjoint_sampling.core.paths import SHARED_DATA_DIR

log = logging.getLogger(__name__)


def sample_library(library: Path, molecules: int, seed: int, out: Path) -> int:
    """Write a random sample of ``molecules`` SMILES of ``library`` (library order kept) to ``out``."""
    entries = [entry.smiles for entry in iter_library(library)]
    chosen = sorted(random.Random(seed).sample(range(len(entries)), min(molecules, len(entries))))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{entries[i]}\n" for i in chosen))
    return len(chosen)


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """(sum, largest) resident bytes of ``root`` and all its descendants."""
    sizes = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            sizes.append(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sum(sizes), max(sizes, default=0)


def run_once(
    library: Path, out_dir: Path, cores: int, n: int, relax: str, batch_size: int, poll_s: float, model: str | None = None
) -> dict[str, Any]:
    """One bulk run through the CLI; its figures (see the module docstring).

    Raises:
        RuntimeError: the CLI failed (an exit status other than 0, or 1 for "some molecules failed"), with its last line.
    """
    resumed = len(list(out_dir.glob("shard-*.manifest.jsonl"))) if out_dir.is_dir() else 0
    command = [
        sys.executable, "-m", "adjoint_sampling.cli", "sample", str(library), "-n", str(n), "-o", str(out_dir),
        "--engine", "ray", "--num-cpus", str(cores), "--batch-size", str(batch_size), "--relax", relax, "--no-progress",
    ]
    if model is not None:
        command += ["--model", model]
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        try:
            total, largest = tree_rss(root)
        except psutil.NoSuchProcess:
            break
        peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
        time.sleep(poll_s)
    output = proc.communicate()[0]
    wall = time.perf_counter() - start
    manifest = out_dir / "manifest.jsonl"
    if proc.returncode not in (0, 1) or not manifest.is_file():  # 1: finished, some molecules failed
        raise RuntimeError(f"bulk run failed ({proc.returncode}): {output.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    reasons = Counter(row["reason"] for row in rows if row["status"] != "ok")
    return {
        "cores": cores, "exit_status": proc.returncode, "molecules": len(rows), "shards_resumed": resumed,
        "wall_s": round(wall, 1),
        "molecules_per_s": round(len(rows) / wall, 3),
        "ok": sum(row["status"] == "ok" for row in rows), "failed": sum(reasons.values()),
        "failures_by_reason": dict(reasons.most_common()),
        "conformers": sum(int(row["conformers"]) for row in rows),
        "molecule_seconds_sum": round(sum(float(row["seconds"]) for row in rows), 1),
        "slowest_molecules": sorted(
            ({"smiles": row["smiles"], "seconds": row["seconds"]} for row in rows), key=lambda r: -r["seconds"]
        )[:5],
        "peak_rss_tree_mib": round(peak_sum / 2**20, 1), "peak_rss_largest_process_mib": round(peak_one / 2**20, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.bulk_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=SHARED_DATA_DIR / "spice_train.txt")
    parser.add_argument("--molecules", type=int, default=200, help="random sample of the library")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2], help="--num-cpus of each run")
    parser.add_argument("-n", "--num-conformers", type=int, default=50)
    parser.add_argument("--relax", default="none")
    parser.add_argument("--model", help="generator of the runs (default: the shipped model)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bulk_throughput"))
    parser.add_argument("--output", type=Path, default=Path("out/bulk_throughput.json"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    library = args.out_dir / f"library_{args.molecules}_seed{args.sample_seed}.smi"
    count = sample_library(args.library, args.molecules, args.sample_seed, library)
    runs = []
    for cores in args.cores:
        log.info("bulk run: %d molecules, %d core(s)", count, cores)
        result = run_once(library, args.out_dir / f"cores{cores}", cores, args.num_conformers, args.relax,
                          args.batch_size, args.poll_s, args.model)
        print(json.dumps(result))
        runs.append(result)
    if len(runs) > 1:
        base = runs[0]["molecules_per_s"]
        for run in runs[1:]:
            print(f"{run['cores']} vs {runs[0]['cores']} core(s): {run['molecules_per_s'] / base:.2f} times the molecules per second")
    report = {
        "library": str(args.library), "molecules": count, "sample_seed": args.sample_seed, "num_conformers": args.num_conformers,
        "relax": args.relax, "batch_size": args.batch_size, "model": args.model or "shipped", "machine": platform.platform(),
        "usable_cores": len(os.sched_getaffinity(0)), "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
