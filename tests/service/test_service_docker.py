"""Static checks of the Dockerfile (no Docker engine runs here): slim base, non-root user, the
shipped model and web assets inside, HEALTHCHECK on /healthz, `adjoint-sampling serve` entry point."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys

from adjoint_sampling.core.paths import REPO_ROOT

ROOT = REPO_ROOT
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORED = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]


def _instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def _ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern.lstrip("*/")) or fnmatch.fnmatch(path, pattern) for pattern in IGNORED)


def test_runtime_stage_is_slim_and_non_root():
    bases = _instructions("FROM")
    assert bases[-1].startswith("python:3.11-slim")
    users = _instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER ") > DOCKERFILE.index("pip install")


def test_entrypoint_and_healthcheck():
    assert json.loads(_instructions("ENTRYPOINT")[-1]) == ["adjoint-sampling", "serve"]
    health = _instructions("HEALTHCHECK")[-1]
    assert json.loads(health.split("CMD", 1)[1]) == ["python", "-m", "adjoint_sampling.service.healthcheck"]
    assert "AS_HOST=0.0.0.0" in DOCKERFILE and "EXPOSE 8000" in DOCKERFILE


def test_copied_sources_exist_and_are_not_ignored():
    copies = [c for c in _instructions("COPY") if not c.startswith("--from")]
    sources = [s for c in copies for s in c.split()[:-1]]
    assert {"adjoint_sampling/", "energy/", "models/", "service/", "benchmarks/", "pyproject.toml"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/")), source
    # the web assets come from the npm stage, pinned by the committed lock file
    assert (ROOT / "service/web/package-lock.json").is_file()
    assert any(c.startswith("--from=web /web/node_modules/ service/web/node_modules/") for c in _instructions("COPY"))
    # everything the CLI imports at start-up is inside the image
    for package in ("adjoint_sampling", "energy", "models", "service", "benchmarks"):
        assert f"COPY {package}/ {package}/" in DOCKERFILE


def test_the_health_check_imports_nothing_heavy() -> None:
    code = (
        "import sys, adjoint_sampling.service.healthcheck; "
        "print(any(m in sys.modules for m in ('torch', 'fastapi', 'rdkit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
