"""The job queue and results in PostgreSQL (``AS_DB_URL``): one queue for many API servers and workers.

Claiming takes the oldest claimable job with a plain row lock, ``SELECT ... FOR UPDATE SKIP LOCKED``,
so concurrent claimers never block on, nor get, the same row. A claimed job carries a LEASE:
``lease_owner`` (the claiming worker task) and ``lease_expires_at``; the worker renews it while it
computes. A ``running`` job whose lease expired (its worker died or hangs) is claimable again, and is
failed instead (``interrupted``) once it has been started ``max_attempts`` times. Progress, finish
and fail are single ``UPDATE ... WHERE id = ... AND lease_owner = ... AND status = 'running'``
statements, so a worker that lost its lease cannot overwrite the new owner's work, and a job is
finished exactly once; the result is written by the same statement as the status, and the
``job_events`` audit row in the same transaction.

All times come from the database clock (``clock_timestamp()``, epoch seconds), so workers on
machines with skewed clocks agree on when a lease expires.

Schema: migrated with Alembic at start (``migrations/``: plain-SQL revisions, run on one SQLAlchemy
connection inside a transaction that holds an advisory lock, so servers and workers starting
together migrate once). ``alembic_version`` holds the revision; a database at a revision this
version does not know (written by a newer one) is refused. A database made before Alembic (with a
``schema_version`` table) is upgraded in place, its jobs kept. SQLAlchemy serves only the migration:
the queue itself runs on psycopg.

One connection per store, serialised by a lock (like the SQLite store); a broken connection is
reopened on the next call.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from adjoint_sampling.service.job_store import JobRecord
from psycopg.conninfo import conninfo_to_dict

from adjoint_sampling.core.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_SCHEMA_LOCK_KEY = 0x4A5F0B5  # advisory lock serialising schema migration across servers
_NOW = "extract(epoch from clock_timestamp())"


def head_revision() -> str:
    """The newest schema revision this version of the package migrates to."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head())


