"""Static checks of ``compose.yaml`` (no Docker engine runs here): PostgreSQL with a volume and a health
check, API servers that only queue jobs and workers that compute them, from one image, wired to the
PostgreSQL service and started once it is healthy."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

from adjoint_sampling.core.paths import REPO_ROOT  # noqa: E402

COMPOSE = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def _replicas(service: dict) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_services_exist():
    assert {"postgres", "api", "worker"} <= set(SERVICES)


def test_postgres_is_the_official_image_with_a_volume_and_a_healthcheck():
    postgres = SERVICES["postgres"]
    assert postgres["image"].split(":")[0] in ("postgres", "library/postgres", "docker.io/library/postgres")
    mounts = [v.split(":") if isinstance(v, str) else [v["source"], v["target"]] for v in postgres["volumes"]]
    named = COMPOSE.get("volumes", {})
    assert any(target == "/var/lib/postgresql/data" and source in named for source, target, *_ in mounts)
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_api_and_worker_share_one_build_and_point_at_postgres():
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert api["build"] == worker["build"] and api["build"]["context"] == "."
    assert (REPO_ROOT / api["build"].get("dockerfile", "Dockerfile")).is_file()
    assert api.get("image") == worker.get("image")
    env = _env(SERVICES["postgres"])
    for service in (api, worker):
        url = urlsplit(_env(service)["AS_DB_URL"])
        assert url.scheme in ("postgresql", "postgres")
        assert url.hostname == "postgres" and (url.port or 5432) == 5432
        assert url.username == env["POSTGRES_USER"] and url.path.lstrip("/") == env["POSTGRES_DB"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_servers_only_queue_and_workers_compute():
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert _env(api)["AS_JOB_WORKERS"] == "0"
    assert _replicas(api) >= 2 and _replicas(worker) >= 2
    entrypoint = worker["entrypoint"]
    assert (entrypoint if isinstance(entrypoint, list) else entrypoint.split()) == ["adjoint-sampling", "worker"]
    assert "entrypoint" not in api  # the image's `adjoint-sampling serve`


def test_api_and_worker_have_healthchecks():
    assert "adjoint_sampling.service.healthcheck" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "AS_DB_URL" in " ".join(SERVICES["worker"]["healthcheck"]["test"])  # no HTTP port on a worker
