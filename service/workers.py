"""Run CPU-heavy work off the event loop, in daemon threads, with a time limit.

Daemon threads let the server stop promptly even while a computation that cannot be interrupted
(a generator call) is still running; its result is then discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def start_in_thread(fn: Callable[[], T], name: str = "as-worker") -> concurrent.futures.Future[T]:
    """Start ``fn()`` in a new daemon thread; the future holds its result or exception."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine, which decides
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


async def wait_with_timeout(future: concurrent.futures.Future[T], timeout_s: float) -> T:
    """Await ``future`` for at most ``timeout_s`` seconds.

    Raises:
        TimeoutError: the time limit passed (the computation goes on in its thread).
    """
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