def migrate(url: str) -> None:
    """Bring the database at ``url`` to :func:`head_revision` (Alembic ``upgrade head``), under the
    schema advisory lock.

    Raises:
        ConfigError: the database is at a revision this version does not know, or the migration failed.
    """
    import sqlalchemy
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = sqlalchemy.create_engine(re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url),
                                      poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        raise ConfigError(
            f"the job database {redact(url)} has a schema this version of adjoint-sampling does not know "
            f"(it migrates to revision {head_revision()}): {_first_line(exc)}"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise ConfigError(f"AS_DB_URL: migrating the job database {redact(url)} failed: {_first_line(exc)}") from None
    finally:
        engine.dispose()


_COLUMNS = (
    "id, status, request, molecules_total, molecules_done, attempts, created_at, started_at, finished_at, "
    "error_reason, error_message, result IS NOT NULL"
)


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def validate_url(url: str) -> None:
    """Check that ``url`` parses as a PostgreSQL URL (scheme, numeric port, libpq options).

    Raises:
        ConfigError: it does not (the message names ``AS_DB_URL`` and hides the password).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("the scheme must be postgresql://")
        conninfo_to_dict(url)
    except (ValueError, psycopg.ProgrammingError) as exc:
        raise ConfigError(f"AS_DB_URL {redact(url)!r} is not a valid PostgreSQL URL: {_first_line(exc)}") from None


class PostgresJobStore:
    """The :class:`~adjoint_sampling.service.job_store.JobStoreProtocol` on a PostgreSQL database.

    Args:
        url: ``postgresql://user[:password]@host[:port]/db`` (libpq URL; ``?host=/dir`` for a socket).
        max_attempts: starts of a job after which an expired lease fails it instead of re-queuing it.
        connect_timeout_s: how long to wait for the server.

    Raises:
        ConfigError: the URL is malformed, the server cannot be reached, or the schema is newer.
    """

    def __init__(self, url: str, max_attempts: int = 2, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.max_attempts = int(max_attempts)
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn = self._connect()
        migrate(self.url)

    def _connect(self) -> psycopg.Connection:
        validate_url(self.url)
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s)))
        except psycopg.ProgrammingError as exc:
            message = f"AS_DB_URL {redact(self.url)!r} is not a valid PostgreSQL URL: {_first_line(exc)}"
            raise ConfigError(message) from None
        except psycopg.OperationalError as exc:
            message = f"AS_DB_URL: cannot connect to PostgreSQL at {redact(self.url)}: {_first_line(exc)}"
            raise ConfigError(message) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor in one transaction, under the store lock; reconnects a closed connection first."""
        with self._lock:
            if self._conn.closed or self._conn.broken:
                log.warning("PostgreSQL connection lost; reconnecting to %s", redact(self.url))
                self._conn = self._connect()
            with self._conn.transaction(), self._conn.cursor() as cursor:
                yield cursor

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def create(self, request: dict[str, Any], molecules_total: int) -> str:
        """Store a new queued job; returns its id."""
        job_id = uuid.uuid4().hex
        with self._transaction() as cur:
            cur.execute(
                f"INSERT INTO jobs (id, status, request, molecules_total, created_at) "
                f"VALUES (%s, 'queued', %s, %s, {_NOW})",
                (job_id, json.dumps(request), int(molecules_total)),
            )
        return job_id

    def get(self, job_id: str) -> JobRecord | None:
        with self._transaction() as cur:
            row = cur.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def result(self, job_id: str) -> dict[str, Any] | None:
        """The stored result of a finished job (``None`` if there is none)."""
        with self._transaction() as cur:
            row = cur.execute("SELECT result FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def count(self, status: str) -> int:
        with self._transaction() as cur:
            return int(cur.execute("SELECT COUNT(*) FROM jobs WHERE status = %s", (status,)).fetchone()[0])

    def claim_next(self, owner: str | None = None, lease_s: float | None = None) -> JobRecord | None:
        """Lease the oldest queued job, or a running one whose lease expired, to ``owner`` for ``lease_s``.

        Expired jobs already started ``max_attempts`` times are failed (``interrupted``) instead.
        """
        owner = owner or f"anonymous-{uuid.uuid4().hex[:8]}"
        lease_s = 30.0 if lease_s is None else float(lease_s)
        with self._transaction() as cur:
            self._fail_exhausted(cur)
            row = cur.execute(
                f"SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_expires_at < {_NOW}) "
                "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return None
            claimed = cur.execute(
                f"UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = {_NOW}, "
                f"molecules_done = 0, lease_owner = %s, lease_expires_at = {_NOW} + %s "
                f"WHERE id = %s RETURNING {_COLUMNS}",
                (owner, lease_s, row[0]),
            ).fetchone()
            self._event(cur, row[0], "claimed", owner)
        return JobRecord.from_row(claimed)

    def renew(self, job_id: str, owner: str | None, lease_s: float) -> bool:
        """Extend ``owner``'s lease on ``job_id`` by ``lease_s`` from now; ``False`` if it lost the lease."""
        with self._transaction() as cur:
            cur.execute(
                f"UPDATE jobs SET lease_expires_at = {_NOW} + %s "
                "WHERE id = %s AND lease_owner = %s AND status = 'running'",
                (float(lease_s), job_id, owner),
            )
            return cur.rowcount > 0

    def release(self, job_id: str, owner: str | None) -> None:
        """Give a job back to the queue at once (a worker stopping cleanly); its attempt stays counted."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, molecules_done = 0 "
                "WHERE id = %s AND lease_owner = %s AND status = 'running'",
                (job_id, owner),
            )
            if cur.rowcount:
                self._event(cur, job_id, "released", owner)

    def set_progress(self, job_id: str, molecules_done: int, owner: str | None = None) -> bool:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE jobs SET molecules_done = %s WHERE id = %s AND lease_owner IS NOT DISTINCT FROM %s "
                "AND status = 'running'",
                (int(molecules_done), job_id, owner),
            )
            return cur.rowcount > 0

    def finish(self, job_id: str, result: dict[str, Any], owner: str | None = None) -> bool:
        """Store the result and mark the job succeeded, if ``owner`` still holds it; ``False`` if refused."""
        with self._transaction() as cur:
            cur.execute(
                f"UPDATE jobs SET status = 'succeeded', result = %s, finished_at = {_NOW}, "
                "molecules_done = molecules_total, lease_expires_at = NULL "
                "WHERE id = %s AND lease_owner IS NOT DISTINCT FROM %s AND status = 'running'",
                (json.dumps(result), job_id, owner),
            )
            done = cur.rowcount > 0
            if done:
                self._event(cur, job_id, "succeeded", owner)
        if not done:
            log.warning("job %s: finish by %s refused (lease lost to another worker)", job_id, owner)
        return done

    def fail(self, job_id: str, reason: str, message: str, owner: str | None = None) -> bool:
        """Mark the job failed, if ``owner`` still holds it (``owner=None``: a job nobody leased)."""
        with self._transaction() as cur:
            cur.execute(
                f"UPDATE jobs SET status = 'failed', error_reason = %s, error_message = %s, finished_at = {_NOW}, "
                "lease_expires_at = NULL WHERE id = %s AND lease_owner IS NOT DISTINCT FROM %s "
                "AND status IN ('queued', 'running')",
                (reason, message, job_id, owner),
            )
            done = cur.rowcount > 0
            if done:
                self._event(cur, job_id, "failed", owner)
        return done

    def recover(self, max_attempts: int) -> tuple[int, int]:
        """Re-queue running jobs whose lease expired, fail those started ``max_attempts`` times.

        Jobs of live workers (lease not expired) are left alone: other servers share this queue.

        Returns:
            ``(requeued, failed)`` counts.
        """
        with self._transaction() as cur:
            failed = self._fail_exhausted(cur, max_attempts)
            cur.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, molecules_done = 0, lease_owner = NULL, "
                f"lease_expires_at = NULL WHERE status = 'running' AND lease_expires_at < {_NOW}"
            )
            requeued = cur.rowcount
        if requeued or failed:
            log.warning("recovered jobs of dead workers: %d re-queued, %d failed", requeued, failed)
        return int(requeued), int(failed)

    def _fail_exhausted(self, cur: psycopg.Cursor, max_attempts: int | None = None) -> int:
        """Fail running jobs whose lease expired after ``max_attempts`` starts; returns how many."""
        cur.execute(
            f"UPDATE jobs SET status = 'failed', error_reason = 'interrupted', finished_at = {_NOW}, "
            "lease_expires_at = NULL, error_message = 'the worker stopped while this job was running, ' "
            "|| attempts || ' time(s); it is not retried again' "
            f"WHERE status = 'running' AND lease_expires_at < {_NOW} AND attempts >= %s RETURNING id, lease_owner",
            (self.max_attempts if max_attempts is None else int(max_attempts),),
        )
        rows = cur.fetchall()
        for job_id, owner in rows:
            log.warning("job %s failed: its lease (%s) expired after the last attempt", job_id, owner)
            self._event(cur, job_id, "failed", owner)
        return len(rows)

    @staticmethod
    def _event(cur: psycopg.Cursor, job_id: str, event: str, owner: str | None) -> None:
        cur.execute(
            f"INSERT INTO job_events (job_id, at, event, owner, attempt) "
            f"SELECT id, {_NOW}, %s, %s, attempts FROM jobs WHERE id = %s",
            (event, owner, job_id),
        )



def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
