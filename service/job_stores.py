"""Open the job store the settings ask for: PostgreSQL (``AS_DB_URL``) or the SQLite file (``AS_DB_PATH``)."""

from __future__ import annotations

from adjoint_sampling.service.job_store import JobStore, JobStoreProtocol
from adjoint_sampling.service.settings import ServiceSettings


def open_job_store(settings: ServiceSettings) -> JobStoreProtocol:
    """PostgreSQL when ``settings.db_url`` is set (it wins over ``db_path``), else the SQLite file.

    Raises:
        ConfigError: the PostgreSQL URL is malformed, the server cannot be reached or its schema is newer.
    """
    if settings.db_url:
        from adjoint_sampling.service.job_store_postgres import PostgresJobStore  # psycopg only when used

        return PostgresJobStore(settings.db_url, max_attempts=settings.job_max_attempts)
    return JobStore(settings.db_path)
