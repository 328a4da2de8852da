"""Combine the records of several shards (or machines) into one file, then report on it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adjoint_sampling.benchmarks.conformers.records import read_records, record_key, write_records
from adjoint_sampling.core.errors import ConfigError

__all__ = ["collect_record_files", "merge_records"]

log = logging.getLogger(__name__)


def collect_record_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand inputs: a ``.jsonl`` file as is, a folder to every ``*.jsonl`` below it (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"merge input {path} does not exist")
    if not files:
        raise ConfigError(f"no .jsonl record files found in {', '.join(map(str, inputs))}")
    return files


def merge_records(inputs: Sequence[str | Path], output: str | Path) -> list[dict[str, Any]]:
    """Merge the record files ``inputs`` into ``output`` (written atomically; may be one of the inputs).

    Each ``(mol_id, method)`` appears once: an ``ok``/``failed`` record wins over a ``skipped``
    one, and between two of the same kind the one from the later input wins (with a warning if
    they disagree).
    """
    merged: dict[tuple[str, str | None], dict[str, Any]] = {}
    for path in collect_record_files(inputs):
        for record in read_records(path):
            key = record_key(record)
            old = merged.get(key)
            if old is not None and old != record:
                log.warning("%s / %s appears in several inputs; keeping the one from %s", key[0], key[1], path)
            merged[key] = record
    evaluated = {mol_id for (mol_id, method), r in merged.items() if method is not None}
    records = [r for (mol_id, method), r in merged.items() if method is not None or mol_id not in evaluated]
    records.sort(key=lambda r: (r["mol_id"], r.get("method") or ""))
    write_records(output, records)
    return records
