"""`adjoint-sampling bench conformers {run,merge,rmsd-check}`: the conformer benchmark.

* ``run``: evaluate methods against the CREST references (``--workers``, ``--shard i/n``,
  ``--limit``; resumable), then write ``summary.md``, ``summary.json`` and ``coverage.png``.
* ``merge``: combine shard record files into ``per_molecule.jsonl`` and write the report.
* ``rmsd-check``: compare the batched RMSD with RDKit's ``GetBestRMS`` and time both.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.paths import SHARED_DATA_DIR

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = SHARED_DATA_DIR
DEFAULT_OUT_DIR = Path("benchmarks/results/conformers")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with spice_test.txt and spice_test_conformers/ (default: %(default)s)")
    parser.add_argument("--test-list", type=Path, default=None, help="test list (default: DATA_DIR/spice_test.txt)")
    parser.add_argument("--conformer-dir", type=Path, default=None,
                        help="reference ensembles (default: DATA_DIR/spice_test_conformers)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N molecules with references")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="evaluate methods against the reference ensembles")
    _add_data_arguments(run)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output folder (default: %(default)s)")
    run.add_argument("--methods", default=None,
                     help="comma-separated GENERATOR[+RELAX[@STEPS]] (RELAX: mmff, xtb, gnn), e.g. "
                          "etkdg,etkdg+mmff,etkdg+gnn,sampler,sampler+mmff,sampler+gnn@100 "
                          "(default: etkdg,etkdg+mmff, plus sampler,sampler+mmff with --checkpoint)")
    run.add_argument("--checkpoint", type=Path, default=None, help="trained sampler checkpoint (enables 'sampler')")
    run.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                     help="another trained model, compared as methods NAME, NAME+mmff, ... (repeatable)")
    run.add_argument("--sde-steps", type=int, default=None,
                     help="sampler Euler-Maruyama steps (default: the checkpoint's)")
    run.add_argument("--sampler-energy", default=None, choices=("mmff", "xtb"),
                     help="energy backend of the sampler's reported energies for unrelaxed conformers "
                          "(default: the checkpoint's; e.g. mmff for an xtb-trained model)")
    run.add_argument("--energy-model", type=Path, default=None, metavar="PATH",
                     help="GNN energy checkpoint of +gnn methods (default: AS_ENERGY_MODEL, else models/shipped/energy.pt)")
    run.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    run.add_argument("--shard", default="0/1", help="i/n: evaluate the i-th of n round-robin parts (default: %(default)s)")
    run.add_argument("--max-references", type=int, default=512, help="references per molecule (default: %(default)s)")
    run.add_argument("--conformers-per-reference", type=int, default=2, help="K / L (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="generation seed for every method (default: %(default)s)")
    run.add_argument("--max-draw-multiple", type=int, default=1,
                     help="replace draws failing the checks, up to this many draws per conformer (default: %(default)s, "
                          "draw K once as the recorded protocol; the product uses 4)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    merge = actions.add_parser("merge", help="combine shard record files and write the report")
    merge.add_argument("inputs", nargs="+", type=Path, help="record files or folders of *.jsonl")
    merge.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output folder (default: %(default)s)")

    paired = actions.add_parser("paired", help="compare two methods of one run molecule by molecule (wins, "
                                               "precision over draws, strata by the share of draws kept)")
    paired.add_argument("records", type=Path, help="per_molecule.jsonl of a run, or its folder")
    paired.add_argument("--base", required=True, help="method compared against, e.g. flow+mmff")
    paired.add_argument("--candidate", required=True, help="method compared, e.g. am+mmff")
    paired.add_argument("--threshold", type=float, default=1.0, help="angstrom, on the sweep (default: %(default)s)")
    paired.add_argument("--min-valid", default="0.9", help="comma-separated shares of draws kept that split the "
                                                           "molecules into strata (default: %(default)s)")
    paired.add_argument("--out", type=Path, default=None, help="also write the comparison as JSON here")

    check = actions.add_parser("rmsd-check", help="batched RMSD vs RDKit GetBestRMS: agreement and speed-up")
    _add_data_arguments(check)
    check.add_argument("--probes", type=int, default=128, help="ETKDG conformers per molecule (default: %(default)s)")
    check.add_argument("--references", type=int, default=64, help="references per molecule (default: %(default)s)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR / "rmsd_check.json",
                       help="JSON output (default: %(default)s)")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return index, count


def _data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    test_list = args.test_list or args.data_dir / "spice_test.txt"
    conformer_dir = args.conformer_dir or args.data_dir / "spice_test_conformers"
    if not test_list.is_file():
        raise ConfigError(f"test list {test_list} does not exist (set --data-dir or --test-list)")
    if not conformer_dir.is_dir():
        raise ConfigError(f"reference folder {conformer_dir} does not exist (set --data-dir or --conformer-dir)")
    return test_list, conformer_dir


def _command_line() -> str:
    return shlex.join(["adjoint-sampling", *sys.argv[1:]])


def _run(args: argparse.Namespace) -> int:
    from adjoint_sampling.benchmarks.conformers.methods import parse_methods, parse_models
    from adjoint_sampling.benchmarks.conformers.records import read_records
    from adjoint_sampling.benchmarks.conformers.report import write_report
    from adjoint_sampling.benchmarks.conformers.runner import BenchmarkConfig, run_benchmark

    test_list, conformer_dir = _data_paths(args)
    shard_index, num_shards = _parse_shard(args.shard)
    if args.checkpoint is not None and not args.checkpoint.exists():
        raise ConfigError(f"checkpoint {args.checkpoint} does not exist")
    if args.sde_steps is not None and args.sde_steps < 1:
        raise ConfigError(f"--sde-steps must be >= 1, got {args.sde_steps}")
    methods = tuple(parse_methods(args.methods, args.checkpoint, parse_models(args.model)))
    if any(m.relax == "gnn" for m in methods):  # a missing or corrupt energy model: one line, before any molecule
        from adjoint_sampling.generation.shipped import load_energy_model

        load_energy_model(args.energy_model)
    config = BenchmarkConfig(
        test_list=test_list,
        conformer_dir=conformer_dir,
        out_dir=args.out,
        methods=methods,
        checkpoint=args.checkpoint,
        sde_steps=args.sde_steps,
        sampler_energy=args.sampler_energy,
        energy_model=args.energy_model,
        max_references=args.max_references,
        conformers_per_reference=args.conformers_per_reference,
        seed=args.seed,
        max_draw_multiple=args.max_draw_multiple,
        workers=args.workers,
        shard_index=shard_index,
        num_shards=num_shards,
        limit=args.limit,
        progress=not args.no_progress,
    )
    outcome = run_benchmark(config)
    print(f"{outcome.new_records} new records ({outcome.already_done} pairs already done) in {outcome.records_path}")
    if num_shards > 1:
        print(f"shard {shard_index}/{num_shards} done; combine the shards with "
              f"'adjoint-sampling bench conformers merge {args.out / 'shards'} --out {args.out}'")
        return 0
    paths = write_report(read_records(outcome.records_path), args.out, _command_line())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from adjoint_sampling.benchmarks.conformers.merge import merge_records
    from adjoint_sampling.benchmarks.conformers.report import write_report
    from adjoint_sampling.benchmarks.conformers.runner import RECORDS_FILE_NAME

    output = args.out / RECORDS_FILE_NAME
    records = merge_records(args.inputs, output)
    print(f"{len(records)} records merged into {output}")
    for kind, path in write_report(records, args.out, _command_line()).items():
        print(f"{kind}: {path}")
    return 0


def _paired(args: argparse.Namespace) -> int:
    import json

    from adjoint_sampling.benchmarks.conformers.paired import format_paired, paired_comparison
    from adjoint_sampling.benchmarks.conformers.records import read_records
    from adjoint_sampling.benchmarks.conformers.runner import RECORDS_FILE_NAME

    path = args.records / RECORDS_FILE_NAME if args.records.is_dir() else args.records
    if not path.is_file():
        raise ConfigError(f"no records file {path}")
    try:
        shares = [float(s) for s in args.min_valid.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--min-valid must be comma-separated numbers, got {args.min_valid!r}") from None
    result = paired_comparison(read_records(path), args.base, args.candidate, args.threshold, shares)
    print(format_paired(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
        print(f"written: {args.out}")
    return 0


def _rmsd_check(args: argparse.Namespace) -> int:
    import torch

    from adjoint_sampling.benchmarks.conformers.references import (
        MissingReferenceError,
        load_reference_ensemble,
        read_test_list,
    )
    from adjoint_sampling.benchmarks.conformers.rmsd import summarize_validations, validate_rmsd, validations_to_json
    from adjoint_sampling.chemistry.embedding import embed_etkdg

    torch.set_num_threads(1)
    test_list, conformer_dir = _data_paths(args)
    validations = []
    for molecule in read_test_list(test_list):
        if args.limit is not None and len(validations) >= args.limit:
            break
        try:
            reference = load_reference_ensemble(molecule, conformer_dir, args.references)
        except MissingReferenceError:
            continue
        probes = embed_etkdg(reference.mol, args.probes, args.seed)
        result = validate_rmsd(molecule.mol_id, reference.mol, probes, reference.positions)
        validations.append(result)
        print(f"{molecule.mol_id}: {result.num_pairs} pairs, {result.num_permutations} symmetries, "
              f"max |diff| {result.max_abs_diff:.2e} A, batched {result.batched_s:.3f} CPU s, "
              f"RDKit {result.rdkit_s:.3f} CPU s ({result.speedup:.0f}x)")
    if not validations:
        raise ConfigError("no molecule with references to check")
    summary = summarize_validations(validations)
    path = validations_to_json(validations, args.out)
    print(f"{summary['num_pairs']} pairs on {summary['num_molecules']} molecules: max |diff| "
          f"{summary['max_abs_diff']:.2e} A; batched {summary['batched_s']:.2f} CPU s, RDKit GetBestRMS loop "
          f"{summary['rdkit_s']:.2f} CPU s, speed-up {summary['speedup']:.1f}x -> {path}")
    return 0 if summary["max_abs_diff"] <= 1e-3 else 1


def run(args: argparse.Namespace) -> int:
    return {"run": _run, "merge": _merge, "paired": _paired, "rmsd-check": _rmsd_check}[args.action](args)
