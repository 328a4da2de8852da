"""Run the conformer benchmark: every method on every test molecule, one record per pair.

Per molecule: match the CREST references (at most ``max_references``), ask each method for
``K = conformers_per_reference x L`` conformers with the same seed, compute the K x L heavy-atom
symmetric RMSD matrix and the coverage/AMR metrics, and time the generation (wall and CPU;
work a generator reuses from an earlier request, reported as ``timings["reused_wall"]`` and
``timings["reused_cpu"]``, is charged to every method that uses it).
Molecules run in parallel worker processes (``workers``), can be split across machines
(``shard_index`` / ``num_shards``, combined later by :mod:`benchmarks.conformers.merge`), and
the run resumes: (molecule, method) pairs already in the records file are skipped.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from adjoint_sampling.benchmarks.conformers.methods import MethodOptions, MethodSpec, build_generator
from adjoint_sampling.benchmarks.conformers.metrics import THRESHOLDS, coverage_metrics
from adjoint_sampling.benchmarks.conformers.records import append_records, read_records, record_key, write_records
from adjoint_sampling.benchmarks.conformers.references import (
    MAX_REFERENCES,
    BenchmarkMolecule,
    MissingReferenceError,
    ReferenceEnsemble,
    ReferenceFormatError,
    load_reference_ensemble,
    read_test_list,
    reference_path,
)
from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.core.errors import ConfigError, EnergyCalculationError, InvalidMoleculeError
from adjoint_sampling.generation.types import ConformerGenerator, ConformerSet, GenerationRequest

__all__ = ["BenchmarkConfig", "RunOutcome", "evaluate_molecule", "plan_molecules", "run_benchmark"]

log = logging.getLogger(__name__)

RECORDS_FILE_NAME = "per_molecule.jsonl"
SHARDS_DIR_NAME = "shards"


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark run.

    Attributes:
        test_list: the ``count<TAB>SMILES<TAB>id`` list.
        conformer_dir: folder of ``<id>/crest_conformers.xyz`` reference ensembles.
        out_dir: where records (and, for unsharded runs, the report) go.
        methods: methods compared (see :mod:`benchmarks.conformers.methods`).
        checkpoint: sampler checkpoint for checkpoint-based methods.
        sde_steps: sampler SDE steps (``None``: the checkpoint's).
        sampler_energy: backend of the sampler's reported energies (``None``: the checkpoint's).
        energy_model: GNN energy checkpoint of ``+gnn`` methods (``None``: ``AS_ENERGY_MODEL``, else the shipped one).
        max_references: references per molecule (first ones in the file, i.e. lowest energy).
        conformers_per_reference: K / L.
        seed: generation seed, the same for every method and molecule.
        max_draw_multiple: the generators' replacement of failed draws (1: draw K once, the protocol
            of the figures recorded before "n in, n out"; 4: the product's default, K valid conformers).
        workers: worker processes (1: run in this process).
        shard_index / num_shards: this run evaluates molecules ``i`` with ``i % num_shards == shard_index``.
        limit: evaluate only the first ``limit`` molecules that have a reference file.
        progress: show a progress bar.
    """

    test_list: Path
    conformer_dir: Path
    out_dir: Path
    methods: tuple[MethodSpec, ...]
    checkpoint: Path | None = None
    sde_steps: int | None = None
    sampler_energy: str | None = None
    energy_model: Path | None = None
    max_references: int = MAX_REFERENCES
    conformers_per_reference: int = 2
    seed: int = 0
    max_draw_multiple: int = 1
    workers: int = 1
    shard_index: int = 0
    num_shards: int = 1
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("no methods to compare")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ConfigError(f"invalid shard {self.shard_index}/{self.num_shards}: need 0 <= i < n")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.max_references < 1 or self.conformers_per_reference < 1:
            raise ConfigError("max_references and conformers_per_reference must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")

    @property
    def records_path(self) -> Path:
        """``per_molecule.jsonl``, or ``shards/per_molecule.shard<i>of<n>.jsonl`` for a shard."""
        if self.num_shards == 1:
            return self.out_dir / RECORDS_FILE_NAME
        return self.out_dir / SHARDS_DIR_NAME / f"per_molecule.shard{self.shard_index}of{self.num_shards}.jsonl"


@dataclass
class RunOutcome:
    """What a run did: records written now, pairs skipped as already done, molecules skipped."""

    records_path: Path
    new_records: int = 0
    already_done: int = 0
    skipped_molecules: list[dict[str, Any]] = field(default_factory=list)


