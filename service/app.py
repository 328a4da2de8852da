"""The FastAPI application: conformers on demand, batches, durable jobs, health, metrics, web page.

Build it with :func:`create_app`; ``adjoint-sampling serve`` runs it with uvicorn. The generator
is loaded once in the lifespan and warmed up in the background (``/readyz`` turns 200 after).
CPU-heavy work never runs on the event loop: the synchronous routes use ``AS_WORKERS`` worker
processes (:mod:`service.process_pool`; a request past its time limit has its process killed and
replaced), or worker threads with ``AS_WORKERS=0`` or a ``generator`` passed to :func:`create_app`
(it cannot be sent to another process); jobs run in threads.

Status codes: 200 results, 202 job accepted, 404 unknown job or path, 409 job result not ready,
413 body too large, 422 invalid field or molecule (``field`` and ``reason`` say which and why),
503 concurrency limit reached or model not ready (with ``Retry-After``), 504 synchronous time
limit passed (submit a job instead). Every error has the body of :class:`service.schemas.ErrorBody`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from adjoint_sampling.core.version import __version__
from adjoint_sampling.generation.loading import load_generator, resolve_model_spec
from adjoint_sampling.generation.types import ConformerGenerator, GenerationRequest
from adjoint_sampling.service.dependencies import ServiceState
from adjoint_sampling.service.errors import install_error_handlers
from adjoint_sampling.service.job_runner import JobRunner
from adjoint_sampling.service.job_stores import open_job_store
from adjoint_sampling.service.limits import ConcurrencyLimiter, body_size_limit
from adjoint_sampling.service.metrics import ServiceMetrics
from adjoint_sampling.service.process_pool import WorkerPool
from adjoint_sampling.service.routers import ROUTERS, mount_static
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.workers import start_in_thread

log = logging.getLogger(__name__)


def create_app(settings: ServiceSettings | None = None, generator: ConformerGenerator | None = None) -> FastAPI:
    """The service app. ``generator`` skips loading ``settings.model`` (for embedding and tests)."""
    settings = settings or ServiceSettings.from_env()
    metrics = ServiceMetrics()
    state = ServiceState(settings=settings, metrics=metrics, limiter=ConcurrencyLimiter(settings.max_concurrency))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.model_spec = resolve_model_spec(settings.model) if generator is None else "in-process"
        state.generator = generator or await asyncio.to_thread(load_generator, settings.model, settings.energy_model)
        if generator is None and settings.workers > 0:
            state.pool = WorkerPool(state.model_spec, settings, metrics)
            await state.pool.start()
        state.store = open_job_store(settings)  # type: ignore[assignment]  # SQLite or PostgreSQL
        state.runner = JobRunner(state.store, state.generator, settings, state.count_outcome)
        state.runner.start()
        metrics.jobs_queued.set(state.store.count("queued"))
        warmup = start_in_thread(lambda: _warm_up(state), name="as-warmup")
        log.info("service ready to accept requests (warming up the model)")
        try:
            yield
        finally:
            await state.runner.stop()
            if state.pool is not None:
                await state.pool.close()
            state.store.close()
            if not warmup.done():
                log.info("stopping before the warm-up finished")

    app = FastAPI(
        title="adjoint-sampling conformer service",
        version=__version__,
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app, lambda e: metrics.failures.labels(e.reason).inc())
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)

    # add_middleware puts the last one outermost: metrics see every response, 413s included.
    app.add_middleware(
        _AsgiWrapper,
        wrap=lambda inner: body_size_limit(
            inner, settings.max_body_bytes, lambda: metrics.failures.labels("body_too_large").inc()
        ),
    )
    app.add_middleware(_AsgiWrapper, wrap=metrics.middleware)
    return app


class _AsgiWrapper:
    """Adapts a function ``wrap(app) -> app`` to Starlette's ``add_middleware``."""

    def __init__(self, app: Any, wrap: Callable[[Any], Any]) -> None:
        self._app = wrap(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def _warm_up(state: ServiceState) -> None:
    """Generate one conformer of ``settings.warmup_smiles`` so the first request is not slow."""
    assert state.generator is not None
    start = time.perf_counter()
    try:
        state.generator.generate(GenerationRequest(smiles=state.settings.warmup_smiles, num_conformers=1, seed=0))
    except Exception:
        log.exception("warm-up failed; the service stays not ready")
        return
    if state.pool is not None and state.pool.wait_started() == 0:
        log.error("no worker process could load the model; the service stays not ready")
        return
    state.ready.set()
    state.metrics.model_ready.set(1)
    log.info("model warmed up in %.2f s; ready", time.perf_counter() - start)
