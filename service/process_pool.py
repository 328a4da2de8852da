"""A pool of worker processes for the synchronous routes (``AS_WORKERS``), the parent side.

Each worker (:func:`adjoint_sampling.service.worker_process.worker_main`) loads the generator spec
once and computes one task at a time; tasks and results are plain picklable data over a pipe.
Processes come from the ``forkserver`` context (a clean single-threaded server process that has
imported the worker module once, so a replacement starts in well under a second): torch, threads
and a plain ``fork`` of the server do not mix.

A task past its time limit has its process killed (SIGKILL) at once and a fresh one started in its
slot, so the request's concurrency slot is free immediately; until the replacement has loaded the
model the pool has one process fewer.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.metrics import ServiceMetrics
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.worker_process import worker_main
from adjoint_sampling.service.workers import start_in_thread, wait_with_timeout

log = logging.getLogger(__name__)

WORKER_MODULE = "adjoint_sampling.service.worker_process"
RESTART_DELAY_S = 5.0
"""Wait before starting again a worker that failed to load the model."""

OutcomeHook = Callable[[dict[str, Any]], None]


class WorkerDied(RuntimeError):
    """A worker process ended while computing a task (a crash in native code, out of memory)."""


class WorkerTaskError(RuntimeError):
    """A task raised an unexpected exception in its worker (logged there; answered as a 500)."""


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    conn: Connection


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` with the worker module preloaded, or ``spawn`` where there is no forkserver."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([WORKER_MODULE])
        return ctx
    return multiprocessing.get_context("spawn")


class WorkerPool:
    """``size`` worker processes serving :meth:`run`, each with the generator ``spec`` loaded.

    Args:
        spec: the resolved generator spec (``"etkdg"`` or a checkpoint path).
        settings: service limits (the workers validate molecules with them) and the warm-up SMILES.
        metrics: where the per-worker metrics go.
        size: number of processes (default ``settings.workers``).
    """

    def __init__(self, spec: str, settings: ServiceSettings, metrics: ServiceMetrics, size: int | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.metrics = metrics
        self.size = int(size or settings.workers)
        self._ctx = _context()
        self._threads = max(1, available_cores() // self.size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._pending_start = 0
        self._ready = 0
        self._closing = False

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker process (returns at once; they load the model in the background)."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self._pending_start = self.size
        # the first start launches the forkserver and waits for its preload: not on the event loop
        await asyncio.to_thread(lambda: [self._spawn(slot) for slot in range(self.size)])
        log.info("started %d worker process(es) for %s (%d torch thread(s) each)", self.size, self.spec, self._threads)

    def wait_started(self, timeout_s: float | None = None) -> int:
        """Block until every first worker is ready or failed; returns how many are ready."""
        self._started.wait(timeout_s)
        return self._ready

    async def close(self) -> None:
        """Ask every worker to stop; kill those still running after a short grace time."""
        self._closing = True
        workers = list(self._workers.values())
        await asyncio.to_thread(_stop_all, workers)

    # -- tasks ------------------------------------------------------------------------------------

    async def run(
        self, kind: str, payload: dict[str, Any], timeout_s: float, on_outcome: OutcomeHook | None = None
    ) -> Any:
        """Compute one task in an idle worker within ``timeout_s`` (waiting for a free worker included).

        ``on_outcome`` is called (in a reader thread) with every batch outcome as it arrives.

        Raises:
            TimeoutError: the time limit passed; a worker computing the task was killed and replaced.
            ApiError: the task's own error (a 422 for a molecule the generator refuses, ...).
            WorkerDied, WorkerTaskError: the process crashed, or the task raised unexpectedly (500).
        """
        assert self._loop is not None and self._idle is not None, "WorkerPool.start() was not called"
        deadline = time.monotonic() + timeout_s
        worker = await asyncio.wait_for(self._idle.get(), timeout_s)
        label = str(worker.slot)
        self.metrics.worker_busy.labels(label).set(1)
        try:
            worker.conn.send((kind, payload))
            future = start_in_thread(lambda: _receive(worker, on_outcome), name=f"as-worker-{worker.slot}-reader")
            message = await wait_with_timeout(future, max(0.0, deadline - time.monotonic()))
        except BaseException as exc:
            self._replace(worker, _restart_reason(exc))
            raise
        self.metrics.worker_busy.labels(label).set(0)
        self.metrics.worker_tasks.labels(label).inc()
        self._idle.put_nowait(worker)
        return _unwrap(message)

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        """Start a process in ``slot``; a thread waits for its ``ready`` and makes it idle."""
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self.spec, self.settings, logging.getLogger().getEffectiveLevel(), self._threads),
            name=f"as-worker-{slot}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = _Worker(slot, process, parent_conn)
        self._workers[slot] = worker
        self.metrics.worker_pid.labels(str(slot)).set(process.pid or 0)
        self.metrics.worker_busy.labels(str(slot)).set(0)
        threading.Thread(target=self._await_ready, args=(worker,), name=f"as-worker-{slot}-start", daemon=True).start()

    def _await_ready(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            message = ("failed", "the process ended while loading the model")
        ready = message[0] == "ready"
        with self._lock:
            if self._pending_start > 0:
                self._pending_start -= 1
                if self._pending_start == 0:
                    self._started.set()
            if ready:
                self._ready += 1
                self.metrics.workers_ready.set(self._ready)
        if ready:
            log.info("worker %d ready (pid %s)", worker.slot, message[1])
            assert self._loop is not None and self._idle is not None
            try:
                self._loop.call_soon_threadsafe(self._idle.put_nowait, worker)
            except RuntimeError:  # the event loop is closed: shutting down
                pass
            return
        log.error("worker %d failed to start: %s", worker.slot, message[1])
        self._reap(worker)
        if not self._closing:
            self.metrics.worker_restarts.labels("failed_start").inc()
            time.sleep(RESTART_DELAY_S)
            if not self._closing:
                self._spawn(worker.slot)

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Kill ``worker`` now and start a fresh process in its slot."""
        log.warning("worker %d (pid %s): %s; killing and replacing it", worker.slot, worker.process.pid, reason)
        worker.process.kill()
        with self._lock:
            self._ready -= 1
            self.metrics.workers_ready.set(self._ready)
        self.metrics.worker_restarts.labels(reason).inc()
        self.metrics.worker_busy.labels(str(worker.slot)).set(0)
        threading.Thread(target=self._reap, args=(worker,), name="as-worker-reaper", daemon=True).start()
        if not self._closing:
            self._spawn(worker.slot)

    @staticmethod
    def _reap(worker: _Worker) -> None:
        worker.process.join(10)
        worker.conn.close()


def _receive(worker: _Worker, on_outcome: OutcomeHook | None) -> tuple[str, Any]:
    """Read a task's messages until its final one (batch outcomes go to ``on_outcome``)."""
    while True:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied(f"worker {worker.slot} (pid {worker.process.pid}) ended during a task") from None
        if message[0] != "outcome":
            return message
        if on_outcome is not None:
            on_outcome(message[1])


def _restart_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "died" if isinstance(exc, WorkerDied | OSError) else "cancelled"  # OSError: its pipe broke


def _unwrap(message: tuple[str, Any]) -> Any:
    kind, value = message
    if kind == "result":
        return value
    if kind == "api_error":
        raise ApiError(*value)
    raise WorkerTaskError(f"unexpected {value} in a worker process (logged there)")


def _stop_all(workers: list[_Worker], grace_s: float = 3.0) -> None:
    for worker in workers:
        try:
            worker.conn.send(None)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(2)
        worker.conn.close()
