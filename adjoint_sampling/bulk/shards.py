"""Sharded, resumable output of a bulk run in one folder.

Per shard ``k``: ``shard-0000k.sdf.gz`` (the conformers) and ``shard-0000k.manifest.jsonl`` (one row per
molecule). Both are written atomically (:mod:`adjoint_sampling.core.atomic_io`), the SDF first: the
manifest is the commit marker, so a shard is finished exactly when its manifest exists, and a run
killed at any point loses only shards without one (a rerun writes them again). ``run.json`` records
what the run was asked for (a rerun with other options is refused); ``manifest.jsonl`` is every
shard's rows in library order, written once every shard is finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from adjoint_sampling.bulk.worker import ShardResult
from adjoint_sampling.core.atomic_io import atomic_write_bytes, atomic_write_text
from adjoint_sampling.core.errors import ConfigError

__all__ = ["MANIFEST_FILE", "RUN_FILE", "ShardStore"]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.jsonl"


class ShardStore:
    """The output folder of a bulk run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"bulk output {str(self.root)!r} is not a folder")

    def sdf_path(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}.sdf.gz"

    def manifest_path(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}.manifest.jsonl"

    def open_run(self, meta: dict[str, Any]) -> bool:
        """Start or resume the run described by ``meta``; True when resuming.

        Removes temporary files a killed run left behind.

        Raises:
            ConfigError: the folder holds a run with other options (names them).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".*.tmp*"):
            stale.unlink(missing_ok=True)
        run_file = self.root / RUN_FILE
        if run_file.is_file():
            previous = json.loads(run_file.read_text())
            changed = sorted(k for k in set(previous) | set(meta) if previous.get(k) != meta.get(k))
            if changed:
                raise ConfigError(
                    f"{self.root} holds a run with other options ({', '.join(changed)}); use a new output folder"
                )
            return True
        atomic_write_text(run_file, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return False

    def is_finished(self, shard: int) -> bool:
        return self.manifest_path(shard).is_file() and self.sdf_path(shard).is_file()

    def read_rows(self, shard: int) -> list[dict[str, Any]]:
        """The manifest rows of a finished shard."""
        return [json.loads(line) for line in self.manifest_path(shard).read_text().splitlines() if line]

    def write(self, result: ShardResult) -> None:
        """Write a shard: its SDF, then its manifest (the commit marker), each atomically."""
        atomic_write_bytes(self.sdf_path(result.shard), result.sdf_gz)
        atomic_write_text(self.manifest_path(result.shard), _jsonl(row.to_dict() for row in result.rows))
        log.debug("wrote shard %d (%d molecules)", result.shard, len(result.rows))

    def write_manifest(self, num_shards: int) -> Path:
        """``manifest.jsonl``: the rows of shards ``0 .. num_shards - 1`` in library order (atomically)."""
        path = self.root / MANIFEST_FILE
        atomic_write_text(path, _jsonl(self.iter_rows(num_shards)))
        return path

    def iter_rows(self, num_shards: int) -> Iterator[dict[str, Any]]:
        for shard in range(num_shards):
            yield from self.read_rows(shard)


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)

