"""Background execution of stored jobs, one molecule at a time, with progress in the job store.

The same runner computes jobs inside an API server (``AS_JOB_WORKERS`` tasks) and in
``adjoint-sampling worker``. Each task claims jobs under its own lease owner name and, while it
computes, renews the lease every third of ``AS_JOB_LEASE_S`` (PostgreSQL; the SQLite store has no
leases). A task that finds its lease lost abandons the job (the new owner's finish wins); a task
cancelled by a clean stop gives its job back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from adjoint_sampling.generation.types import ConformerGenerator
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.generation import batch_result, failed_outcome, process_molecule
from adjoint_sampling.service.job_store import JobRecord, JobStoreProtocol
from adjoint_sampling.service.schemas import BatchRequest
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.workers import start_in_thread, wait_with_timeout

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0

OutcomeHook = Callable[[dict[str, Any]], None]


class JobRunner:
    """``settings.job_workers`` asyncio tasks that claim queued jobs and run them in threads.

    Args:
        store: the durable job table.
        generator: the loaded conformer generator.
        settings: limits (per-molecule time limit, attempts).
        on_outcome: called with every molecule outcome (for metrics).
    """

    def __init__(
        self,
        store: JobStoreProtocol,
        generator: ConformerGenerator,
        settings: ServiceSettings,
        on_outcome: OutcomeHook,
        workers: int | None = None,
    ) -> None:
        self.store = store
        self.workers = settings.job_workers if workers is None else workers
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generator = generator
        self.settings = settings
        self.on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Recover jobs interrupted by a previous stop, then start the worker tasks."""
        self.store.recover(self.settings.job_max_attempts)
        self._tasks = [asyncio.create_task(self._loop(i), name=f"job-worker-{i}") for i in range(self.workers)]

    def notify(self) -> None:
        """Wake the workers (a job was queued)."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the workers; a job cut short is released (PostgreSQL) or stays ``running`` and is recovered
        on the next start (SQLite)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, index: int) -> None:
        owner = f"{self.worker_id}-{index}"
        while True:
            try:
                job = self.store.claim_next(owner, self.settings.job_lease_s)
            except Exception as exc:  # the database is away (PostgreSQL restart, network): retry, keep serving
                log.warning("claiming a job failed (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(POLL_INTERVAL_S)
                continue
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)
                continue
            lost = asyncio.Event()
            keeper = asyncio.create_task(self._keep_lease(job.id, owner, lost), name=f"lease-{job.id[:8]}")
            try:
                await self._run(job, owner, lost)
            except asyncio.CancelledError:
                try:
                    self.store.release(job.id, owner)
                except Exception as exc:  # unreleased, the job is taken over when its lease expires
                    log.warning("job %s: release failed (%s)", job.id, type(exc).__name__)
                raise
            except Exception as exc:  # a bug must not kill the worker: fail this job, keep serving
                log.exception("job %s crashed", job.id)
                try:
                    self.store.fail(
                        job.id, "internal_error", f"internal error while running the job ({type(exc).__name__})", owner
                    )
                except Exception:  # the database is away: the job is taken over when its lease expires
                    log.exception("job %s: could not be marked failed", job.id)
            finally:
                keeper.cancel()

    async def _keep_lease(self, job_id: str, owner: str, lost: asyncio.Event) -> None:
        """Renew ``owner``'s lease on ``job_id`` every third of the lease until cancelled; set ``lost`` if refused."""
        while True:
            await asyncio.sleep(self.settings.job_lease_s / 3)
            try:
                held = self.store.renew(job_id, owner, self.settings.job_lease_s)
            except Exception as exc:  # the database is away: keep computing, the finish decides
                log.warning("job %s: lease renewal failed (%s)", job_id, type(exc).__name__)
                continue
            if not held:
                log.warning("job %s: lease lost (%s); another worker owns it now", job_id, owner)
                lost.set()
                return

    async def _run(self, job: JobRecord, owner: str | None, lost: asyncio.Event) -> None:
        log.info("job %s: started (attempt %d, %d molecules)", job.id, job.attempts, job.molecules_total)
        start = time.perf_counter()
        try:
            request = BatchRequest.model_validate(job.request)
        except ValidationError as exc:
            self.store.fail(
                job.id, "invalid_request", f"stored request no longer validates: {exc.error_count()} error(s)", owner
            )
            return
        options = request
        outcomes: list[dict[str, Any]] = []
        for index, molecule in enumerate(request.molecules):
            if lost.is_set():
                log.warning("job %s: abandoned after %d molecule(s): lease lost", job.id, index)
                return
            future = start_in_thread(
                lambda i=index, m=molecule: process_molecule(self.generator, i, m, options, self.settings),
                name=f"job-{job.id[:8]}-{index}",
            )
            try:
                outcome = await wait_with_timeout(future, self.settings.job_molecule_timeout_s)
            except TimeoutError:
                outcome = failed_outcome(
                    index,
                    molecule,
                    ApiError(
                        504,
                        f"molecules.{index}",
                        "timeout",
                        f"molecule took longer than {self.settings.job_molecule_timeout_s:g} s",
                    ),
                )
            except Exception as exc:
                log.error("job %s molecule %d: unexpected %s", job.id, index, type(exc).__name__, exc_info=exc)
                outcome = failed_outcome(
                    index, molecule, ApiError(500, f"molecules.{index}", "internal_error", "internal error (logged)")
                )
            outcomes.append(outcome)
            self.on_outcome(outcome)
            self.store.set_progress(job.id, index + 1, owner)
        if self.store.finish(job.id, batch_result(outcomes, time.perf_counter() - start), owner):
            log.info("job %s: finished in %.1f s", job.id, time.perf_counter() - start)
