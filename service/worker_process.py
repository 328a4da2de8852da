"""The child side of the worker pool: one process that loads the generator once and computes the
synchronous requests it is sent, one at a time (:mod:`adjoint_sampling.service.process_pool` is the
parent side).

Messages are plain picklable tuples over a :func:`multiprocessing.Pipe`:

- parent -> child: ``(kind, payload)`` with ``kind`` ``"conformers"`` (payload: a
  :class:`ConformerRequest` as a dict) or ``"batch"`` (a :class:`BatchRequest` as a dict); ``None`` stops.
- child -> parent: ``("ready", pid)`` once after loading and warming up (or ``("failed", message)``),
  then per task: ``("outcome", outcome)`` for each finished batch molecule, and last ``("result",
  value)``, ``("api_error", (status, field, reason, message))`` or ``("crash", exception name)``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from adjoint_sampling.generation.loading import load_generator
from adjoint_sampling.generation.types import ConformerGenerator, GenerationRequest
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.generation import failed_outcome, generate, process_molecule, validate_molecule
from adjoint_sampling.service.schemas import BatchRequest, ConformerRequest, MoleculeInput
from adjoint_sampling.service.settings import ServiceSettings

log = logging.getLogger(__name__)

CONFORMERS = "conformers"
BATCH = "batch"


def worker_main(conn: Connection, spec: str, settings: ServiceSettings, log_level: int, threads: int = 1) -> None:
    """Entry point of a worker process: load ``spec``, warm up, then serve tasks until the pipe closes.

    ``threads`` is the number of torch threads of this process (usable cores / workers).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s worker {os.getpid()} %(name)s: %(message)s")
    try:
        generator = load_generator(spec, settings.energy_model)
        _limit_threads(threads)
        generator.generate(GenerationRequest(smiles=settings.warmup_smiles, num_conformers=1, seed=0))
    except Exception as exc:
        log.exception("worker failed to load or warm up %s", spec)
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server went away
            return
        if message is None:
            return
        kind, payload = message
        try:
            conn.send(run_task(generator, kind, payload, settings, lambda outcome: conn.send(("outcome", outcome))))
        except OSError:  # the server went away while we computed
            return


def run_task(
    generator: ConformerGenerator,
    kind: str,
    payload: dict[str, Any],
    settings: ServiceSettings,
    send_outcome: Any,
) -> tuple[str, Any]:
    """Compute one task; returns the final message (``result``, ``api_error`` or ``crash``)."""
    try:
        if kind == CONFORMERS:
            body = ConformerRequest.model_validate(payload)
            parsed = validate_molecule(body, settings, strip_fragments=body.strip_fragments)
            return "result", generate(generator, body, body, parsed=parsed)
        if kind == BATCH:
            batch = BatchRequest.model_validate(payload)
            for index, molecule in enumerate(batch.molecules):
                send_outcome(safe_process(generator, index, molecule, batch, settings))
            return "result", None
        raise ValueError(f"unknown task kind {kind!r}")
    except ApiError as exc:
        return "api_error", (exc.status, exc.field, exc.reason, exc.message)
    except Exception as exc:
        log.exception("task %s failed unexpectedly", kind)
        return "crash", type(exc).__name__


def safe_process(
    generator: ConformerGenerator, index: int, molecule: MoleculeInput, options: BatchRequest, settings: ServiceSettings
) -> dict[str, Any]:
    """One batch molecule's outcome; a generator bug fails this molecule only (500, logged)."""
    try:
        return process_molecule(generator, index, molecule, options, settings)
    except Exception as exc:
        log.error("molecule %d (%r): unexpected %s", index, molecule.smiles, type(exc).__name__, exc_info=exc)
        return failed_outcome(
            index, molecule, ApiError(500, f"molecules.{index}", "internal_error", "internal error (logged)")
        )


def _limit_threads(threads: int) -> None:
    """Share the cores between the worker processes (if torch is loaded at all)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, threads))