def plan_molecules(config: BenchmarkConfig) -> tuple[list[BenchmarkMolecule], list[dict[str, Any]]]:
    """Molecules this run (shard) evaluates, and ``skipped`` records for those with no reference file.

    ``limit`` counts molecules with a reference file, in test-list order; sharding is round-robin
    over that list, so every shard gets a mix of sizes.
    """
    if not Path(config.test_list).is_file():
        raise ConfigError(f"test list {config.test_list} does not exist")
    if not Path(config.conformer_dir).is_dir():
        raise ConfigError(f"reference folder {config.conformer_dir} does not exist")
    selected: list[BenchmarkMolecule] = []
    skipped: list[dict[str, Any]] = []
    for molecule in read_test_list(config.test_list):
        if config.limit is not None and len(selected) >= config.limit:
            break
        path = reference_path(config.conformer_dir, molecule.mol_id)
        if path.is_file():
            selected.append(molecule)
        else:
            skipped.append(_skipped_record(molecule, "missing_reference", f"{path} does not exist"))
    mine = [m for i, m in enumerate(selected) if i % config.num_shards == config.shard_index]
    skipped = [s for i, s in enumerate(skipped) if i % config.num_shards == config.shard_index]
    return mine, skipped


def _skipped_record(molecule: BenchmarkMolecule, reason: str, detail: str) -> dict[str, Any]:
    return {
        "mol_id": molecule.mol_id,
        "smiles": molecule.smiles,
        "rotatable_bonds": molecule.rotatable_bonds,
        "method": None,
        "status": "skipped",
        "reason": reason,
        "detail": detail,
    }


@functools.lru_cache(maxsize=8)
def _generator(name: str, options: MethodOptions) -> ConformerGenerator:
    """One generator per (name, options) and process (a checkpoint is loaded once)."""
    return build_generator(name, options)


def _conformer_positions(reference: ReferenceEnsemble, result: ConformerSet) -> np.ndarray:
    """``(K, N, 3)`` positions of ``result``, checked to be in the reference molecule's atom order."""
    ref_mol, out_mol = reference.mol, result.mol
    ref_atoms = [a.GetAtomicNum() for a in ref_mol.GetAtoms()]
    out_atoms = [a.GetAtomicNum() for a in out_mol.GetAtoms()]
    ref_bonds = {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in ref_mol.GetBonds()}
    out_bonds = {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in out_mol.GetBonds()}
    if ref_atoms != out_atoms or ref_bonds != out_bonds:
        raise InvalidMoleculeError("invalid_input", "generated molecule's atom order differs from the reference's")
    if not result.conformers:
        return np.zeros((0, len(ref_atoms), 3))
    return np.stack([np.asarray(c.positions, dtype=np.float64) for c in result.conformers])


def evaluate_molecule(
    molecule: BenchmarkMolecule, methods: tuple[MethodSpec, ...], config: BenchmarkConfig
) -> list[dict[str, Any]]:
    """All records of one molecule: one per method, or one ``skipped`` record."""
    try:
        reference = load_reference_ensemble(molecule, config.conformer_dir, config.max_references)
    except MissingReferenceError as exc:
        return [_skipped_record(molecule, "missing_reference", str(exc))]
    except ReferenceFormatError as exc:
        return [_skipped_record(molecule, "malformed_reference", str(exc))]
    except InvalidMoleculeError as exc:
        return [_skipped_record(molecule, f"invalid_smiles:{exc.reason}", exc.detail)]
    unmatched = reference.unmatched_counts()
    if reference.num_references == 0:
        record = _skipped_record(molecule, "no_matched_reference", f"none of {reference.num_blocks} conformers matched")
        record["reference_unmatched"] = unmatched
        return [record]
    symmetry = heavy_atom_symmetry(reference.mol)
    num_conformers = config.conformers_per_reference * reference.num_references
    base = {
        "mol_id": molecule.mol_id,
        "smiles": molecule.smiles,
        "rotatable_bonds": molecule.rotatable_bonds,
        "num_atoms": reference.mol.GetNumAtoms(),
        "num_heavy_atoms": symmetry.num_heavy_atoms,
        "num_symmetries": symmetry.num_permutations,
        "num_references": reference.num_references,
        "num_reference_blocks": reference.num_blocks,
        "reference_unmatched": unmatched,
        "reference_unmatched_indices": [[u.index, u.reason] for u in reference.unmatched],
        "num_requested": num_conformers,
        "seed": config.seed,
        "thresholds": [float(t) for t in THRESHOLDS],
    }
    records = []
    for spec in methods:
        record = dict(base, method=spec.name)
        generator = _generator(spec.registered_generator, MethodOptions(
            checkpoint=spec.checkpoint or config.checkpoint, num_threads=1, sde_steps=config.sde_steps, sampler_energy=config.sampler_energy,
            energy_model=config.energy_model,
        ))
        request = GenerationRequest(
            smiles=molecule.smiles, num_conformers=num_conformers, seed=config.seed, relax=spec.relax,  # type: ignore[arg-type]
            relax_steps=spec.relax_steps, max_draw_multiple=config.max_draw_multiple,
        )
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            result = generator.generate(request)
            positions = _conformer_positions(reference, result)
        except (InvalidMoleculeError, EnergyCalculationError) as exc:
            record.update(status="failed", reason=getattr(exc, "reason", type(exc).__name__), detail=str(exc))
            record.update(_metrics_fields(np.zeros((0, reference.num_references))))
            records.append(record)
            continue
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        # Work reused from an earlier request (the same ETKDG embedding) is charged here too.
        wall += float(result.timings.get("reused_wall", 0.0))
        cpu += float(result.timings.get("reused_cpu", 0.0))
        tic = time.perf_counter()
        distances = rmsd_matrix(symmetry, positions, reference.positions)
        rmsd_s = time.perf_counter() - tic
        record.update(
            status="ok",
            generator=f"{result.model_name} {result.model_version}".strip(),
            num_generated=int(result.num_generated),
            num_valid=len(result.conformers),
            dropped=dict(result.dropped),
            num_reflected=int(result.num_reflected),
            wall_s=wall,
            cpu_s=cpu,
            wall_s_per_conformer=wall / max(result.num_generated, 1),
            cpu_s_per_conformer=cpu / max(result.num_generated, 1),
            timings=dict(result.timings),
            rmsd_s=rmsd_s,
            warnings=list(result.warnings),
        )
        record.update(_metrics_fields(distances))
        records.append(record)
    return records


