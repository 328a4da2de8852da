"""Turn a batch of library molecules into one shard: the generator is loaded once per worker, every
molecule becomes SDF records (tagged with its ``library_index``) and one manifest row.

Nothing here knows about Ray: the Ray engine wraps :class:`BatchWorker` in an actor, and a local
engine calls it in-process.
"""

from __future__ import annotations

import gzip
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any


from adjoint_sampling.bulk.library import Batch, LibraryEntry
from adjoint_sampling.core.errors import AdjointSamplingError, InvalidMoleculeError, InvalidOptionError
from adjoint_sampling.generation.formats import conformers_to_sdf
from adjoint_sampling.generation.types import ConformerSet, GenerationRequest

__all__ = ["STATUS_FAILED", "STATUS_OK", "BatchWorker", "ManifestRow", "ShardResult", "shard_sdf"]

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
LIBRARY_INDEX_TAG = "library_index"


@dataclass(frozen=True)
class ManifestRow:
    """The outcome of one library molecule.

    Attributes:
        index: 0-based position in the library.
        smiles: the library's SMILES.
        status: ``"ok"`` or ``"failed"``.
        reason: for a failure, :attr:`InvalidMoleculeError.reason` (``"error"`` for any other failure).
        detail: for a failure, the sentence naming the problem.
        conformers: conformers written to the shard's SDF (0 for a failure).
        seconds: wall time of the molecule.
        shard: the shard holding its conformers.
    """

    index: int
    smiles: str
    status: str
    reason: str | None
    detail: str | None
    conformers: int
    seconds: float
    shard: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShardResult:
    """A finished batch: the gzip-compressed SDF of its conformers and one row per molecule, in library order."""

    shard: int
    sdf_gz: bytes
    rows: tuple[ManifestRow, ...]


def shard_sdf(results: list[tuple[LibraryEntry, ConformerSet]]) -> bytes:
    """Gzip-compressed SDF of the conformer sets, each record tagged with its molecule's ``library_index``."""
    text = "".join(conformers_to_sdf(cs, {LIBRARY_INDEX_TAG: entry.index}) for entry, cs in results)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


class BatchWorker:
    """Holds one generator (loaded once) and generates the molecules of batches with a request template.

    Args:
        model: ``"etkdg"`` or a checkpoint path (``None``: the shipped model), as for ``load_generator``.
        template: the options of every molecule's :class:`GenerationRequest` (its ``smiles`` is replaced).
        energy_model: GNN energy checkpoint of ``relax="gnn"`` (``None``: ``AS_ENERGY_MODEL``, else the shipped one).
    """

    def __init__(self, model: str | None, template: GenerationRequest, energy_model: str | None = None) -> None:
        from adjoint_sampling.generation.loading import load_generator

        self.generator = load_generator(model, energy_model)
        self.template = template

    def run(self, batch: Batch) -> ShardResult:
        """Generate every molecule of ``batch``; a molecule that fails gets a ``failed`` row.

        Raises:
            InvalidOptionError: the request template is invalid (it would fail for every molecule).
        """
        done: list[tuple[LibraryEntry, ConformerSet]] = []
        rows: list[ManifestRow] = []
        for entry in batch.entries:
            start = time.perf_counter()
            status, reason, detail, count = STATUS_OK, None, None, 0
            try:
                cs = self.generator.generate(replace(self.template, smiles=entry.smiles))
            except InvalidOptionError:
                raise
            except InvalidMoleculeError as exc:
                status, reason, detail = STATUS_FAILED, exc.reason, exc.detail
            except AdjointSamplingError as exc:
                status, reason, detail = STATUS_FAILED, "error", str(exc)
            except Exception as exc:  # one molecule must not end a bulk run; the row keeps the cause
                log.exception("molecule %d (%s) failed", entry.index, entry.smiles)
                status, reason, detail = STATUS_FAILED, "error", f"{type(exc).__name__}: {exc}"
            else:
                done.append((entry, cs))
                count = len(cs.conformers)
            rows.append(ManifestRow(
                index=entry.index, smiles=entry.smiles, status=status, reason=reason, detail=detail,
                conformers=count, seconds=round(time.perf_counter() - start, 4), shard=batch.shard,
            ))
        return ShardResult(shard=batch.shard, sdf_gz=shard_sdf(done), rows=tuple(rows))
