"""`adjoint-sampling worker`: compute jobs from the shared PostgreSQL queue (``AS_DB_URL``).

Loads the model once, then runs the service's job runner without HTTP: claims queued jobs (or jobs
whose worker died: lease expired), renews their leases while computing and stores the results.
Any number of workers and API servers (``AS_JOB_WORKERS=0`` for servers that only queue) share the
queue. SIGTERM or SIGINT stops it cleanly: a job in progress is given back to the queue at once.
Settings come from ``AS_*`` environment variables (see :mod:`service.settings`); flags override them.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from adjoint_sampling.core.errors import ConfigError

if TYPE_CHECKING:
    from adjoint_sampling.service.settings import ServiceSettings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", help="postgresql://user@host:port/db of the shared job queue (AS_DB_URL)")
    parser.add_argument("--model", help="'etkdg' or a checkpoint path (AS_MODEL, default: the shipped model)")
    parser.add_argument("--jobs", type=int, help="jobs computed at once (AS_JOB_WORKERS, default 1)")
    parser.add_argument("--lease-s", type=float, help="job lease in seconds, renewed while computing (AS_JOB_LEASE_S)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from adjoint_sampling.service.settings import ServiceSettings

    settings = ServiceSettings.from_env(
        db_url=args.db_url, model=args.model, job_workers=args.jobs, job_lease_s=args.lease_s
    )
    if not settings.db_url:
        raise ConfigError("the worker needs the shared PostgreSQL queue: set AS_DB_URL or --db-url")
    if settings.job_workers < 1:
        raise ConfigError(f"--jobs / AS_JOB_WORKERS must be >= 1 for a worker, got {settings.job_workers}")
    return asyncio.run(serve_jobs(settings))


async def serve_jobs(settings: ServiceSettings) -> int:
    """Run the job runner on ``settings`` until SIGTERM or SIGINT; returns the exit status."""
    import asyncio
    import signal

    from adjoint_sampling.generation.loading import load_generator, resolve_model_spec
    from adjoint_sampling.service.job_runner import JobRunner
    from adjoint_sampling.service.job_stores import open_job_store
    from adjoint_sampling.service.job_store_postgres import redact

    store = open_job_store(settings)
    try:
        generator = await asyncio.to_thread(load_generator, settings.model, settings.energy_model)
        runner = JobRunner(store, generator, settings, on_outcome=lambda outcome: None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner.start()
        log.info(
            "worker %s: %d job slot(s), model %s, queue %s, lease %g s",
            runner.worker_id,
            runner.workers,
            resolve_model_spec(settings.model),
            redact(settings.db_url or ""),
            settings.job_lease_s,
        )
        await stop.wait()
        log.info("worker %s: stopping (jobs in progress go back to the queue)", runner.worker_id)
        await runner.stop()
    finally:
        store.close()
    return 0
