"""The FastAPI application: conformers on demand, batches, durable jobs, health, metrics, web page.

Build it with :func:`create_app`; ``adjoint-sampling serve`` runs it with uvicorn. The generator
is loaded once in the lifespan and warmed up in the background (``/readyz`` turns 200 after).
CPU-heavy work runs in worker threads, never on the event loop.

Status codes: 200 results, 202 job accepted, 404 unknown job or path, 409 job result not ready,
413 body too large, 422 invalid field or molecule (``field`` and ``reason`` say which and why),
503 concurrency limit reached or model not ready (with ``Retry-After``), 504 synchronous time
limit passed (submit a job instead). Every error has the body of :class:`service.schemas.ErrorBody`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from adjoint_sampling.core.version import __version__
from adjoint_sampling.generation.loading import load_generator, resolve_model_spec
from adjoint_sampling.generation.types import ConformerGenerator, GenerationRequest
from adjoint_sampling.service.errors import ApiError, install_error_handlers
from adjoint_sampling.service.generation import (
    batch_result,
    failed_outcome,
    generate,
    process_molecule,
    validate_molecule,
    validate_options,
)
from adjoint_sampling.service.job_runner import JobRunner
from adjoint_sampling.service.job_store import JobRecord, JobStore
from adjoint_sampling.service.limits import ConcurrencyLimiter, body_size_limit
from adjoint_sampling.service.metrics import ServiceMetrics
from adjoint_sampling.service.schemas import (
    BatchRequest,
    BatchResult,
    ConformerRequest,
    ConformerResult,
    ErrorBody,
    HealthResponse,
    JobInfo,
    ModelsResponse,
)
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.workers import start_in_thread, wait_with_timeout

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
VENDOR_DIR = WEB_DIR / "node_modules" / "3dmol" / "build"

T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "malformed body (not UTF-8 JSON)",
        404: "unknown job",
        409: "job not finished or failed",
        413: "request body too large",
        422: "invalid field or molecule",
        500: "internal error",
        503: "busy or not ready (Retry-After)",
        504: "time limit passed",
    }.items()
}


@dataclass
class ServiceState:
    """What the app holds between requests."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    limiter: ConcurrencyLimiter
    generator: ConformerGenerator | None = None
    store: JobStore | None = None
    runner: JobRunner | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    model_spec: str = ""


