"""Run the service as a real uvicorn process on 127.0.0.1 (for tests, benchmarks and checks).

``TEST_MODEL`` is the generator test servers load: change this one line (or set
``AS_TEST_MODEL``) to test against a trained checkpoint instead of the ETKDG baseline.

Test servers run as the product does (``AS_WORKERS`` unset: one worker process per usable core);
a test that checks the thread fallback sets ``AS_WORKERS=0`` in ``settings``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TEST_MODEL: str = os.environ.get("AS_TEST_MODEL", "etkdg")


@dataclass
class ServerProcess:
    """A running ``adjoint-sampling serve`` child process."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, kill: bool = False, timeout_s: float = 20.0) -> int:
        """Stop the server: SIGTERM (graceful) or SIGKILL (a crash); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return int(self.process.returncode)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout_s: float = 5.0) -> tuple[int, dict[str, object]]:
    """GET ``url``; returns ``(status, decoded JSON body)`` for any status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def start_server(
    workdir: Path,
    settings: dict[str, str] | None = None,
    port: int | None = None,
    ready_timeout_s: float = 90.0,
    wait_for: str = "/readyz",
) -> ServerProcess:
    """Start ``adjoint-sampling serve`` with ``AS_*`` ``settings`` and wait until ``wait_for``
    answers 200 (``/readyz``: model warmed up; ``/healthz``: HTTP is up).

    The job database defaults to ``workdir/jobs.sqlite3``; the log goes to ``workdir/server-PORT.log``.

    Raises:
        RuntimeError: the server exited or was not ready in time (the message holds its log).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "AS_MODEL": TEST_MODEL, "AS_DB_PATH": str(workdir / "jobs.sqlite3")})
    env.update(settings or {})
    log_path = workdir / f"server-{port}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adjoint_sampling.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()}")
        try:
            status, _ = get_json(f"{server.base_url}{wait_for}", timeout_s=2.0)
            if status == 200:
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    server.stop(kill=True)
    raise RuntimeError(f"server not ready after {ready_timeout_s} s:\n{server.log_text()}")
