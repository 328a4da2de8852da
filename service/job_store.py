"""Durable job queue and results in an embedded SQLite database.

A job is ``queued`` -> ``running`` -> ``succeeded`` | ``failed``. Every state change is committed
before it is reported, so a restarted server loses no accepted job: :meth:`JobStore.recover`
puts jobs left ``running`` by a dead server back in the queue, or marks them failed once they
have been started ``max_attempts`` times.

:class:`JobStoreProtocol` is what the API and the job runner use; :class:`JobStore` (SQLite, one
server, the default) and :class:`adjoint_sampling.service.job_store_postgres.PostgresJobStore`
(``AS_DB_URL``: one queue shared by many servers and ``adjoint-sampling worker`` processes, with
leases) implement it. :func:`adjoint_sampling.service.job_stores.open_job_store` picks one from the
settings. The SQLite store has no
leases: its ``owner`` / ``lease_s`` arguments are accepted and ignored, and a job left running by a
stopped server is recovered by :meth:`JobStore.recover` at the next start, as before.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    molecules_total INTEGER NOT NULL,
    molecules_done INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error_reason TEXT,
    error_message TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at);
"""


@dataclass(frozen=True)
class JobRecord:
    """One row of the job table (``request`` and ``result`` are decoded JSON)."""

    id: str
    status: str
    request: dict[str, Any]
    molecules_total: int
    molecules_done: int
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error_reason: str | None
    error_message: str | None
    has_result: bool

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JobRecord:
        """A record from a row of ``id, status, request, molecules_total, molecules_done, attempts,
        created_at, started_at, finished_at, error_reason, error_message, has_result`` (any store)."""
        return cls(
            id=row[0],
            status=row[1],
            request=json.loads(row[2]),
            molecules_total=row[3],
            molecules_done=row[4],
            attempts=row[5],
            created_at=row[6],
            started_at=row[7],
            finished_at=row[8],
            error_reason=row[9],
            error_message=row[10],
            has_result=bool(row[11]),
        )


class JobStoreProtocol(Protocol):
    """The durable job queue and results, as the routes and the job runner use them.

    ``owner`` names the claimer (a worker task); with leases (PostgreSQL) progress, finish and fail
    are refused (return ``False``) unless ``owner`` still holds the job's lease.
    """

    def close(self) -> None: ...

    def create(self, request: dict[str, Any], molecules_total: int) -> str: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def result(self, job_id: str) -> dict[str, Any] | None: ...

    def count(self, status: str) -> int: ...

    def claim_next(self, owner: str | None = None, lease_s: float | None = None) -> JobRecord | None: ...

    def renew(self, job_id: str, owner: str | None, lease_s: float) -> bool: ...

    def release(self, job_id: str, owner: str | None) -> None: ...

    def set_progress(self, job_id: str, molecules_done: int, owner: str | None = None) -> bool: ...

    def finish(self, job_id: str, result: dict[str, Any], owner: str | None = None) -> bool: ...

    def fail(self, job_id: str, reason: str, message: str, owner: str | None = None) -> bool: ...

    def recover(self, max_attempts: int) -> tuple[int, int]: ...


class JobStore:
    """Thread-safe access to the job table of the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, request: dict[str, Any], molecules_total: int) -> str:
        """Store a new queued job; returns its id."""
        job_id = uuid.uuid4().hex
        with self._lock:
            self._conn.execute(
                "INSERT INTO jobs (id, status, request, molecules_total, created_at) VALUES (?, 'queued', ?, ?, ?)",
                (job_id, json.dumps(request), int(molecules_total), time.time()),
            )
        return job_id

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, status, request, molecules_total, molecules_done, attempts, created_at, started_at, "
                "finished_at, error_reason, error_message, result IS NOT NULL FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def result(self, job_id: str) -> dict[str, Any] | None:
        """The stored result of a finished job (``None`` if there is none)."""
        with self._lock:
            row = self._conn.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def count(self, status: str) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])

    def claim_next(self, owner: str | None = None, lease_s: float | None = None) -> JobRecord | None:
        """Atomically move the oldest queued job to ``running`` (attempts + 1) and return it."""
        with self._lock:
            row = self._conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, molecules_done = 0 "
                "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1) RETURNING id",
                (time.time(),),
            ).fetchone()
        return None if row is None else self.get(row[0])

    def renew(self, job_id: str, owner: str | None, lease_s: float) -> bool:
        """No leases in SQLite (one server): always held."""
        return True

    def release(self, job_id: str, owner: str | None) -> None:
        """No-op: a job cut short by a stop stays ``running`` and :meth:`recover` re-queues it."""

    def set_progress(self, job_id: str, molecules_done: int, owner: str | None = None) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE jobs SET molecules_done = ? WHERE id = ?", (int(molecules_done), job_id)
            )
        return cursor.rowcount > 0

    def finish(self, job_id: str, result: dict[str, Any], owner: str | None = None) -> bool:
        """Store the result and mark the job succeeded."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE jobs SET status = 'succeeded', result = ?, finished_at = ?, molecules_done = molecules_total "
                "WHERE id = ?",
                (json.dumps(result), time.time(), job_id),
            )
        return cursor.rowcount > 0

    def fail(self, job_id: str, reason: str, message: str, owner: str | None = None) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE jobs SET status = 'failed', error_reason = ?, error_message = ?, finished_at = ? WHERE id = ?",
                (reason, message, time.time(), job_id),
            )
        return cursor.rowcount > 0

    def recover(self, max_attempts: int) -> tuple[int, int]:
        """After a restart: re-queue jobs left ``running`` that have attempts left, fail the others.

        Returns:
            ``(requeued, failed)`` counts.
        """
        with self._lock:
            failed = self._conn.execute(
                "UPDATE jobs SET status = 'failed', error_reason = 'interrupted', finished_at = ?, "
                "error_message = 'the server stopped while this job was running, ' || attempts || "
                "' time(s); it is not retried again' WHERE status = 'running' AND attempts >= ?",
                (time.time(), int(max_attempts)),
            ).rowcount
            requeued = self._conn.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, molecules_done = 0 WHERE status = 'running'"
            ).rowcount
        if requeued or failed:
            log.warning("recovered interrupted jobs: %d re-queued, %d failed", requeued, failed)
        return int(requeued), int(failed)
