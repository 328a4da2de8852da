"""Inference cost of torsional controller sizes: CPU seconds per conformer of the shipped sampling
settings (SDE steps, descent steps, clash repair) with untrained controllers of other hyper-parameters, for
sizing a controller by measurement before training it.

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.controller_speed --out runs/controller_speed.json \\
        --size '{"num_layers": 2, "heavy_atoms_only": true}' --size '{"scalars": 32, "vectors": 8}'

Each ``--size`` overrides the shipped checkpoint's controller hyper-parameters (the first row is
always the shipped controller itself). The weights are random: the cost of a forward pass does not
depend on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.core.timing import best_seconds
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.shipped import SHIPPED_MODEL_PATH
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.models.registry import build_controller

__all__ = ["controller_seconds_per_conformer"]

DEFAULT_SMILES = "CC(C)Cc1ccc(cc1)C(C)C(=O)NCCc1ccc(O)cc1"
"""A drug-like test molecule: 45 atoms (21 heavy), 8 rotatable bonds."""


def controller_seconds_per_conformer(
    checkpoint_path: str | Path, overrides: dict[str, Any], smiles: str, num_conformers: int, repeats: int = 2,
) -> dict[str, Any]:
    """CPU seconds per conformer (best of ``repeats``, after one warm-up) of sampling ``num_conformers``
    torsions of ``smiles`` with the checkpoint's sampling settings and a random-weight controller
    whose hyper-parameters are the checkpoint's updated by ``overrides``.

    Local structures (RDKit) are built once beforehand and not counted (``Sampler.sample_plan`` of
    a prepared plan). Returns the
    hyper-parameters, the parameter count and the time.
    """
    base = load_model_checkpoint(checkpoint_path)
    hparams = {**base.controller_hparams, **overrides}
    controller = build_controller(base.controller_name, hparams).eval()
    checkpoint = dataclasses.replace(base, controller_hparams=hparams, state_dict=controller.state_dict())
    sampler = Sampler(checkpoint, controller, "controller-speed")
    request = GenerationRequest(smiles=smiles, num_conformers=num_conformers, seed=0)
    plan = sampler.local_structure_plan(sampler.prepare(request), num_conformers, 0)
    seeds = itertools.count()  # the warm-up samples with seed 0, the timed repeats with 1, 2, ...
    best = best_seconds(lambda: sampler.sample_plan(plan, seed=next(seeds)), repeats, time.process_time)
    return {
        "hparams": {k: v for k, v in hparams.items() if k not in ("num_atom_features", "num_bond_features")},
        "parameters": sum(p.numel() for p in controller.parameters()),
        "cpu_s_per_conformer": best / num_conformers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.controller_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--size", action="append", default=[], metavar="JSON",
                        help="controller hyper-parameters to override, as a JSON object (repeatable)")
    parser.add_argument("--smiles", default=DEFAULT_SMILES)
    parser.add_argument("-n", "--num-conformers", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        sizes = [{}] + [json.loads(s) for s in args.size]
    except json.JSONDecodeError as exc:
        print(f"error: --size is not a JSON object: {exc}", file=sys.stderr)
        return 2
    if not all(isinstance(s, dict) for s in sizes):
        print("error: every --size must be a JSON object", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint or SHIPPED_MODEL_PATH
    rows = []
    try:
        for size in sizes:
            row = controller_seconds_per_conformer(checkpoint, size, args.smiles, args.num_conformers)
            rows.append(row)
            print(f"{json.dumps(row['hparams'])}  {row['parameters']} parameters  "
                  f"{1000 * row['cpu_s_per_conformer']:.2f} CPU ms / conformer")
    except AdjointSamplingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(checkpoint), "smiles": args.smiles,
                                    "num_conformers": args.num_conformers, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
