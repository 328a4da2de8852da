"""`adjoint-sampling serve`: run the conformer REST service (FastAPI + uvicorn).

Settings come from ``AS_*`` environment variables (see :mod:`service.settings`); the flags below
override the matching variable.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from adjoint_sampling.core.errors import CheckpointError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (AS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="bind port (AS_PORT, default 8000)")
    parser.add_argument("--model", help="'etkdg' or a checkpoint path (AS_MODEL, default: the shipped model)")
    parser.add_argument(
        "--energy-model", metavar="PATH",
        help="GNN energy checkpoint of relax 'gnn' (AS_ENERGY_MODEL, default: the shipped models/shipped/energy.pt)",
    )
    parser.add_argument("--db-path", type=Path, help="SQLite file of jobs and results (AS_DB_PATH)")
    parser.add_argument(
        "--workers", type=int, help="processes computing synchronous requests; 0: threads (AS_WORKERS, default: cores)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from adjoint_sampling.generation.loading import ETKDG_SPEC, resolve_model_spec
    from adjoint_sampling.generation.shipped import SHIPPED_ENERGY_MODEL_PATH, load_energy_model
    from adjoint_sampling.service.app import create_app
    from adjoint_sampling.service.job_stores import open_job_store
    from adjoint_sampling.service.settings import ServiceSettings

    settings = ServiceSettings.from_env(
        host=args.host, port=args.port, model=args.model, db_path=args.db_path, workers=args.workers,
        energy_model=args.energy_model,
    )
    spec = resolve_model_spec(settings.model)
    if spec.lower() != ETKDG_SPEC and not Path(spec).expanduser().is_file():
        raise CheckpointError(f"model checkpoint {spec!r} does not exist (AS_MODEL / --model; or use 'etkdg')")
    if settings.energy_model:  # a chosen energy model must load (one-line CheckpointError), before serving
        load_energy_model(settings.energy_model)
    elif not SHIPPED_ENERGY_MODEL_PATH.is_file():
        log.warning("no shipped energy model at %s: requests with relax 'gnn' will fail", SHIPPED_ENERGY_MODEL_PATH)
    if settings.db_url:  # an unreachable or malformed job database is a one-line error here, not in uvicorn's start-up
        open_job_store(settings).close()
    app = create_app(settings)
    jobs = "PostgreSQL" if settings.db_url else settings.db_path
    log.info("serving on http://%s:%d (jobs in %s)", settings.host, settings.port, jobs)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    return 0
