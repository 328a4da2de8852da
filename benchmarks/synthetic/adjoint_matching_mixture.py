"""Adjoint Matching on a two-mode 1-D mixture with an exact base velocity: does the fine-tune move mass
between modes?

The base is the linear-interpolant flow from N(0, 1) to ``0.5 N(-2, 0.3^2) + 0.5 N(2, 0.3^2)``, whose
velocity is known in closed form (each component's Gaussian velocity, weighted by its
responsibility at ``(t, x)``). Tilting by ``exp(x)`` (``r = x``, lambda = 1) shifts each mode by
``0.3^2 = 0.09`` and reweights them by ``exp(mu_i + 0.045)``, so the right mode's share goes from
0.5 to ``1 / (1 + e^-4) = 0.982``. An MLP control is fine-tuned (``training.adjoint_matching``) and
20,000 draws of the fine-tuned SDE give the right mode's share and both modes' means. No network
learns the base here, so what is missed is the fine-tune's alone.

Two references in closed form locate what is missed. ``--exact-control`` samples with the optimal
control ``f* = grad_x log E_base[exp(r(X_1)) | X_t = x]`` (under the memoryless base,
``X_t | X_1 ~ N(t X_1, (1 - t)^2)``), which checks the SDE and its grid. ``--adjoint-check`` compares,
under the base process, the mean of the lean adjoint ``-a(t)`` (for ``r = x``, the pathwise derivative
``dX_1 / dX_t``) with its exact conditional mean ``d E[X_1 | X_t = x] / dx``, at several times.

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture --iterations 600
    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture --exact-control
    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture --adjoint-check
"""

from __future__ import annotations

import argparse
import json
import logging
import math

import torch
from torch import Tensor, nn

from adjoint_sampling.method.flow_matching import interpolant_sample
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import EuclideanSpace
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    draw_targets,
    fine_tune,
    sample_fine_tuned,
)

F64 = torch.float64
MEANS = torch.tensor([-2.0, 2.0], dtype=F64)
STD = 0.3
TILTED_RIGHT_SHARE = 1.0 / (1.0 + math.exp(-4.0))
TILTED_MEANS = (-2.0 + STD**2, 2.0 + STD**2)


def mixture_velocity(t: Tensor, x: Tensor, batch: SystemBatch | None = None) -> Tensor:
    """The base flow's exact velocity ``(M, 1)`` at times ``t`` ``(M,)`` and states ``x`` ``(M, 1)``."""
    t, x = t.to(F64).view(-1, 1), x.to(F64)
    var = (1 - t) ** 2 + t**2 * STD**2
    centre = t * MEANS.view(1, -1)
    responsibility = torch.softmax(-0.5 * (x - centre) ** 2 / var, dim=-1)  # equal weights and variances
    per_mode = MEANS.view(1, -1) + (t * STD**2 - (1 - t)) / var * (x - centre)
    return (responsibility * per_mode).sum(-1, keepdim=True)


def _posterior(t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Under the memoryless base, ``X_1 | X_t = x`` is a two-component mixture: its log component
    weights up to a constant, component means and the shared variance, each ``(M, 2)``."""
    t, x = t.to(F64).view(-1, 1), x.to(F64)
    noise_var = (1 - t) ** 2
    log_weight = -0.5 * (x - t * MEANS.view(1, -1)) ** 2 / (t**2 * STD**2 + noise_var)
    precision = 1 / STD**2 + t**2 / noise_var
    mean = (MEANS.view(1, -1) / STD**2 + t * x / noise_var) / precision
    return log_weight, mean, (1 / precision).expand_as(mean)


def exact_control(t: Tensor, x: Tensor, batch: SystemBatch | None = None) -> Tensor:
    """The optimal scaled control ``f*(t, x) = d/dx log E_base[exp(X_1) | X_t = x]``, ``(M, 1)``."""
    with torch.enable_grad():
        xg = x.detach().to(F64).requires_grad_(True)
        log_weight, mean, var = _posterior(t.expand(x.shape[0]) if t.numel() == 1 else t, xg)
        log_h = torch.logsumexp(log_weight + mean + var / 2, -1) - torch.logsumexp(log_weight, -1)
        (grad,) = torch.autograd.grad(log_h.sum(), xg)
    return grad


def posterior_mean_slope(t: Tensor, x: Tensor) -> Tensor:
    """``d E_base[X_1 | X_t = x] / dx`` ``(M, 1)``: what the lean adjoint of ``r = x`` estimates."""
    with torch.enable_grad():
        xg = x.detach().to(F64).requires_grad_(True)
        log_weight, mean, _ = _posterior(t, xg)
        (grad,) = torch.autograd.grad((torch.softmax(log_weight, -1) * mean).sum(), xg)
    return grad


class _ExactControl(nn.Module):
    """:func:`exact_control` as a module (``sample_fine_tuned`` takes one)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1, dtype=F64))

    def forward(self, t: Tensor, x: Tensor, batch: SystemBatch | None = None) -> Tensor:
        return exact_control(t, x)


