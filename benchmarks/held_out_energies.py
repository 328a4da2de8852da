"""Reference-free comparison of trained samplers on held-out SPICE training molecules: a check for
choosing a sampler's settings without the test list's reference conformers.

The molecules come from ``spice_train.txt`` after the shuffle the training jobs use (``shuffle_seed``
0), past the part any job trained on (from index ``--offset``, default 2000; the jobs use their first
few hundred usable molecules). For each variant (a checkpoint, optionally with another solver, step
count and grid), ``--conformers`` raw draws per molecule (one draw each, no replacement of failed
draws): the share that passes the structure checks, the MMFF94 energies of the valid ones above
the lowest energy any variant found for that molecule (kcal/mol; lower is more precise), and the
number of distinct conformers among them (those left after pruning at 1.0 A heavy-atom RMSD, the
same draws; a reference-free stand-in for coverage recall: a sampler that collapses onto few
conformers scores low).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.held_out_energies --molecules 24 \\
        --variant flow_sde20=runs/flow_torsional_spice/model.pt:sde:20:start_refined \\
        --variant flow_ode10=runs/flow_torsional_spice/model.pt:ode:10:uniform --out held_out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from adjoint_sampling.core.errors import AdjointSamplingError, CheckpointError, ConfigError
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.problems.molecular.dataset import DEFAULT_TRAIN_SMILES, prepare_molecules, read_smiles_file

__all__ = ["Variant", "compare_held_out", "parse_variant"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """A checkpoint, sampled with its own settings or with ``solver`` / ``steps`` / ``grid`` (and an
    Adjoint Matching control switched on from ``control_from``)."""

    name: str
    checkpoint: Path
    solver: str | None = None
    steps: int | None = None
    grid: str | None = None
    control_from: float | None = None

    def sampler(self) -> Sampler:
        sampler = Sampler.from_checkpoint(self.checkpoint, build_energy("mmff"), reuse_samples=True)
        changes = {k: v for k, v in (("solver", self.solver), ("sde_steps", self.steps), ("grid_kind", self.grid),
                                     ("control_from", self.control_from)) if v is not None}
        # a new Sampler on the changed checkpoint: its schedule and grid are derived again
        return dataclasses.replace(sampler, checkpoint=dataclasses.replace(sampler.checkpoint, **changes))


def parse_variant(text: str) -> Variant:
    """``NAME=PATH[:SOLVER:STEPS:GRID[:CONTROL_FROM]]`` -> :class:`Variant` (ConfigError if malformed)."""
    name, eq, rest = text.partition("=")
    parts = rest.split(":")
    usage = f"--variant {text!r}: expected NAME=PATH or NAME=PATH:SOLVER:STEPS:GRID[:CONTROL_FROM]"
    if not eq or not name or len(parts) not in (1, 4, 5) or (len(parts) >= 4 and not parts[2].isdigit()):
        raise ConfigError(usage)
    try:
        control_from = float(parts[4]) if len(parts) == 5 else None
    except ValueError:
        raise ConfigError(usage) from None
    if not Path(parts[0]).is_file():
        raise ConfigError(f"--variant {text!r}: checkpoint {parts[0]} does not exist")
    if len(parts) == 1:
        return Variant(name, Path(parts[0]))
    return Variant(name, Path(parts[0]), parts[1], int(parts[2]), parts[3], control_from)


def compare_held_out(variants: list[Variant], molecules: int, conformers: int = 32, offset: int = 2000,
                     seed: int = 0) -> dict[str, dict[str, float | int]]:
    """Per variant: ``molecules``, ``valid_share``, median and mean MMFF energy above the lowest found,
    and ``distinct_at_1A``: the mean over molecules of the valid draws left after pruning at 1.0 A."""
    smiles = read_smiles_file(DEFAULT_TRAIN_SMILES)
    random.Random(0).shuffle(smiles)
    records = prepare_molecules(smiles[offset:], seed=0, max_atoms=60, min_torsions=1, max_torsions=12,
                                limit=molecules)
    samplers = {v.name: v.sampler() for v in variants}
    valid = dict.fromkeys(samplers, 0)
    distinct = dict.fromkeys(samplers, 0)
    excess: dict[str, list[float]] = {name: [] for name in samplers}
    for record in records:
        energies = {}
        for name, sampler in samplers.items():
            request = GenerationRequest(smiles=record.smiles, num_conformers=conformers, seed=seed, max_draw_multiple=1)
            try:
                result = sampler.generate(request)
            except AdjointSamplingError as exc:
                log.warning("%s on %s: %s", name, record.smiles, exc)
                energies[name] = []
                continue
            valid[name] += len(result.conformers)
            energies[name] = [c.energy for c in result.conformers if c.energy is not None]
            distinct[name] += len(sampler.generate(dataclasses.replace(request, prune_rms=1.0)).conformers)
        found = [e for values in energies.values() for e in values]
        if found:
            for name, values in energies.items():
                excess[name] += [e - min(found) for e in values]
    return {name: {"molecules": len(records), "valid_share": valid[name] / max(len(records) * conformers, 1),
                   "median_mmff_above_lowest": statistics.median(excess[name]) if excess[name] else float("nan"),
                   "mean_mmff_above_lowest": statistics.fmean(excess[name]) if excess[name] else float("nan"),
                   "distinct_at_1A": distinct[name] / max(len(records), 1)}
            for name in samplers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.held_out_energies",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=PATH[:SOLVER:STEPS:GRID[:CONTROL_FROM]]")
    parser.add_argument("--molecules", type=int, default=24)
    parser.add_argument("--conformers", type=int, default=32)
    parser.add_argument("--offset", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        variants = [parse_variant(v) for v in args.variant]
        summary = compare_held_out(variants, args.molecules, args.conformers, args.offset)
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps({"command": "python -m adjoint_sampling.benchmarks.held_out_energies " + " ".join(argv or sys.argv[1:]),
                       "variants": summary}, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
