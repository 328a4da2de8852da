"""CPU cost of a synthetic job's controller: process seconds per training gradient step and per SDE step.

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.synthetic.controller_cost configs/lj55.yaml \\
        --batch 8 --out benchmarks/results/controller_cost/lj55.json

The config's controller with random weights (the cost does not depend on them) on ``--batch`` systems
at random positions:
- ``gradient_step_seconds``: forward and backward of the squared output (the shape of one RAM step);
- ``forward_seconds``: a forward pass without gradients (one SDE step of sampling).
Each is the best process CPU time of ``--repeats`` after a warm-up, which other processes on the
machine disturb less than wall time. For an EGNN the same weights also run with each layer's first
edge linear map applied to the concatenated per-edge inputs (the map before it was split per node),
so that both costs come from one run (``max_output_difference``: the two maps' outputs, float32 rounding).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.core.timing import best_seconds
from adjoint_sampling.models.egnn import EGNNLayer
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.training.config import load_job_config
from adjoint_sampling.training.jobs import build_problem

__all__ = ["controller_cost"]


def _concatenated_first_edge_linear(layer: EGNNLayer, h: Tensor, src: Tensor, dst: Tensor, pair: Tensor) -> Tensor:
    return layer.edge_mlp[0](torch.cat([h[src], h[dst], pair], dim=-1))


def controller_cost(config_path: str | Path, batch_size: int, repeats: int = 3) -> dict[str, Any]:
    """Process CPU seconds of the config's controller on ``batch_size`` systems (see the module docstring)."""
    cfg = load_job_config(config_path)
    problem = build_problem(cfg.problem)
    torch.manual_seed(0)
    controller: nn.Module = build_controller(cfg.controller.name, cfg.controller.hparams)
    with torch.no_grad():
        for p in controller.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the zero-initialised output layer
    batch = problem.make_batch(problem.draw_keys(batch_size, torch.Generator().manual_seed(0)))
    x = torch.randn(batch.space.batch.shape[0], batch.space.dim, generator=torch.Generator().manual_seed(1))
    t = torch.rand(batch_size, generator=torch.Generator().manual_seed(2))

    def gradient_step() -> None:
        controller.zero_grad(set_to_none=True)
        controller(t, x, batch).pow(2).sum().backward()

    def forward() -> None:
        with torch.no_grad():
            controller(t, x, batch)

    def costs() -> dict[str, float]:
        return {"gradient_step_seconds": best_seconds(gradient_step, repeats, time.process_time),
                "forward_seconds": best_seconds(forward, repeats, time.process_time)}

    rows: dict[str, Any] = {"split": costs()}
    layers = [m for m in controller.modules() if isinstance(m, EGNNLayer)]
    if layers:
        with torch.no_grad():
            split_output = controller(t, x, batch)
        for layer in layers:
            layer._first_edge_linear = types.MethodType(_concatenated_first_edge_linear, layer)
        with torch.no_grad():
            rows["max_output_difference"] = float((controller(t, x, batch) - split_output).abs().max())
        rows["concatenated"] = costs()
        for layer in layers:
            del layer._first_edge_linear
    return {"config": str(config_path), "controller": cfg.controller.name, "hparams": cfg.controller.hparams,
            "batch_size": batch_size, "rows": int(x.shape[0]), "repeats": repeats,
            "threads": torch.get_num_threads(), **rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a synthetic job config (YAML)")
    parser.add_argument("--batch", type=int, default=8, help="systems per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        print(f"error: --batch and --repeats must be at least 1, got {args.batch}, {args.repeats}", file=sys.stderr)
        return 2
    try:
        result = controller_cost(args.config, args.batch, args.repeats)
    except AdjointSamplingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
