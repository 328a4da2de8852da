"""Write a copy of a trained checkpoint with other sampling settings (the same weights): the
variants the conformer benchmark compares as ``--model NAME=PATH``.

    python -m adjoint_sampling.benchmarks.sampling_variant models/shipped/default.pt /tmp/d3.pt \\
        --descent-steps 3 --descent-step 0.02
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from adjoint_sampling.models.checkpoint import (
    load_model_checkpoint,
    save_model_checkpoint,
)

from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.energy.registry import ENERGY_BACKENDS
from adjoint_sampling.sde.time_grids import GRID_KINDS, time_grid

__all__ = ["write_sampling_variant"]

SETTINGS = ("sde_steps", "grid_kind", "grid_power", "quiet_steps", "descent_steps", "descent_step",
            "clash_repair_steps", "polish_steps", "polish_step", "polish_energy", "polish_tolerance",
            "select_from", "select_rmsd", "relaxed_select_from", "relaxed_select_rmsd", "relaxed_prescreen_steps",
            "relaxed_raw_select_from", "conformers_per_local_structure", "max_local_structures",
            "output_energy")


def write_sampling_variant(source: str | Path, target: str | Path, **changes: Any) -> None:
    """Copy ``source`` to ``target`` with the sampling ``changes`` (keys of :data:`SETTINGS`).

    Raises:
        ConfigError: an unknown key or a setting the time grid refuses.
        CheckpointError: ``source`` unreadable, or settings the checkpoint refuses.
    """
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"not a sampling setting: {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    variant = dataclasses.replace(load_model_checkpoint(source), **changes)
    time_grid(variant.sde_steps, variant.grid_kind, power=variant.grid_power)  # refuses a bad grid early
    save_model_checkpoint(target, variant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.sampling_variant",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--sde-steps", type=int)
    parser.add_argument("--grid-kind", choices=GRID_KINDS)
    parser.add_argument("--grid-power", type=float)
    parser.add_argument("--quiet-steps", type=int)
    parser.add_argument("--descent-steps", type=int)
    parser.add_argument("--descent-step", type=float)
    parser.add_argument("--clash-repair-steps", type=int,
                        help="torsional models: repulsion steps on samples with a close contact (0: none)")
    parser.add_argument("--polish-steps", type=int,
                        help="torsional models: monotone torsion-space descent steps on --polish-energy (0: none)")
    parser.add_argument("--polish-step", type=float, help="initial polish step, rad per kcal/mol/rad")
    parser.add_argument("--polish-energy", choices=ENERGY_BACKENDS, help="backend of the polish (default mmff)")
    parser.add_argument("--polish-tolerance", type=float,
                        help="a draw's polish stops after a step that gained less, kcal/mol (0: never)")
    parser.add_argument("--select-from", type=float,
                        help="draws per returned sample; > 1: keep the lowest in --polish-energy that are distinct")
    parser.add_argument("--select-rmsd", type=float, help="least heavy-atom RMSD between selected samples, angstrom")
    parser.add_argument("--relaxed-select-from", type=float,
                        help="draws per returned conformer of a request with a relaxation; > 1: relax them all and "
                             "keep the lowest in relaxed energy that are distinct")
    parser.add_argument("--relaxed-select-rmsd", type=float,
                        help="least heavy-atom RMSD between relaxed conformers kept, angstrom")
    parser.add_argument("--relaxed-prescreen-steps", type=int,
                        help="> 0: choose on energies after at most that many optimiser iterations, then relax only "
                             "the chosen to the end")
    parser.add_argument("--relaxed-raw-select-from", type=float,
                        help="> 0: the raw --select-from of requests with a relaxation (0: the same as --select-from)")
    parser.add_argument("--conformers-per-local-structure", type=int,
                        help="torsional models: samples per RDKit local structure (fewer structures: faster)")
    parser.add_argument("--max-local-structures", type=int, help="torsional models: most local structures per request")
    parser.add_argument("--output-energy", choices=ENERGY_BACKENDS,
                        help="backend of the energies reported for unrelaxed conformers (the shipped model: mmff)")
    args = parser.parse_args(argv)
    changes = {k: v for k in SETTINGS if (v := getattr(args, k)) is not None}
    try:
        write_sampling_variant(args.source, args.target, **changes)
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
