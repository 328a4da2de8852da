"""Background execution of stored jobs, one molecule at a time, with progress in the job store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from adjoint_sampling.generation.types import ConformerGenerator
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.generation import batch_result, failed_outcome, process_molecule
from adjoint_sampling.service.job_store import JobRecord, JobStore
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
        self, store: JobStore, generator: ConformerGenerator, settings: ServiceSettings, on_outcome: OutcomeHook
    ) -> None:
        self.store = store
        self.generator = generator
        self.settings = settings
        self.on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Recover jobs interrupted by a previous stop, then start the worker tasks."""
        self.store.recover(self.settings.job_max_attempts)
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"job-worker-{i}") for i in range(self.settings.job_workers)
        ]

    def notify(self) -> None:
        """Wake the workers (a job was queued)."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the workers; a job cut short stays ``running`` and is recovered on the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self) -> None:
        while True:
            job = self.store.claim_next()
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL_S)
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not kill the worker: fail this job, keep serving
                log.exception("job %s crashed", job.id)
                self.store.fail(
                    job.id, "internal_error", f"internal error while running the job ({type(exc).__name__})"
                )

    async def _run(self, job: JobRecord) -> None:
        log.info("job %s: started (attempt %d, %d molecules)", job.id, job.attempts, job.molecules_total)
        start = time.perf_counter()
        try:
            request = BatchRequest.model_validate(job.request)
        except ValidationError as exc:
            self.store.fail(
                job.id, "invalid_request", f"stored request no longer validates: {exc.error_count()} error(s)"
            )
            return
        options = request
        outcomes: list[dict[str, Any]] = []
        for index, molecule in enumerate(request.molecules):
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
            self.store.set_progress(job.id, index + 1)
        self.store.finish(job.id, batch_result(outcomes, time.perf_counter() - start))
        log.info("job %s: finished in %.1f s", job.id, time.perf_counter() - start)
