"""What the routers share: the per-app :class:`ServiceState` (a FastAPI dependency), readiness, the
molecule-count check, :func:`compute` (concurrency limit, time limit, worker thread) and
:func:`compute_in_pool` (the same limits, in a worker process that is killed past the time limit)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from adjoint_sampling.generation.types import ConformerGenerator
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.job_runner import JobRunner
from adjoint_sampling.service.job_store import JobStoreProtocol
from adjoint_sampling.service.limits import ConcurrencyLimiter
from adjoint_sampling.service.metrics import ServiceMetrics
from adjoint_sampling.service.process_pool import OutcomeHook, WorkerPool
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.workers import start_in_thread, wait_with_timeout

T = TypeVar("T")


@dataclass
class ServiceState:
    """What the app holds between requests (on ``app.state.service``)."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    limiter: ConcurrencyLimiter
    generator: ConformerGenerator | None = None
    store: JobStoreProtocol | None = None
    runner: JobRunner | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    model_spec: str = ""
    pool: WorkerPool | None = None
    """Worker processes of the synchronous routes; ``None``: worker threads (``AS_WORKERS=0`` or an
    in-process generator given to ``create_app``)."""

    def count_outcome(self, outcome: dict[str, Any]) -> None:
        """Count one molecule outcome (``MoleculeOutcome`` dict) in the metrics."""
        self.metrics.molecules.labels(outcome["status"]).inc()
        if outcome["status"] == "ok":
            self.metrics.conformers.inc(outcome["result"]["num_returned"])
        else:
            self.metrics.failures.labels(outcome["error"]["reason"]).inc()


def get_state(request: Request) -> ServiceState:
    """The state of the app serving ``request``."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def require_ready(state: State) -> ConformerGenerator:
    """The warmed-up generator, or a 503 ``not_ready`` with ``Retry-After``."""
    if not state.ready.is_set() or state.generator is None:
        raise ApiError.retry_later("not_ready", "the model is still warming up", state.settings.retry_after_s)
    return state.generator


def check_count(count: int, limit: int, setting: str) -> None:
    """Refuse more than ``limit`` molecules (422 on ``molecules``, naming the ``setting``)."""
    if count > limit:
        raise ApiError(
            422, "molecules", "too_many_molecules", f"molecules: {count} molecules; the limit is {limit} ({setting})"
        )


async def compute(state: ServiceState, fn: Callable[[], T], on_timeout: Callable[[], T] | None = None) -> T:
    """Run ``fn`` in a worker thread under the concurrency and time limits.

    A thread cannot be stopped: past the time limit it keeps its slot until ``fn`` really ends.

    Raises:
        ApiError: 503 ``overloaded`` (with ``Retry-After``) when every slot is computing; 504
            ``timeout`` when the time limit passes and there is no ``on_timeout`` to answer instead.
    """
    settings, metrics = state.settings, state.metrics
    _acquire_slot(state)

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
        raise _timeout_error(settings) from None


async def compute_in_pool(
    state: ServiceState,
    kind: str,
    payload: dict[str, Any],
    on_timeout: Callable[[], T] | None = None,
    on_outcome: OutcomeHook | None = None,
) -> Any:
    """Run a task (``worker_process.CONFORMERS`` / ``BATCH`` with the request as a dict) in the
    worker pool under the concurrency and time limits.

    Past the time limit the worker process is killed and replaced, and the slot is free at once.

    Raises:
        ApiError: 503 ``overloaded``; 504 ``timeout`` (when there is no ``on_timeout``); the task's
            own errors (422 for a molecule the generator refuses, ...).
    """
    assert state.pool is not None
    _acquire_slot(state)
    try:
        return await state.pool.run(kind, payload, state.settings.request_timeout_s, on_outcome)
    except TimeoutError:
        if on_timeout is not None:
            return on_timeout()
        raise _timeout_error(state.settings) from None
    finally:
        state.metrics.inflight.dec()
        state.limiter.release()


def _acquire_slot(state: ServiceState) -> None:
    """Take a concurrency slot (and count it in flight), or raise the 503 ``overloaded``."""
    settings = state.settings
    if not state.limiter.try_acquire():
        raise ApiError.retry_later(
            "overloaded", f"{settings.max_concurrency} request(s) are computing; retry later or submit a job",
            settings.retry_after_s,
        )
    state.metrics.inflight.inc()


def _timeout_error(settings: ServiceSettings) -> ApiError:
    return ApiError(
        504,
        None,
        "timeout",
        f"the request took longer than {settings.request_timeout_s:g} s; submit long requests as a job (POST /v1/jobs)",
    )
