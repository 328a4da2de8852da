"""Per-molecule result records: one JSON object per line, appended as molecules finish.

A record is a plain dict (JSON). Its key is ``(mol_id, method)``; ``status`` is ``"ok"``
(metrics present), ``"failed"`` (the method raised a molecule or energy error: ``reason`` and
``detail`` say why; it counts as zero recall) or ``"skipped"`` (the molecule has no usable
reference ensemble; ``method`` is ``None``). Appending line by line makes runs resumable: a
killed run loses at most the molecule in flight, and a torn last line is ignored on reading.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adjoint_sampling.core.errors import AdjointSamplingError

__all__ = ["RecordFormatError", "RecordKey", "append_records", "num_passed_checks", "read_records", "record_key",
           "write_records"]

log = logging.getLogger(__name__)

RecordKey = tuple[str, "str | None"]


class RecordFormatError(AdjointSamplingError):
    """A results file has a line that is not a record (the message names the file and line)."""


def record_key(record: dict[str, Any]) -> RecordKey:
    """``(mol_id, method)`` of a record."""
    return str(record["mol_id"]), record.get("method")


VALID_LEFT_OUT = ("not_selected", "surplus")
"""Drop reasons of draws that passed the structure checks but were not returned."""


def num_passed_checks(record: dict[str, Any]) -> int:
    """Draws of an ``ok`` record that passed the structure checks: the conformers returned and the
    valid draws left out (``not_selected`` by a relaxed selection, ``surplus`` beyond the count asked)."""
    dropped = record.get("dropped") or {}
    return int(record.get("num_valid") or 0) + sum(int(dropped.get(reason, 0)) for reason in VALID_LEFT_OUT)


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (JSON has no nan/inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def append_records(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` to the JSON-lines file ``path`` (created with its folder if absent), flushed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(_json_safe(record), sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write ``records`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        for record in records:
            handle.write(json.dumps(_json_safe(record), sort_keys=True) + "\n")
    tmp.replace(path)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; later records replace earlier ones with the same key.

    A torn final line (a run killed mid-write) is skipped with a warning; a malformed line
    elsewhere raises :class:`RecordFormatError` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    by_key: dict[RecordKey, dict[str, Any]] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = record_key(record)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if line_no == len(lines):
                log.warning("%s:%d: ignoring a torn last line (interrupted run)", path, line_no)
                continue
            raise RecordFormatError(f"{path}:{line_no}: not a result record ({exc})") from None
        by_key[key] = record
    return list(by_key.values())