class _ZeroControl(_ExactControl):
    def forward(self, t: Tensor, x: Tensor, batch: SystemBatch | None = None) -> Tensor:
        return torch.zeros_like(x)


class _Control(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, t: Tensor, x: Tensor, batch: SystemBatch | None = None) -> Tensor:
        return self.net(torch.cat([t.view(-1, 1).to(x.dtype), x], -1))


def _batch(n: int) -> SystemBatch:
    return SystemBatch([0] * n, EuclideanSpace(torch.arange(n), n, 1))


def task(t_start: float) -> FineTuneTask:
    def start(n: int, gen: torch.Generator) -> Tensor:
        """The base flow's marginal at ``t_start``: ``(1 - t) X_0 + t X_1``, ``X_1`` from the mixture."""
        x1 = MEANS[torch.randint(2, (n,), generator=gen)] + STD * torch.randn(n, generator=gen, dtype=F64)
        return interpolant_sample(x1.view(-1, 1), torch.full((n,), t_start, dtype=F64), _batch(n).space, gen)[0]

    return FineTuneTask.of_one_system(_batch, mixture_velocity, start, lambda x1, batch: torch.ones_like(x1))


def run(settings: AdjointMatchingSettings, num_samples: int = 20_000) -> dict[str, float]:
    """Fine-tune (``settings.iterations`` may be 0: the base alone) and measure the draws."""
    torch.manual_seed(settings.seed)
    control = _Control().double()
    fine_tune(control, task(settings.t_start), settings, log_every=max(settings.iterations // 5, 1))
    x = sample_fine_tuned(control if settings.iterations else None, task(settings.t_start), num_samples, settings,
                          torch.Generator().manual_seed(settings.seed + 1)).view(-1)
    right = x > 0
    return {"right_share": float(right.double().mean()), "left_mean": float(x[~right].mean()),
            "right_mean": float(x[right].mean())}


def run_exact(settings: AdjointMatchingSettings, num_samples: int = 20_000) -> dict[str, float]:
    """Draws of the SDE with the exact optimal control: the share and means the fine-tune aims at."""
    x = sample_fine_tuned(_ExactControl(), task(settings.t_start), num_samples, settings,
                          torch.Generator().manual_seed(settings.seed + 1)).view(-1)
    right = x > 0
    return {"right_share": float(right.double().mean()), "left_mean": float(x[~right].mean()),
            "right_mean": float(x[right].mean())}


def adjoint_check(settings: AdjointMatchingSettings, num_paths: int = 100_000,
                  times: tuple[float, ...] = (0.01, 0.09, 0.25, 0.49, 0.81)) -> list[dict[str, float]]:
    """Base paths (zero control): at the grid times nearest ``times``, the mean and median of the lean
    adjoint's ``-a(t)`` against the mean of its exact conditional mean ``d E[X_1 | X_t] / dx``."""
    batch_task = task(settings.t_start)
    targets = draw_targets(_ZeroControl(), batch_task, batch_task.make_batch([0] * num_paths), settings,
                           torch.Generator().manual_seed(settings.seed), F64)
    rows = []
    for wanted in times:
        k = int((targets.times - wanted).abs().argmin())
        estimate = -targets.adjoint[k].view(-1)
        exact = posterior_mean_slope(targets.times[k].expand(num_paths), targets.states[k]).view(-1)
        top = estimate.sort(descending=True).values
        rows.append({"t": float(targets.times[k]), "lean_adjoint_mean": float(estimate.mean()),
                     "lean_adjoint_median": float(estimate.median()), "exact_mean": float(exact.mean()),
                     "top_1pct_share_of_sum": float(top[: num_paths // 100].sum() / estimate.sum()),
                     "max": float(top[0])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sde-steps", type=int, default=100)
    parser.add_argument("--grid", default="start_refined")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--exact-control", action="store_true", help="sample with the exact optimal control instead")
    parser.add_argument("--adjoint-check", action="store_true",
                        help="compare the lean adjoint's mean with its exact value on base paths")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AdjointMatchingSettings(iterations=args.iterations, batch_size=args.batch_size, sde_steps=args.sde_steps,
                                       grid=args.grid, lr=args.lr, lr_final=args.lr / 10, seed=1)
    if args.adjoint_check:
        print(json.dumps({"sde_steps": args.sde_steps, "grid": args.grid, "rows": adjoint_check(settings)}))
        return 0
    outcome = run_exact(settings) if args.exact_control else run(settings)
    result = {**outcome, "exact_control": args.exact_control, "target_right_share": TILTED_RIGHT_SHARE, "target_means": TILTED_MEANS,
              "iterations": args.iterations, "sde_steps": args.sde_steps, "grid": args.grid, "lr": args.lr}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
