"""What the routers share: the per-app :class:`ServiceState` (a FastAPI dependency), readiness, the
molecule-count check and :func:`compute` (concurrency limit, time limit, worker thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from adjoint_sampling.generation.types import ConformerGenerator
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.job_runner import JobRunner
from adjoint_sampling.service.job_store import JobStore
from adjoint_sampling.service.limits import ConcurrencyLimiter
from adjoint_sampling.service.metrics import ServiceMetrics
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
    store: JobStore | None = None
    runner: JobRunner | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    model_spec: str = ""

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
        raise ApiError(
            503,
            None,
            "not_ready",
            "the model is still warming up",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    return state.generator


def check_count(count: int, limit: int, setting: str) -> None:
    """Refuse more than ``limit`` molecules (422 on ``molecules``, naming the ``setting``)."""
    if count > limit:
        raise ApiError(
            422, "molecules", "too_many_molecules", f"molecules: {count} molecules; the limit is {limit} ({setting})"
        )


async def compute(state: ServiceState, fn: Callable[[], T], on_timeout: Callable[[], T] | None = None) -> T:
    """Run ``fn`` in a worker thread under the concurrency and time limits.

    Raises:
        ApiError: 503 ``overloaded`` (with ``Retry-After``) when every slot is computing; 504
            ``timeout`` when the time limit passes and there is no ``on_timeout`` to answer instead.
    """
    settings, metrics = state.settings, state.metrics
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