def _metrics_fields(distances: np.ndarray) -> dict[str, Any]:
    metrics = coverage_metrics(distances, THRESHOLDS)
    return {
        "cov_r": [float(v) for v in metrics.coverage_recall],
        "cov_p": [float(v) for v in metrics.coverage_precision],
        "amr_r": metrics.amr_recall,
        "amr_p": metrics.amr_precision,
        "num_compared": metrics.num_generated,
    }


@dataclass(frozen=True)
class _Task:
    molecule: BenchmarkMolecule
    methods: tuple[MethodSpec, ...]


def _init_worker() -> None:
    torch.set_num_threads(1)
    logging.getLogger("benchmarks").setLevel(logging.WARNING)


def _run_task(task_and_config: tuple[_Task, BenchmarkConfig]) -> list[dict[str, Any]]:
    task, config = task_and_config
    return evaluate_molecule(task.molecule, task.methods, config)


def _results(tasks: list[_Task], config: BenchmarkConfig) -> Iterator[list[dict[str, Any]]]:
    if config.workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield _run_task((task, config))
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(config.workers, len(tasks)), initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_run_task, [(t, config) for t in tasks], chunksize=1)


def run_benchmark(config: BenchmarkConfig) -> RunOutcome:
    """Evaluate the molecules of this run not yet in its records file, appending records as they finish."""
    molecules, skipped = plan_molecules(config)
    outcome = RunOutcome(records_path=config.records_path, skipped_molecules=skipped)
    existing = read_records(config.records_path)
    if config.records_path.exists() and not config.records_path.read_bytes().endswith(b"\n"):
        write_records(config.records_path, existing)  # drop a torn last line before appending
    done = {record_key(r) for r in existing if r.get("status") in ("ok", "failed")}
    known_skips = {(r["mol_id"], r.get("reason")) for r in existing if r.get("status") == "skipped"}
    new_skips = [s for s in skipped if (s["mol_id"], s["reason"]) not in known_skips]
    if new_skips:
        append_records(config.records_path, new_skips)
    for record in skipped:
        log.warning("skipping %s: %s", record["mol_id"], record["detail"])

    tasks: list[_Task] = []
    for molecule in molecules:
        todo = tuple(m for m in config.methods if (molecule.mol_id, m.name) not in done)
        outcome.already_done += len(config.methods) - len(todo)
        if todo:
            tasks.append(_Task(molecule, todo))
    if outcome.already_done:
        log.info("resuming: %d (molecule, method) pairs already done", outcome.already_done)
    # Largest reference ensembles first, so the slowest molecules do not finish last alone.
    tasks.sort(key=lambda t: -_reference_size(config, t.molecule))
    progress = tqdm(total=len(tasks), desc="molecules", unit="mol", disable=not config.progress)
    try:
        for records in _results(tasks, config):
            append_records(config.records_path, records)
            outcome.new_records += len(records)
            for record in records:
                if record.get("status") == "skipped":
                    log.warning("skipping %s: %s", record["mol_id"], record["detail"])
                    outcome.skipped_molecules.append(record)
                elif record.get("status") == "failed":
                    log.warning("%s failed on %s: %s", record["method"], record["mol_id"], record["detail"])
            progress.update(1)
    finally:
        progress.close()
    return outcome


def _reference_size(config: BenchmarkConfig, molecule: BenchmarkMolecule) -> int:
    """File size of the reference ensemble (a cheap proxy for the molecule's cost)."""
    path = reference_path(config.conformer_dir, molecule.mol_id)
    return path.stat().st_size if path.exists() else 0
