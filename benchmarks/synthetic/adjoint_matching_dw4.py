"""Adjoint Matching on DW-4: a flow pre-trained on a deliberately biased sample, fine-tuned to the true target.

The bias: the base flow learns (flow matching, EGNN velocity) from PT-MALA samples of DW-4 at the
temperature ``--base-tau`` (default 2), i.e. of ``exp(-E / tau_b)``: every shape is there, with the
wrong weights and too hot. Adjoint Matching with the reward ``r = -E`` and ``lambda = 1 - 1 / tau_b``
tilts it to ``p_base exp(-lambda E)``, which is ``exp(-E)`` (DW-4 at tau = 1) up to the base
flow's own error. Both are compared with the committed tau = 1 reference
(``benchmarks/synthetic/references/dw4.pt``, a separate MCMC run): W2 and energy W2 on 2,000
samples, before (the base flow's memoryless SDE) and after (plus the fine-tuned control).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_dw4 \\
        --output benchmarks/results/adjoint_matching_dw4.json

The biased sample is made once and kept (``references/dw4_tau2.pt``); the two networks are written
to ``--model-dir`` (the recorded run's: ``adjoint_matching/dw4_networks.pt``, which
``--flow-checkpoint`` accepts to skip the flow's training).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from adjoint_sampling.benchmarks.synthetic.mcmc import MCMCSettings, run_reference_mcmc
from adjoint_sampling.benchmarks.synthetic.metrics import (
    aligned_sq_distances,
    energy_w2,
    wasserstein2_from_cost,
)
from adjoint_sampling.energy.synthetic import DoubleWellEnergy
from adjoint_sampling.models.egnn import EGNNController
from torch import Tensor

from adjoint_sampling.core.atomic_io import atomic_torch_save, atomic_write_text
from adjoint_sampling.method.flow_matching import interpolant_sample
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    FlowMatchingSettings,
    fine_tune,
    pretrain_flow,
    sample_fine_tuned,
)
from adjoint_sampling.training.control_alignment import control_alignment

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
EGNN = {"hidden": 64, "num_layers": 3, "length_scale": 4.0, "max_update": 10.0}
"""The networks of velocity and control: the EGNN of ``configs/dw4.yaml``."""


def biased_sample(base_tau: float, path: Path, seed: int = 1) -> Tensor:
    """2,000 PT-MALA samples ``(2000, 4, 2)`` float64 of DW-4 at temperature ``base_tau`` (made once, kept at ``path``)."""
    if path.exists():
        data = torch.load(path, weights_only=False)
        if data["tau"] == base_tau:
            return data["samples"].double()
    settings = MCMCSettings(num_chains=2000, num_steps=6000, burn_in=3000, num_temperatures=4, max_temperature=2.0,
                            init_scale=2.0, seed=seed)
    log.info("making the biased sample: DW-4 at tau %.2f by PT-MALA %s", base_tau, settings)
    start = time.perf_counter()
    result = run_reference_mcmc(DoubleWellEnergy(tau=base_tau), settings)
    atomic_torch_save({"samples": result.samples.float(), "energies": result.energies, "tau": base_tau,
                       "summary": result.summary(), "seconds": time.perf_counter() - start}, path)
    return result.samples


def evaluate(x: Tensor, problem: SyntheticProblem, ref_x: Tensor, ref_e: Tensor) -> dict[str, float]:
    """W2, energy W2 and mean energy of samples ``x`` ``(K, 4, 2)`` against the reference."""
    e = problem.energy_model.energy(x.double())
    return {"w2": wasserstein2_from_cost(aligned_sq_distances(x.double(), ref_x)), "energy_w2": energy_w2(e, ref_e),
            "mean_energy": float(e.mean())}


def alignment_rows(control: EGNNController, task: FineTuneTask, settings: AdjointMatchingSettings, num: int = 256,
                   seed: int = 0) -> list[dict[str, float]]:
    """:func:`training.control_alignment` along ``num`` paths, at seven grid times from start to end."""
    rows = control_alignment(control, task, settings, num, torch.Generator().manual_seed(seed))
    steps = len(rows)
    return [asdict(rows[k]) for k in
            sorted({1, steps // 10, 3 * steps // 10, steps // 2, 7 * steps // 10, 9 * steps // 10, steps - 1})]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.synthetic.adjoint_matching_dw4",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--base-tau", type=float, default=2.0, help="temperature of the biased sample")
    parser.add_argument("--flow-steps", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=3000, help="Adjoint Matching gradient steps")
    parser.add_argument("--grad-steps-per-batch", type=int, default=10, help="gradient steps on each batch of paths")
    parser.add_argument("--flow-checkpoint", type=Path,
                        help="reuse the base flow of an earlier run (its dw4_adjoint_matching.pt) instead of training one")
    parser.add_argument("--alignment-only", action="store_true",
                        help="with --flow-checkpoint: print how that run's control aligns with its targets, then stop")
    parser.add_argument("--batch-size", type=int, default=64, help="paths per iteration")
    parser.add_argument("--times-per-iteration", type=int, default=25)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--loss-weight", choices=["none", "sigma_sq"], default="none")
    parser.add_argument("--sde-steps", type=int, default=100)
    parser.add_argument("--grid", default="start_refined",
                        help="time grid of paths and draws: start_refined keeps Euler stable near t_start, where the "
                             "memoryless drift 2 v - x / t is stiff (a uniform step of 0.01 at t = 0.001 multiplies x by -9)")
    parser.add_argument("--eval-sde-steps", type=int, default=200)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/adjoint_matching_dw4"))
    parser.add_argument("--output", type=Path, default=Path("out/adjoint_matching_dw4.json"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    problem = SyntheticProblem.from_name("dw4")
    reference = torch.load(HERE / "references" / "dw4.pt", weights_only=False)
    ref_x, ref_e = reference["samples"].double()[: args.num_samples], reference["energies"].double()[: args.num_samples]
    data = biased_sample(args.base_tau, HERE / "references" / f"dw4_tau{args.base_tau:g}.pt")
    report: dict[str, Any] = {"base_tau": args.base_tau, "reward_scale": 1.0 - 1.0 / args.base_tau, "seed": args.seed,
                              "egnn": EGNN, "reference": evaluate(data[: args.num_samples], problem, ref_x, ref_e)}
    print(f"biased sample (tau {args.base_tau:g}) against the tau = 1 reference: {report['reference']}")

    def make_batch(n: int) -> SystemBatch:
        return problem.make_batch([0] * n)

    velocity = EGNNController(**EGNN)
    if args.flow_checkpoint is not None:
        earlier = torch.load(args.flow_checkpoint, weights_only=False)
        velocity.load_state_dict(earlier["velocity"])
        report["flow_matching"] = {**earlier["report"]["flow_matching"], "from": str(args.flow_checkpoint)}
    else:
        flow = FlowMatchingSettings(steps=args.flow_steps, seed=args.seed)
        start = time.perf_counter()
        flow_losses = pretrain_flow(velocity, data.float(), make_batch, flow, log_every=500)
        report["flow_matching"] = {**asdict(flow), "seconds": time.perf_counter() - start,
                                   "final_loss": sum(flow_losses[-100:]) / 100}
    velocity.requires_grad_(False)

    settings = AdjointMatchingSettings(
        iterations=args.iterations, batch_size=args.batch_size, sde_steps=args.sde_steps, grid=args.grid, lr=args.lr,
        lr_final=args.lr / 10,
        grad_clip=1.0, reward_scale=1.0 - 1.0 / args.base_tau, max_adjoint_norm=30.0,
        times_per_iteration=args.times_per_iteration, grad_steps_per_batch=args.grad_steps_per_batch,
        loss_weight=args.loss_weight, seed=args.seed + 1,
    )

    def sample_start(n: int, gen: torch.Generator) -> Tensor:
        """The base flow's marginal at t_start: ``(1 - t) X_0 + t X_1`` with X_1 from the biased sample."""
        space = make_batch(n).space
        x1 = space.project_state(data[torch.randint(data.shape[0], (n,), generator=gen)].reshape(-1, 2).float())
        return interpolant_sample(x1, torch.full((n,), settings.t_start), space, gen)[0]

    def reward_grad(x1: Tensor, batch: SystemBatch) -> Tensor:
        return -problem.evaluate(batch, x1).energy_grad.to(x1.dtype)

    task = FineTuneTask.of_one_system(make_batch, velocity, sample_start, reward_grad)
    evaluation = AdjointMatchingSettings(**{**asdict(settings), "sde_steps": args.eval_sde_steps,
                                            "times_per_iteration": None})

    def draw(control: EGNNController | None) -> Tensor:
        x = sample_fine_tuned(control, task, args.num_samples, evaluation, torch.Generator().manual_seed(args.seed + 7),
                              torch.float32)
        return x.view(args.num_samples, 4, 2)

    if args.alignment_only:
        if args.flow_checkpoint is None:
            raise SystemExit("--alignment-only needs --flow-checkpoint")
        control = EGNNController(**EGNN)
        control.load_state_dict(torch.load(args.flow_checkpoint, weights_only=False)["control"])
        for row in alignment_rows(control, task, settings, seed=args.seed):
            print(json.dumps({k: round(v, 3) for k, v in row.items()}))
        return 0
    base = draw(None)
    report["before"] = evaluate(base, problem, ref_x, ref_e)
    biased_e = problem.energy_model.energy(data[: args.num_samples])
    report["base_flow_vs_its_data"] = evaluate(base, problem, data[: args.num_samples], biased_e)
    print(f"base flow: {report['before']}; against its own (biased) data: {report['base_flow_vs_its_data']}")
    control = EGNNController(**EGNN)
    start = time.perf_counter()
    losses = fine_tune(control, task, settings, log_every=25)
    report["adjoint_matching"] = {**asdict(settings), "seconds": time.perf_counter() - start,
                                  "energy_evaluations": -(-settings.iterations // settings.grad_steps_per_batch)
                                  * settings.batch_size,
                                  "loss_first_25": sum(losses[:25]) / 25, "loss_last_25": sum(losses[-25:]) / 25}
    report["after"] = evaluate(draw(control), problem, ref_x, ref_e)
    report["control_alignment"] = alignment_rows(control, task, settings, seed=args.seed)
    print(f"fine-tuned: {report['after']}")
    args.model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"egnn": EGNN, "velocity": velocity.state_dict(), "control": control.state_dict(), "report": report},
               args.model_dir / "dw4_adjoint_matching.pt")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
