"""Request limits: body size (413) and the number of requests computing at once (503)."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable

from adjoint_sampling.service.errors import BodyTooLarge, error_payload
from adjoint_sampling.service.metrics import ASGIApp, Message, Scope


def body_size_limit(app: ASGIApp, max_bytes: int, on_reject: Callable[[], None] | None = None) -> ASGIApp:
    """Wrap an ASGI app so that request bodies over ``max_bytes`` get a 413 JSON error.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is
    counted while it streams and refused as soon as it passes the limit.
    """

    async def reject(send: Callable[[Message], Awaitable[None]]) -> None:
        if on_reject is not None:
            on_reject()
        body = json.dumps(
            error_payload(413, "body", "body_too_large", f"request body is larger than {max_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def wrapped(
        scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = max_bytes + 1
                if declared > max_bytes:
                    await reject(send)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await reject(send)

    return wrapped


class ConcurrencyLimiter:
    """At most ``limit`` holders at once; :meth:`try_acquire` never waits (the caller answers 503).

    A slot is released by :meth:`release`, which the caller runs when the computation has really
    finished, so work that outlived its time limit still counts against the limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        with self._lock:
            if self._in_use >= self.limit:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._in_use <= 0:
                raise RuntimeError("ConcurrencyLimiter.release() without a matching acquire")
            self._in_use -= 1
