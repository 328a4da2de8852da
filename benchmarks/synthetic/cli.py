"""`adjoint-sampling bench synthetic --system dw4|lj13|lj55`: W2 of a trained sampler vs MCMC references.

Reference samples (``benchmarks/synthetic/references/<system>.pt``) are made once by parallel
tempering with a MALA or HMC kernel (:mod:`benchmarks.synthetic.mcmc`) and reused;
``--make-reference`` regenerates them. A long reference run (LJ-55) goes in pieces: with
``--mcmc-state`` its whole state is saved as it goes, ``--mcmc-chunk-steps`` stops it after that
many steps, and the same command run again continues it; the reference is written when it ends.
Results are printed and written as JSON to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import fields
from pathlib import Path

import torch

from adjoint_sampling.benchmarks.synthetic.mcmc import (
    MCMC_KERNELS,
    MCMCResult,
    MCMCSettings,
    run_reference_mcmc,
    run_resumable_mcmc,
)
from adjoint_sampling.benchmarks.synthetic.metrics import (
    aligned_sq_distances,
    energy_tail_summary,
    energy_w2,
    wasserstein2_from_cost,
)
from adjoint_sampling.benchmarks.synthetic.restart import restarted_samples
from adjoint_sampling.benchmarks.synthetic.sampling import sample_checkpoint_with_log_weights
from adjoint_sampling.benchmarks.synthetic.shapes import energy_w2_at_reference_shape_shares, shape_table
from adjoint_sampling.core.atomic_io import atomic_torch_save, atomic_write_text
from adjoint_sampling.core.devices import resolve_device
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.synthetic import (
    PAIR_SUMS,
    SYNTHETIC_SYSTEMS,
    DoubleWellEnergy,
    ParticleEnergy,
    build_synthetic_energy,
    synthetic_energy_from_params,
)
from adjoint_sampling.method.importance import effective_sample_fraction
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.problems.synthetic import SyntheticProblem

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PAPER = {"dw4": (0.62, 0.55), "lj13": (1.67, 2.40), "lj55": (4.04, 30.83)}
"""Adjoint Sampling paper (W2 on samples, W2 on energies); for LJ under ``pair_sum="ordered"``."""

DEFAULT_MCMC = {
    "dw4": MCMCSettings(num_chains=2000, num_steps=20_000, burn_in=10_000, num_temperatures=6, max_temperature=4.0,
                        init_scale=2.0),
    "lj13": MCMCSettings(num_chains=2000, num_steps=6_000, burn_in=3_000, num_temperatures=2, max_temperature=1.5,
                         init_scale=1.1, init="grid"),
    # 1,000 chains (the papers' test sets hold 1,000); HMC: from the grid start it reaches the T = 1 energy
    # level in about a tenth of MALA's gradients (benchmarks/RESULTS.md, "LJ-55 reference"); temperatures
    # 1 and 1.12, close enough for 55 particles' energy distributions to overlap. Hours of one CPU thread:
    # run it in pieces with --mcmc-state and --mcmc-chunk-steps.
    "lj55": MCMCSettings(num_chains=1000, num_steps=800, burn_in=400, num_temperatures=2, max_temperature=1.12,
                         init_scale=1.1, init="grid", kernel="hmc", leapfrog_steps=10, initial_step_size=0.003,
                         swap_interval=1),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--system", choices=SYNTHETIC_SYSTEMS, required=True)
    parser.add_argument("--model", type=Path, default=None, help="model checkpoint (default: models/<system>.pt here)")
    parser.add_argument("--reference", type=Path, default=None, help="reference samples (default: references/<system>.pt)")
    parser.add_argument("--make-reference", action="store_true", help="(re)generate the reference by MCMC")
    parser.add_argument("--reference-only", action="store_true", help="only make/check the reference, no model")
    parser.add_argument("--pair-sum", choices=sorted(PAIR_SUMS), default="ordered",
                        help="Lennard-Jones convention of a new reference (default: ordered, the papers' test sets)")
    parser.add_argument("--mcmc-seed", type=int, default=None, help="seed of a new reference run")
    parser.add_argument("--mcmc-steps", type=int, default=None, help="steps of a new reference run (burn-in: half)")
    parser.add_argument("--mcmc-chains", type=int, default=None, help="chains of a new reference run")
    parser.add_argument("--mcmc-temperatures", type=int, default=None,
                        help="temperatures of a new reference run's geometric ladder")
    parser.add_argument("--mcmc-max-temperature", type=float, default=None,
                        help="top of a new reference run's ladder (in units of tau)")
    parser.add_argument("--mcmc-kernel", choices=MCMC_KERNELS, default=None,
                        help="Metropolis-adjusted moves of a new reference run (default: the system's)")
    parser.add_argument("--mcmc-leapfrog-steps", type=int, default=None, help="HMC: leapfrog steps per move")
    parser.add_argument("--mcmc-state", type=Path, default=None,
                        help="a new reference run's saved state: the run continues from it if it exists and is "
                             "saved there as it goes (run the same command again after a stop or a kill)")
    parser.add_argument("--mcmc-chunk-steps", type=int, default=None,
                        help="with --mcmc-state: stop after this many steps (the state is saved; run again to go on)")
    parser.add_argument("--mcmc-save-every", type=int, default=100,
                        help="with --mcmc-state: steps between saves of the state (a kill loses at most these)")
    parser.add_argument("--device", default="cpu",
                        help="where a new reference run's chains live: cpu, cuda[:N] or auto (same random stream)")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--sde-steps", type=int, default=None, help="override the checkpoint's SDE steps")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the model")
    parser.add_argument("--rounds", type=int, default=2, help="alignment/assignment rounds for n > 6 particles")
    parser.add_argument("--restart-times", default=None,
                        help="comma-separated t0 in [0, 1): also restart the model at t0 from the reference's "
                             "bridges and report energy W2 and mean energy (where the control goes wrong)")
    parser.add_argument("--importance-resample", action="store_true",
                        help="also report the samples resampled by their path importance weights (a diagnostic: "
                             "duplicates allowed; not the sampler's output)")
    parser.add_argument("--shapes", action="store_true",
                        help="double wells only: count samples by short pairs (shape) and report the energy W2 "
                             "left if the shape weights were the reference's")
    parser.add_argument("--output", type=Path, default=None, help="JSON results file")
    parser.add_argument("--threads", type=int, default=1)


def _mcmc_settings(args: argparse.Namespace) -> MCMCSettings:
    """The system's default reference settings with the command line's ``--mcmc-*`` overrides."""
    overrides = {}
    if args.mcmc_seed is not None:
        overrides["seed"] = args.mcmc_seed
    if args.mcmc_steps is not None:
        overrides.update(num_steps=args.mcmc_steps, burn_in=args.mcmc_steps // 2)
    for name, value in (("num_chains", args.mcmc_chains), ("num_temperatures", args.mcmc_temperatures),
                        ("max_temperature", args.mcmc_max_temperature), ("kernel", args.mcmc_kernel),
                        ("leapfrog_steps", args.mcmc_leapfrog_steps)):
        if value is not None:
            overrides[name] = value
    base = DEFAULT_MCMC[args.system]
    return MCMCSettings(**{f.name: overrides.get(f.name, getattr(base, f.name)) for f in fields(MCMCSettings)})


def _reference(args: argparse.Namespace) -> tuple[dict | None, Path]:
    """The reference samples (made now if asked or missing); None while a resumable run is unfinished."""
    path = args.reference or HERE / "references" / f"{args.system}.pt"
    if path.exists() and not args.make_reference:
        return torch.load(path, weights_only=False), path
    if args.mcmc_chunk_steps is not None and (args.mcmc_state is None or args.mcmc_chunk_steps < 1):
        raise ConfigError("--mcmc-chunk-steps needs --mcmc-state and a positive number of steps")
    if args.mcmc_save_every < 1:
        raise ConfigError(f"--mcmc-save-every must be positive, got {args.mcmc_save_every}")
    settings = _mcmc_settings(args)
    energy = build_synthetic_energy(args.system, args.pair_sum)
    device = resolve_device(args.device)
    log.info("making %s reference samples by parallel tempering (%s): %s", args.system, settings.kernel, settings)
    t0 = time.perf_counter()
    if args.mcmc_state is None:
        result: MCMCResult | None = run_reference_mcmc(energy, settings, device=device)
        seconds = time.perf_counter() - t0
    else:
        result, state = run_resumable_mcmc(energy, settings, args.mcmc_state, max_steps=args.mcmc_chunk_steps,
                                           save_every=args.mcmc_save_every, device=device)
        seconds = state.seconds
        last = f", T = 1 mean energy {state.trace[-1][1]:.3f}" if state.trace else ""
        print(f"reference run {args.mcmc_state}: step {state.step} of {settings.num_steps} "
              f"({state.seconds:.0f} s in all{last})")
        if result is None:
            print(f"not finished: run the same command again to continue; {path} is written when it ends")
            return None, path
    data = {"samples": result.samples.float(), "energies": result.energies, "summary": result.summary(),
            "seconds": seconds, "energy": energy.params()}
    atomic_torch_save(data, path)
    log.info("reference written to %s (%.0f s)", path, data["seconds"])
    return data, path


def _reference_energy(ref: dict, path: Path, system: str) -> ParticleEnergy:
    """The energy a reference file was sampled from (its stored parameters)."""
    energy = synthetic_energy_from_params(ref["energy"]) if "energy" in ref else build_synthetic_energy(system)
    if energy.name != system:
        raise ConfigError(f"{path} holds samples of {energy.name!r}, not {system!r}")
    return energy


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.shapes and not isinstance(build_synthetic_energy(args.system), DoubleWellEnergy):
        raise ConfigError(f"--shapes is for double-well systems, not {args.system!r}")
    ref, ref_path = _reference(args)
    if ref is None:
        if args.reference_only:
            return 0
        raise ConfigError(f"the reference run for {ref_path} is not finished: no comparison yet")
    energy = _reference_energy(ref, ref_path, args.system)
    ref_x, ref_e = ref["samples"].double(), ref["energies"].double()
    print(f"reference {ref_path}: {ref_x.shape[0]} samples of {energy.params()}, mean energy {float(ref_e.mean()):.3f}, "
          f"{ref['summary'].get('settings', {}).get('kernel', 'mala').upper()} acceptance "
          f"{[round(a, 3) for a in ref['summary']['acceptance']]}")
    for text in ref["summary"].get("warnings", []):
        print(f"WARNING: reference {ref_path}: {text}")
    if args.reference_only:
        return 0
    model_path = args.model or HERE / "models" / f"{args.system}.pt"
    ckpt = load_model_checkpoint(model_path)
    if args.sde_steps is not None:
        ckpt.sde_steps = args.sde_steps
    if ckpt.problem.get("system") != args.system:
        raise ConfigError(f"{model_path} is a model of {ckpt.problem.get('system')!r}, not {args.system!r}")
    model_energy = SyntheticProblem.from_description(ckpt.problem).energy_model
    if model_energy.params() != energy.params():
        raise ConfigError(f"{model_path} was trained on {model_energy.params()} but {ref_path} samples "
                          f"{energy.params()}: compare a model only with a reference of the same energy")
    n = min(args.num_samples, ref_x.shape[0])
    t0 = time.perf_counter()
    gen_x, gen_e, gen_log_w = sample_checkpoint_with_log_weights(ckpt, n, args.seed)
    sample_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    w2 = wasserstein2_from_cost(aligned_sq_distances(gen_x, ref_x[:n], rounds=args.rounds))
    e_w2 = energy_w2(gen_e, ref_e[:n])
    counters = ckpt.counters
    result = {
        "system": args.system, "energy": energy.params(), "model": str(model_path), "reference": str(ref_path),
        "num_samples": n,
        "seed": args.seed, "w2": w2, "energy_w2": e_w2, "paper_w2": PAPER[args.system][0],
        "paper_energy_w2": PAPER[args.system][1], "gen_energy_mean": float(gen_e.mean()),
        "ref_energy_mean": float(ref_e[:n].mean()), "sampling_seconds": sample_seconds,
        "metric_seconds": time.perf_counter() - t0, "sde_steps": ckpt.sde_steps,
        "train_counters": {k: counters.get(k) for k in ("iteration", "grad_steps", "energy_evals", "train_seconds")},
        "grad_steps_per_energy_eval": counters.get("grad_steps", 0) / max(counters.get("energy_evals", 1), 1),
    }
    tail = energy_tail_summary(gen_x, gen_e, ref_x[:n], ref_e[:n])
    result["tail"] = tail
    print(f"{args.system}: W2 {w2:.3f} (paper {PAPER[args.system][0]}), energy W2 {e_w2:.3f} "
          f"(paper {PAPER[args.system][1]}); mean energy generated {result['gen_energy_mean']:.3f} vs reference "
          f"{result['ref_energy_mean']:.3f}; {n} samples")
    print(f"median energy generated {tail['gen_energy_median']:.3f} vs reference {tail['ref_energy_median']:.3f}; "
          f"energy W2 of the lowest 99 % of each {tail['energy_w2_lowest_99pct']:.3f}; "
          f"{100 * tail['overlap_share']:.1f} % of samples have a pair closer than any reference sample's "
          f"({tail['ref_closest_pair']:.3f})")
    ess = effective_sample_fraction(gen_log_w, torch.zeros(n, dtype=torch.long))
    result["importance_effective_fraction"] = ess
    print(f"path importance weights: effective sample size {ess * n:.0f} of {n}")
    if args.importance_resample:
        result["importance_resampled"] = _importance_resampled(gen_x, gen_e, gen_log_w, ref_x[:n], ref_e[:n], args)
    if args.shapes:
        result["shapes"] = _shapes(gen_x, gen_e, ref_x[:n], ref_e[:n], energy, args.seed)
    if args.restart_times:
        result["restarts"] = _restarts(ckpt, ref_x[:n], ref_e[:n], args.restart_times, args.seed)
    if args.output:
        atomic_write_text(args.output, json.dumps(result, indent=2))
    return 0


def _importance_resampled(gen_x: torch.Tensor, gen_e: torch.Tensor, log_w: torch.Tensor, ref_x: torch.Tensor,
                          ref_e: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    """W2 and energy W2 of ``n`` draws (with replacement) of the samples in proportion to their weights."""
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.multinomial(torch.softmax(log_w, 0), gen_x.shape[0], replacement=True, generator=gen)
    x, e = gen_x[idx], gen_e[idx]
    row = {"w2": wasserstein2_from_cost(aligned_sq_distances(x, ref_x, rounds=args.rounds)),
           "energy_w2": energy_w2(e, ref_e), "energy_mean": float(e.mean()), "distinct": int(idx.unique().numel())}
    print(f"resampled by importance weight ({row['distinct']} distinct samples): W2 {row['w2']:.3f}, "
          f"energy W2 {row['energy_w2']:.3f}, mean energy {row['energy_mean']:.3f}")
    return row


def _shapes(gen_x: torch.Tensor, gen_e: torch.Tensor, ref_x: torch.Tensor, ref_e: torch.Tensor,
            energy: DoubleWellEnergy, seed: int) -> dict:
    table = shape_table(gen_x, gen_e, ref_x, ref_e, energy)
    print("short pairs | generated (mean energy) | reference (mean energy)")
    for row in table:
        g, r = row["generated_energy_mean"], row["reference_energy_mean"]
        print(f"{row['short_pairs']:11d} | {row['generated']:5d} ({'-' if g is None else f'{g:.2f}'}) | "
              f"{row['reference']:5d} ({'-' if r is None else f'{r:.2f}'})")
    within = energy_w2_at_reference_shape_shares(gen_x, gen_e, ref_x, ref_e, energy, seed)
    print(f"energy W2 with the reference's shape weights (within-shape error only): {within:.3f}")
    return {"table": table, "energy_w2_at_reference_shape_shares": within}


def _restarts(ckpt, ref_x: torch.Tensor, ref_e: torch.Tensor, text: str, seed: int) -> list[dict[str, float]]:
    try:
        times = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--restart-times must be comma-separated numbers, got {text!r}") from None
    if not times or not all(0.0 <= t < 1.0 for t in times):
        raise ConfigError(f"--restart-times must be in [0, 1), got {text!r}")
    rows = []
    for t0 in times:
        _, energies = restarted_samples(ckpt, ref_x, t0, seed)
        row = {"t0": t0, "energy_w2": energy_w2(energies, ref_e), "energy_mean": float(energies.mean())}
        print(f"restart at t0 = {t0:g}: energy W2 {row['energy_w2']:.3f}, mean energy {row['energy_mean']:.3f}")
        rows.append(row)
    return rows
