"""`adjoint-sampling sample SMILES_OR_FILE -n 50 --seed 0 -o out.sdf [--model CKPT]`.

Input: one SMILES, a SMILES file (``.smi``/``.txt``: one per line, or SPICE-style
``count smiles id`` rows), or an SDF (every record's molecule, stereo taken from the file).
Output: SDF (one record per conformer, tagged with energy, conformer index, seed, model name and
version) or multi-frame XYZ, chosen by the extension of ``-o`` (or ``--format``); ``-o -``
writes to stdout. A per-molecule summary (returned / requested, drawn, drops by reason, reflections,
stripped fragments, energy model, warnings, seconds) goes to stderr, with a progress bar for a file of
molecules. ``--relax gnn`` relaxes with our GNN potential (``models/shipped/energy.pt``, or
``--energy-model PATH`` / ``AS_ENERGY_MODEL``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from rdkit import Chem, RDLogger
from tqdm import tqdm

from adjoint_sampling.core.errors import AdjointSamplingError, ConfigError, InvalidMoleculeError, InvalidOptionError
from adjoint_sampling.generation.formats import conformers_to_sdf, conformers_to_xyz
from adjoint_sampling.generation.types import RELAX_METHODS, ConformerSet, GenerationRequest

MAX_CONFORMERS: int = 10_000
SDF_SUFFIXES: tuple[str, ...] = (".sdf", ".sd", ".mol")
SMILES_SUFFIXES: tuple[str, ...] = (".smi", ".smiles", ".txt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="SMILES_OR_FILE", help="a SMILES, a .smi/.txt SMILES file, or an .sdf file")
    parser.add_argument("-n", "--num-conformers", type=int, default=10, help="conformers per molecule (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--output", default="-", help="output file (.sdf or .xyz); '-' for stdout (default)")
    parser.add_argument("--format", choices=["sdf", "xyz"], help="output format (default: from the -o extension, else sdf)")
    parser.add_argument("--model", default=None, help="checkpoint path, or 'etkdg' (default: the shipped model)")
    parser.add_argument(
        "--relax", choices=list(RELAX_METHODS), default="none",
        help="relax every conformer: mmff (MMFF94), xtb (GFN2-xTB) or gnn (our GNN potential distilled from GFN2-xTB)",
    )
    parser.add_argument(
        "--energy-model", default=None, metavar="PATH",
        help="GNN energy checkpoint of --relax gnn (default: AS_ENERGY_MODEL, else the shipped models/shipped/energy.pt)",
    )
    parser.add_argument("--prune-rms", type=float, default=None, help="drop conformers within this heavy-atom RMSD (A)")
    parser.add_argument(
        "--relax-steps", type=int, default=None, help="most optimiser iterations of --relax (default 500); fewer is faster"
    )
    parser.add_argument(
        "--energy-window", type=float, default=None,
        help="keep conformers within this many kcal/mol of the lowest (needs energies: the model's, or --relax)",
    )
    parser.add_argument("--sort", action="store_true", help="order the conformers by energy, lowest first")
    parser.add_argument(
        "--keep-fragments", action="store_true",
        help="refuse multi-fragment SMILES instead of keeping the largest organic fragment (salts, solvents)",
    )
    parser.add_argument(
        "--max-draw-multiple", type=int, default=4,
        help="conformers failing the checks are drawn again, up to this many draws per requested one (default 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar for a file of molecules")
    bulk = parser.add_argument_group("bulk generation (--engine ray: a SMILES library into sharded SDF in -o DIR)")
    bulk.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="'ray': bulk run on Ray actors (default local)"
    )
    bulk.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    bulk.add_argument("--batch-size", type=int, default=None, help="molecules per shard (default 16)")
    bulk.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all cores)")


def read_input_molecules(text: str) -> list[str]:
    """SMILES of the input: a file (by suffix: SDF or SMILES list) if it names one, else a SMILES.

    Raises:
        ConfigError: a file-like input that does not exist, or an SDF without valid records.
    """
    from adjoint_sampling.problems.molecular.dataset import read_smiles_file  # imports torch: only when needed

    path = Path(text)
    suffix = path.suffix.lower()
    if path.is_file():
        return _sdf_smiles(path) if suffix in SDF_SUFFIXES else read_smiles_file(path)
    if suffix in SDF_SUFFIXES + SMILES_SUFFIXES:
        raise ConfigError(f"input file {text!r} does not exist")
    return [text]


def _sdf_smiles(path: Path) -> list[str]:
    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False)
        smiles = []
        for index, mol in enumerate(supplier):
            if mol is None:
                raise ConfigError(f"{path}: record {index + 1} is not a valid molecule")
            if mol.GetNumConformers() and mol.GetConformer().Is3D():
                Chem.AssignStereochemistryFrom3D(mol)
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(mol)))
    finally:
        RDLogger.EnableLog("rdApp.*")
    if not smiles:
        raise ConfigError(f"{path}: no molecule records")
    return smiles


def _output_format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    return "xyz" if Path(args.output).suffix.lower() == ".xyz" else "sdf"


def _summary(cs: ConformerSet) -> str:
    drops = ", ".join(f"{k}={v}" for k, v in sorted(cs.dropped.items())) or "none"
    stripped = f"; stripped {' '.join(cs.removed_fragments)}" if cs.removed_fragments else ""
    warnings = "".join(f"\n  warning: {w}" for w in cs.warnings)
    return (
        f"{cs.smiles}: {len(cs.conformers)} of {cs.num_requested} conformers ({cs.num_generated} drawn; "
        f"dropped: {drops}; reflected: {cs.num_reflected}{stripped}; energies: {cs.energy_model or 'none'}) "
        f"in {cs.timings.get('total', 0.0):.2f} s{warnings}"
    )


OPTION_FLAGS: dict[str, str] = {
    "num_conformers": "-n", "relax": "--relax", "prune_rms": "--prune-rms", "relax_steps": "--relax-steps",
    "energy_window": "--energy-window", "max_draw_multiple": "--max-draw-multiple",
}
"""The flag of each :class:`GenerationRequest` option."""


def _request(smiles: str, args: argparse.Namespace) -> GenerationRequest:
    return GenerationRequest(
        smiles=smiles, num_conformers=args.num_conformers, seed=args.seed, relax=args.relax, prune_rms=args.prune_rms,
        relax_steps=args.relax_steps, energy_window=args.energy_window, sort=args.sort,
        strip_fragments=not args.keep_fragments, max_draw_multiple=args.max_draw_multiple,
    )


def _flag_error(exc: InvalidOptionError) -> ConfigError:
    return ConfigError(f"{OPTION_FLAGS.get(exc.field, exc.field)} {exc.detail}")


def _validate_options(args: argparse.Namespace) -> None:
    """The request rules of :meth:`GenerationRequest.validate` (with the CLI's cap), naming the flag."""
    try:
        _request("", args).validate(max_num_conformers=MAX_CONFORMERS)
    except InvalidOptionError as exc:
        raise _flag_error(exc) from None
    if args.energy_model is not None and args.relax != "gnn":
        raise ConfigError(f"--energy-model needs --relax gnn (relax is {args.relax!r})")


def _generate_all(generator, smiles_list: list[str], args: argparse.Namespace) -> Iterator[ConformerSet | str]:
    for smiles in smiles_list:
        request = _request(smiles, args)
        try:
            yield generator.generate(request)
        except InvalidOptionError as exc:
            raise _flag_error(exc) from None
        except InvalidMoleculeError as exc:
            if len(smiles_list) == 1:
                raise
            yield f"{smiles}: skipped ({exc.reason}): {exc.detail}"


def _refuse_bulk_options(args: argparse.Namespace) -> None:
    for flag in ("address", "batch_size", "num_cpus"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} needs --engine ray")


def _run_bulk(args: argparse.Namespace) -> int:
    """``--engine ray``: the library ``args.input`` into shards in the folder ``args.output`` (resumable)."""
    from adjoint_sampling.bulk.ray_engine import RayExecutor, import_ray
    from adjoint_sampling.bulk.runner import DEFAULT_BATCH_SIZE, BulkJob, run_bulk
    from adjoint_sampling.core.errors import CheckpointError
    from adjoint_sampling.generation.loading import ETKDG_SPEC, resolve_model_spec
    from adjoint_sampling.generation.shipped import load_energy_model, resolve_energy_model_path

    import_ray()
    if args.output == "-" or args.format == "xyz":
        raise ConfigError("--engine ray writes sharded SDF into a folder: give -o DIR")
    if not Path(args.input).is_file():
        raise ConfigError(f"--engine ray needs a SMILES library file, got {args.input!r}")
    if args.num_cpus is not None and (args.num_cpus < 1 or args.address):
        raise ConfigError("--num-cpus must be >= 1 and is for a local Ray (not with --address)")
    model = resolve_model_spec(args.model)
    if model.lower() != ETKDG_SPEC:
        if not Path(model).expanduser().is_file():
            raise CheckpointError(f"--model: checkpoint {model!r} does not exist (or use --model etkdg)")
        model = str(Path(model).expanduser().resolve())
    energy_model = None
    if args.relax == "gnn":  # every actor loads the same file: resolved here, checked once
        load_energy_model(args.energy_model)
        energy_model = str(resolve_energy_model_path(args.energy_model).resolve())
    job = BulkJob(
        library=Path(args.input), out_dir=Path(args.output), model=model, template=_request("", args),
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE, energy_model=energy_model,
    )
    with RayExecutor(
        model, job.template, address=args.address, num_cpus=args.num_cpus, energy_model=energy_model
    ) as executor:
        summary = run_bulk(job, executor, progress=not args.no_progress)
    print(
        f"{summary.molecules} molecule(s), {summary.failed} failed, {summary.conformers} conformer(s) in "
        f"{summary.shards} shard(s) ({summary.shards_skipped} already done); manifest {summary.manifest}",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def run(args: argparse.Namespace) -> int:
    from adjoint_sampling.generation.loading import load_generator
    from adjoint_sampling.generation.shipped import load_energy_model

    _validate_options(args)
    if args.engine == "ray":
        return _run_bulk(args)
    _refuse_bulk_options(args)
    smiles_list = read_input_molecules(args.input)
    if args.relax == "gnn":  # a missing or corrupt energy model is a one-line error before any sampling
        load_energy_model(args.energy_model)
    generator = load_generator(args.model, args.energy_model)
    fmt = _output_format(args)
    write = conformers_to_xyz if fmt == "xyz" else conformers_to_sdf
    chunks: list[str] = []
    failures = 0
    progress = tqdm(
        total=len(smiles_list), unit="mol", file=sys.stderr, disable=args.no_progress or len(smiles_list) < 2,
    )
    for result in _generate_all(generator, smiles_list, args):
        progress.update(1)
        if isinstance(result, str):
            failures += 1
            progress.write(result, file=sys.stderr)
            continue
        chunks.append(write(result))
        progress.write(_summary(result), file=sys.stderr)
    progress.close()
    if failures == len(smiles_list):
        raise AdjointSamplingError(f"no molecule of {args.input!r} could be sampled")
    text = "".join(chunks)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {sum(1 for c in chunks if c)} molecule(s) to {args.output} ({fmt})", file=sys.stderr)
    return 1 if failures else 0