def create_app(settings: ServiceSettings | None = None, generator: ConformerGenerator | None = None) -> FastAPI:
    """The service app. ``generator`` skips loading ``settings.model`` (for embedding and tests)."""
    settings = settings or ServiceSettings.from_env()
    metrics = ServiceMetrics()
    state = ServiceState(settings=settings, metrics=metrics, limiter=ConcurrencyLimiter(settings.max_concurrency))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.model_spec = resolve_model_spec(settings.model) if generator is None else "in-process"
        state.generator = generator or await asyncio.to_thread(load_generator, settings.model)
        state.store = JobStore(settings.db_path)
        state.runner = JobRunner(state.store, state.generator, settings, lambda o: _count_outcome(metrics, o))
        state.runner.start()
        metrics.jobs_queued.set(state.store.count("queued"))
        warmup = start_in_thread(lambda: _warm_up(state), name="as-warmup")
        log.info("service ready to accept requests (warming up the model)")
        try:
            yield
        finally:
            await state.runner.stop()
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

    def require_ready() -> ConformerGenerator:
        if not state.ready.is_set() or state.generator is None:
            raise ApiError(
                503,
                None,
                "not_ready",
                "the model is still warming up",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        return state.generator

    async def compute(fn: Callable[[], T], on_timeout: Callable[[], T] | None = None) -> T:
        """Run ``fn`` in a worker thread under the concurrency and time limits."""
        if not state.limiter.try_acquire():
            raise ApiError(
                503,
                None,
                "overloaded",
                f"{settings.max_concurrency} request(s) are computing; retry later or submit a job",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        metrics.inflight.inc()

        def release(_: object) -> None:
            metrics.inflight.dec()
            state.limiter.release()

        try:
            future = start_in_thread(fn, name="as-request")
        except BaseException:
            release(None)
            raise
        future.add_done_callback(release)
        try:
            return await wait_with_timeout(future, settings.request_timeout_s)
        except TimeoutError:
            if on_timeout is not None:
                return on_timeout()
            raise ApiError(
                504,
                None,
                "timeout",
                f"the request took longer than {settings.request_timeout_s:g} s; "
                "submit long requests as a job (POST /v1/jobs)",
            ) from None

    @app.post("/v1/conformers", response_model=ConformerResult, responses=_ERRORS, tags=["conformers"])
    async def post_conformers(body: ConformerRequest) -> dict[str, Any]:
        """Conformers of one molecule, computed now (within the time limit)."""
        start = time.perf_counter()
        validate_options(body, settings)
        validate_molecule(body, settings)
        current = require_ready()
        try:
            result = await compute(lambda: generate(current, body, body))
        except ApiError as exc:
            if exc.status == 422:
                metrics.molecules.labels("failed").inc()
            raise
        metrics.molecules.labels("ok").inc()
        metrics.conformers.inc(result["num_returned"])
        result["timings"]["service_total"] = time.perf_counter() - start
        return result

    @app.post("/v1/conformers/batch", response_model=BatchResult, responses=_ERRORS, tags=["conformers"])
    async def post_batch(body: BatchRequest) -> dict[str, Any]:
        """Conformers of several molecules; each gets its own status, one bad molecule fails alone."""
        start = time.perf_counter()
        validate_options(body, settings)
        _check_count(len(body.molecules), settings.max_batch_molecules, "max_batch_molecules")
        current = require_ready()
        outcomes: list[dict[str, Any]] = []
        stop = threading.Event()

        def run_all() -> list[dict[str, Any]]:
            for index, molecule in enumerate(body.molecules):
                if stop.is_set():
                    break
                outcomes.append(_safe_process(current, index, molecule, body, settings))
            return outcomes

        def partial() -> list[dict[str, Any]]:
            stop.set()
            done = list(outcomes)
            timeout = ApiError(
                504, None, "timeout", f"not reached within the request time limit of {settings.request_timeout_s:g} s"
            )
            for index in range(len(done), len(body.molecules)):
                error = ApiError(504, f"molecules.{index}", timeout.reason, timeout.message)
                done.append(failed_outcome(index, body.molecules[index], error))
            return done

        finished = await compute(run_all, on_timeout=partial)
        for outcome in finished:
            _count_outcome(metrics, outcome)
        return batch_result(finished, time.perf_counter() - start)

    @app.post("/v1/jobs", status_code=202, response_model=JobInfo, responses=_ERRORS, tags=["jobs"])
    async def post_job(body: BatchRequest, response: Response) -> dict[str, Any]:
        """Queue a long request; poll ``GET /v1/jobs/{id}``, then fetch ``/v1/jobs/{id}/result``."""
        validate_options(body, settings)
        _check_count(len(body.molecules), settings.max_job_molecules, "max_job_molecules")
        assert state.store is not None and state.runner is not None
        if state.store.count("queued") >= settings.max_queued_jobs:
            raise ApiError(
                503,
                None,
                "queue_full",
                f"{settings.max_queued_jobs} jobs are queued; retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        job_id = state.store.create(body.model_dump(mode="json"), len(body.molecules))
        metrics.jobs.labels("queued").inc()
        metrics.jobs_queued.set(state.store.count("queued"))
        state.runner.notify()
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return _job_info(_get_job(job_id))

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=_ERRORS, tags=["jobs"])
    async def get_job(job_id: str) -> dict[str, Any]:
        """Status and progress of a job."""
        return _job_info(_get_job(job_id))

    @app.get("/v1/jobs/{job_id}/result", response_model=BatchResult, responses=_ERRORS, tags=["jobs"])
    async def get_job_result(job_id: str) -> dict[str, Any]:
        """The result of a finished job (kept across restarts)."""
        job = _get_job(job_id)
        if job.status == "failed":
            raise ApiError(409, "job_id", "job_failed", f"job failed ({job.error_reason}): {job.error_message}")
        assert state.store is not None
        result = state.store.result(job_id) if job.status == "succeeded" else None
        if result is None:
            raise ApiError(409, "job_id", "not_finished", f"job is {job.status}; poll GET /v1/jobs/{job_id}")
        return result

    def _get_job(job_id: str) -> JobRecord:
        assert state.store is not None
        job = state.store.get(job_id)
        if job is None:
            raise ApiError(404, "job_id", "not_found", "no job with this id")
        metrics.jobs_queued.set(state.store.count("queued"))
        return job

    @app.get("/healthz", response_model=HealthResponse, tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive and serving HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=HealthResponse, responses=_ERRORS, tags=["operations"])
    async def readyz() -> dict[str, str]:
        """The model is loaded and warmed up."""
        require_ready()
        return {"status": "ready"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", response_model=ModelsResponse, tags=["operations"])
    async def models() -> dict[str, Any]:
        """The served model and the request limits."""
        current = state.generator
        return {
            "models": [
                {
                    "name": getattr(current, "name", ""),
                    "version": getattr(current, "version", ""),
                    "source": state.model_spec,
                    "ready": state.ready.is_set(),
                    "limits": {
                        "max_conformers": settings.max_conformers,
                        "max_smiles_length": settings.max_smiles_length,
                        "max_atoms": settings.max_atoms,
                        "max_batch_molecules": settings.max_batch_molecules,
                        "max_job_molecules": settings.max_job_molecules,
                        "request_timeout_s": settings.request_timeout_s,
                    },
                }
            ]
        }

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.mount("/static/app", StaticFiles(directory=WEB_DIR / "static"), name="static-app")
    if VENDOR_DIR.is_dir():
        app.mount("/static/vendor/3dmol", StaticFiles(directory=VENDOR_DIR), name="static-3dmol")
    else:
        log.warning("3Dmol.js is not installed (%s); run `make web` (npm ci in service/web)", VENDOR_DIR)

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


def _check_count(count: int, limit: int, setting: str) -> None:
    if count > limit:
        raise ApiError(
            422, "molecules", "too_many_molecules", f"molecules: {count} molecules; the limit is {limit} ({setting})"
        )


def _safe_process(
    generator: ConformerGenerator, index: int, molecule: Any, options: Any, settings: ServiceSettings
) -> dict[str, Any]:
    try:
        return process_molecule(generator, index, molecule, options, settings)
    except Exception as exc:  # a generator bug fails this molecule only
        log.error("molecule %d (%r): unexpected %s", index, molecule.smiles, type(exc).__name__, exc_info=exc)
        return failed_outcome(
            index, molecule, ApiError(500, f"molecules.{index}", "internal_error", "internal error (logged)")
        )


def _count_outcome(metrics: ServiceMetrics, outcome: dict[str, Any]) -> None:
    metrics.molecules.labels(outcome["status"]).inc()
    if outcome["status"] == "ok":
        metrics.conformers.inc(outcome["result"]["num_returned"])
    else:
        metrics.failures.labels(outcome["error"]["reason"]).inc()


def _job_info(job: JobRecord) -> dict[str, Any]:
    error = None
    if job.status == "failed":
        error = {
            "status": 500,
            "field": None,
            "reason": job.error_reason or "failed",
            "message": job.error_message or "",
        }
    return {
        "id": job.id,
        "status": job.status,
        "progress": {"molecules_done": job.molecules_done, "molecules_total": job.molecules_total},
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": error,
        "result_url": f"/v1/jobs/{job.id}/result" if job.status == "succeeded" else None,
    }


def _warm_up(state: ServiceState) -> None:
    """Generate one conformer of ``settings.warmup_smiles`` so the first request is not slow."""
    assert state.generator is not None
    start = time.perf_counter()
    try:
        state.generator.generate(GenerationRequest(smiles=state.settings.warmup_smiles, num_conformers=1, seed=0))
    except Exception:
        log.exception("warm-up failed; the service stays not ready")
        return
    state.ready.set()
    state.metrics.model_ready.set(1)
    log.info("model warmed up in %.2f s; ready", time.perf_counter() - start)
