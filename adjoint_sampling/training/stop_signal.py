"""SIGTERM as a request to stop cleanly: a training loop saves at its next step and returns, instead
of dying between checkpoints (cluster schedulers and ``kill`` send SIGTERM first)."""

from __future__ import annotations

import logging
import signal
from typing import Any

__all__ = ["StopOnSigterm"]

log = logging.getLogger(__name__)


class StopOnSigterm:
    """Context manager: inside it, SIGTERM sets :attr:`requested` (the loop checks it after each step)
    instead of ending the process; the previous handler is restored on exit. Outside the main thread,
    where handlers cannot be installed, it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnSigterm:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.warning("signal %d: saving after the current step and stopping", signum)
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
