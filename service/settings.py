"""Service settings, read from environment variables with documented defaults.

=================================  ==========================  =====================================
variable                           default                     meaning
=================================  ==========================  =====================================
``AS_MODEL``                       shipped model or ``etkdg``  ``etkdg`` (RDKit ETKDGv3 baseline) or
                                                               a checkpoint path; unset: the shipped
                                                               ``models/shipped/default.pt`` if it
                                                               exists, else ``etkdg``
``AS_ENERGY_MODEL``                shipped ``energy.pt``       GNN energy checkpoint of ``relax:
                                                               gnn`` (default: the shipped
                                                               ``models/shipped/energy.pt``)
``AS_HOST``                        ``127.0.0.1``               bind address
``AS_PORT``                        ``8000``                    bind port
``AS_DB_PATH``                     ``./as_service.sqlite3``    SQLite file of jobs and results
``AS_DB_URL``                      unset                       ``postgresql://user@host:port/db``:
                                                               jobs in PostgreSQL, one queue shared
                                                               by many servers and workers (wins
                                                               over ``AS_DB_PATH``)
``AS_MAX_CONFORMERS``              ``100``                     cap on ``n_conformers``
``AS_MAX_SMILES_LENGTH``           ``500``                     characters per SMILES
``AS_MAX_ATOMS``                   ``150``                     atoms per molecule, hydrogens included
``AS_MAX_BATCH_MOLECULES``         ``20``                      molecules per synchronous batch
``AS_MAX_JOB_MOLECULES``           ``200``                     molecules per job
``AS_MAX_BODY_BYTES``              ``65536``                   request body size (larger: 413)
``AS_REQUEST_TIMEOUT_S``           ``60``                      time limit of a synchronous request
                                                               (exceeded: 504, reason ``timeout``)
``AS_JOB_MOLECULE_TIMEOUT_S``      ``600``                     time limit per molecule in a job
``AS_MAX_CONCURRENCY``             ``2``                       synchronous requests computing at once
                                                               (more: 503 with ``Retry-After``)
``AS_RETRY_AFTER_S``               ``2``                       value of ``Retry-After`` on 503
``AS_JOB_WORKERS``                 ``1``                       jobs computed at once (``0``: this
                                                               server only queues; needs
                                                               ``AS_DB_URL`` and workers)
``AS_JOB_LEASE_S``                 ``30``                      PostgreSQL job lease, renewed while
                                                               computing; an expired lease (dead
                                                               worker) lets another claim the job
``AS_MAX_QUEUED_JOBS``             ``100``                     queued jobs (more: 503)
``AS_JOB_MAX_ATTEMPTS``            ``2``                       runs of a job interrupted by restarts
                                                               before it is marked failed
``AS_WARMUP_SMILES``               ``CCO``                     molecule generated once at start-up
``AS_WORKERS``                     usable cores                worker processes of the synchronous routes;
                                                               ``0``: worker threads in the server process
=================================  ==========================  =====================================
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.core.errors import ConfigError

ENV_PREFIX = "AS_"
_MAY_BE_ZERO = {"job_workers", "workers"}
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class ServiceSettings:
    """All knobs of the service (see the module docstring for the environment variables)."""

    model: str | None = None
    energy_model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    db_path: Path = Path("as_service.sqlite3")
    db_url: str | None = None
    max_conformers: int = 100
    max_smiles_length: int = 500
    max_atoms: int = 150
    max_batch_molecules: int = 20
    max_job_molecules: int = 200
    max_body_bytes: int = 65536
    request_timeout_s: float = 60.0
    job_molecule_timeout_s: float = 600.0
    max_concurrency: int = 2
    retry_after_s: int = 2
    job_workers: int = 1
    max_queued_jobs: int = 100
    job_max_attempts: int = 2
    job_lease_s: float = 30.0
    warmup_smiles: str = "CCO"
    workers: int = field(default_factory=available_cores)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and f.name != "port":
                if not math.isfinite(value) or value < 0 or (value == 0 and f.name not in _MAY_BE_ZERO):
                    raise ConfigError(f"{env_name(f.name)} must be a positive finite number, got {value}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{env_name('port')} must be in 0..65535, got {self.port}")
        if self.db_url is not None and not self.db_url.startswith(_POSTGRES_SCHEMES):
            raise ConfigError(f"{env_name('db_url')} must be a postgresql://user@host:port/db URL")
        if self.job_workers == 0 and self.db_url is None:
            raise ConfigError(f"{env_name('job_workers')}=0 needs {env_name('db_url')} (workers elsewhere compute)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ServiceSettings:
        """Settings from ``AS_*`` variables of ``environ`` (default ``os.environ``); ``overrides``
        (non-``None`` values, e.g. from CLI flags) win over the environment.

        Raises:
            ConfigError: a variable does not parse as its type or is out of range (names it).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(f, raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(cls(), **values)


def env_name(field_name: str) -> str:
    """Environment variable of a settings field, e.g. ``max_atoms`` -> ``AS_MAX_ATOMS``."""
    return ENV_PREFIX + field_name.upper()


def _parse(f: dataclasses.Field, raw: str) -> object:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{env_name(f.name)}={raw!r} is not a valid {kind}") from None
    return raw
