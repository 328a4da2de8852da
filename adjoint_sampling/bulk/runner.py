"""The engine-neutral driver of a bulk run: stream the library in batches, skip finished shards, hand
the rest to an executor (in-process or Ray actors) and write each shard as it comes back."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from adjoint_sampling.bulk.library import Batch, count_library, iter_batches, iter_library
from adjoint_sampling.bulk.shards import ShardStore
from adjoint_sampling.bulk.worker import STATUS_OK, BatchWorker, ShardResult
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.generation.types import GenerationRequest

__all__ = ["BatchExecutor", "BulkJob", "BulkSummary", "LocalExecutor", "run_bulk"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class BulkJob:
    """What a bulk run is asked for.

    Attributes:
        library: SMILES file (``.smi``/``.smiles``/``.txt``, optionally ``.gz``).
        out_dir: output folder (shards, manifests, ``run.json``).
        model: the resolved generator spec (``"etkdg"`` or a checkpoint path).
        template: the options of every molecule's request (``smiles`` unused).
        batch_size: molecules per shard.
        energy_model: the resolved GNN energy checkpoint of ``relax="gnn"`` (``None``: the default).
    """

    library: Path
    out_dir: Path
    model: str
    template: GenerationRequest
    batch_size: int = DEFAULT_BATCH_SIZE
    energy_model: str | None = None

    def meta(self, num_molecules: int) -> dict[str, Any]:
        """The options a resumed run must share (``run.json``)."""
        options = {k: v for k, v in asdict(self.template).items() if k != "smiles"}
        meta: dict[str, Any] = {
            "library": str(self.library.resolve()), "molecules": num_molecules, "batch_size": self.batch_size,
            "model": self.model, "request": options,
        }
        if self.energy_model is not None:  # only then: runs.json of earlier runs stay resumable
            meta["energy_model"] = self.energy_model
        return meta


@dataclass
class BulkSummary:
    """Counts of a finished bulk run."""

    molecules: int = 0
    shards: int = 0
    shards_skipped: int = 0
    conformers: int = 0
    statuses: Counter = field(default_factory=Counter)
    manifest: Path | None = None

    @property
    def failed(self) -> int:
        return self.molecules - self.statuses[STATUS_OK]

    def add(self, rows: Iterable[dict[str, Any]]) -> int:
        count = 0
        for row in rows:
            count += 1
            self.statuses[row["status"]] += 1
            self.conformers += int(row["conformers"])
        self.molecules += count
        return count


class BatchExecutor(Protocol):
    """Runs batches, returning their results as they finish (any order); consumes ``batches`` lazily."""

    def map_unordered(self, batches: Iterator[Batch]) -> Iterator[ShardResult]: ...


class LocalExecutor:
    """Batches one after another in this process (one :class:`BatchWorker`)."""

    def __init__(self, model: str, template: GenerationRequest, energy_model: str | None = None) -> None:
        self.worker = BatchWorker(model, template, energy_model)

    def map_unordered(self, batches: Iterator[Batch]) -> Iterator[ShardResult]:
        for batch in batches:
            yield self.worker.run(batch)


def run_bulk(job: BulkJob, executor: BatchExecutor, *, progress: bool = True) -> BulkSummary:
    """Run (or resume) ``job`` on ``executor``; shards already finished in ``job.out_dir`` are skipped.

    Raises:
        ConfigError: the library is missing or empty, or the folder holds a run with other options.
    """
    total = count_library(job.library)
    if total == 0:
        raise ConfigError(f"SMILES library {str(job.library)!r} holds no SMILES")
    store = ShardStore(job.out_dir)
    if store.open_run(job.meta(total)):
        log.info("resuming the run in %s", job.out_dir)
    summary = BulkSummary()
    bar = tqdm(total=total, unit="mol", file=sys.stderr, disable=not progress, smoothing=0.1)

    def pending() -> Iterator[Batch]:
        for batch in iter_batches(iter_library(job.library), job.batch_size):
            summary.shards += 1
            if store.is_finished(batch.shard):
                rows = store.read_rows(batch.shard)
                if [row["index"] for row in rows] != [entry.index for entry in batch.entries]:
                    path = store.manifest_path(batch.shard)
                    raise ConfigError(f"{path} does not match the library; use a new folder")
                bar.update(summary.add(rows))
                summary.shards_skipped += 1
                continue
            yield batch

    try:
        for result in executor.map_unordered(pending()):
            store.write(result)
            bar.update(summary.add(row.to_dict() for row in result.rows))
    finally:
        bar.close()
    summary.manifest = store.write_manifest(summary.shards)
    log.info(
        "%d molecules (%d failed) in %d shards (%d resumed), %d conformers; manifest %s",
        summary.molecules, summary.failed, summary.shards, summary.shards_skipped, summary.conformers, summary.manifest,
    )
    return summary
