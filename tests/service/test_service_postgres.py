"""One job queue in PostgreSQL for many API servers and `adjoint-sampling worker` processes (AS_DB_URL).

A throw-away PostgreSQL server is started for this module (initdb + pg_ctl on a free port, unix
socket in the data folder, run as the ``postgres`` user when the tests run as root). Nothing is
skipped: if PostgreSQL is missing or cannot start, the tests fail and say why (``make postgres``).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from adjoint_sampling.service.job_store_postgres import PostgresJobStore, head_revision
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.testing import free_port, start_server

from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.errors import ConfigError

SLOW_MOLECULE = {"smiles": "CCCCO"}  # about 0.8 s per molecule with GFN2-xTB relaxation of 2 conformers


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL server (superuser ``postgres``, trust authentication)."""

    port: int
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _pg_binary(name: str) -> str:
    """``name`` from PATH or Debian's /usr/lib/postgresql/<version>/bin (newest); fails the test if absent."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True)),
        None,
    )
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed: run `make postgres` (apt-get install -y postgresql)")
    return found


def _as_postgres_user(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *argv]
    return ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"PostgreSQL {what} failed ({result.returncode}): {' '.join(argv)}\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a temporary folder for this module; stop and delete it after."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if os.geteuid() == 0:
        # pytest's tmp_path lies under a root-only folder; the postgres user needs a folder of its own.
        base = Path(tempfile.mkdtemp(prefix="as-pg-"))
        shutil.chown(base, "postgres", "postgres")
    else:
        base = tmp_path_factory.mktemp("postgres")
    data_dir, port = base / "data", free_port()
    try:
        _run(_as_postgres_user([initdb, "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                "--no-sync"]), "initdb")
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        _run(_as_postgres_user([pg_ctl, "-D", str(data_dir), "-l", str(base / "server.log"), "-o", options,
                                "-w", "-t", "60", "start"]), f"start (log: {(base / 'server.log')})")
        server = PostgresServer(port=port, data_dir=data_dir)
        try:
            with psycopg.connect(server.url(), connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            pytest.fail(f"PostgreSQL started but does not answer on 127.0.0.1:{port}: {exc}")
        yield server
    finally:
        if (data_dir / "postmaster.pid").exists():
            subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# --- the store ---------------------------------------------------------------------------------


def test_schema_is_migrated_by_alembic_once_and_a_newer_one_is_refused(postgres):
    url = postgres.new_database()
    PostgresJobStore(url).close()
    store = PostgresJobStore(url)  # again: nothing to do
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        conn.execute("UPDATE alembic_version SET version_num = 'from_a_newer_version'")
    store.close()
    with pytest.raises(ConfigError, match="does not know") as newer:
        PostgresJobStore(url)
    assert "from_a_newer_version" in str(newer.value) and "\n" not in str(newer.value)


def test_servers_starting_together_migrate_once(postgres):
    url = postgres.new_database()
    stores, errors = [], []

    def open_store() -> None:
        try:
            stores.append(PostgresJobStore(url))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(stores) == 4
    job = stores[0].create({"smiles": ["C"]}, 1)
    assert all(store.get(job).status == "queued" for store in stores)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    for store in stores:
        store.close()


def test_a_database_from_before_alembic_is_upgraded_with_its_jobs(postgres):
    """The previous store made its tables itself and kept a ``schema_version`` table: the first
    migration adopts such a database, keeps its jobs and drops ``schema_version``."""
    url = postgres.new_database()
    PostgresJobStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:  # turn it into what the previous version left
        conn.execute("DROP TABLE alembic_version")
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO jobs (id, status, request, molecules_total, created_at) "
                     "VALUES ('earlier', 'queued', '{\"smiles\": [\"C\"]}', 1, 0)")
    store = PostgresJobStore(url)
    assert store.get("earlier").status == "queued"
    with psycopg.connect(url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "schema_version" not in tables and {"jobs", "job_events", "alembic_version"} <= tables
    store.close()


def test_concurrent_claims_never_hand_out_a_job_twice(postgres):
    url = postgres.new_database()
    store = PostgresJobStore(url)
    job_ids = {store.create({"molecules": [{"smiles": "C"}]}, 1) for _ in range(60)}
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def claimer(name: str) -> None:
        own = PostgresJobStore(url)  # its own connection, like another worker
        mine = claimed.setdefault(name, [])
        barrier.wait()
        while (job := own.claim_next(name, 60.0)) is not None:
            mine.append(job.id)
        own.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == sorted(job_ids)  # each job exactly once
    assert store.count("running") == 60 and store.count("queued") == 0
    store.close()


def test_stale_lease_is_reclaimed_and_only_the_owner_finishes(postgres):
    store = PostgresJobStore(postgres.new_database(), max_attempts=2)
    job_id = store.create({"molecules": [{"smiles": "C"}]}, 1)
    assert store.claim_next("dead", 0.3).attempts == 1
    assert store.claim_next("alive", 0.3) is None  # leased, not expired
    assert store.finish(job_id, {"by": "alive"}, "alive") is False  # a non-owner cannot finish
    time.sleep(0.5)
    taken = store.claim_next("alive", 30.0)
    assert taken.id == job_id and taken.attempts == 2 and taken.status == "running"
    assert store.renew(job_id, "dead", 30.0) is False
    assert store.set_progress(job_id, 1, "dead") is False
    assert store.finish(job_id, {"by": "dead"}, "dead") is False
    assert store.fail(job_id, "internal_error", "x", "dead") is False
    assert store.renew(job_id, "alive", 30.0) is True
    assert store.finish(job_id, {"by": "alive"}, "alive") is True
    assert store.finish(job_id, {"by": "again"}, "alive") is False  # finished exactly once
    assert store.get(job_id).status == "succeeded" and store.result(job_id) == {"by": "alive"}

    doomed = store.create({"molecules": [{"smiles": "CC"}]}, 1)
    store.claim_next("a", 0.2)
    time.sleep(0.3)
    assert store.claim_next("b", 0.2).attempts == 2
    time.sleep(0.3)
    assert store.claim_next("c", 0.2) is None  # attempts used up: failed, not claimed
    failed = store.get(doomed)
    assert failed.status == "failed" and failed.error_reason == "interrupted" and "2 time(s)" in failed.error_message
    store.close()


def test_release_requeues_and_recover_leaves_live_leases(postgres):
    store = PostgresJobStore(postgres.new_database())
    live = store.create({"molecules": [{"smiles": "C"}]}, 1)
    stale = store.create({"molecules": [{"smiles": "CC"}]}, 1)
    store.claim_next("w1", 60.0)
    store.claim_next("w2", 0.1)
    time.sleep(0.2)
    assert store.recover(max_attempts=2) == (1, 0)
    assert store.get(live).status == "running" and store.get(stale).status == "queued"
    store.release(live, "someone-else")
    assert store.get(live).status == "running"
    store.release(live, "w1")
    assert store.get(live).status == "queued"
    store.close()


def test_bad_database_settings_are_one_line_errors(postgres):
    with pytest.raises(ConfigError, match="AS_DB_URL must be a postgresql://"):
        ServiceSettings.from_env({"AS_DB_URL": "mysql://x@y/z"})
    with pytest.raises(ConfigError, match="AS_JOB_WORKERS=0 needs AS_DB_URL"):
        ServiceSettings.from_env({"AS_JOB_WORKERS": "0"})
    assert ServiceSettings.from_env({"AS_JOB_WORKERS": "0", "AS_DB_URL": postgres.url()}).job_workers == 0
    with pytest.raises(ConfigError, match="cannot connect to PostgreSQL") as unreachable:
        PostgresJobStore(f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x", connect_timeout_s=2)
    assert "secret" not in str(unreachable.value) and "\n" not in str(unreachable.value)
    with pytest.raises(ConfigError, match="not a valid PostgreSQL URL"):
        PostgresJobStore("postgresql://u@h:notaport/db")
    env = {k: v for k, v in os.environ.items() if k != "AS_DB_URL"}
    result = subprocess.run([sys.executable, "-m", "adjoint_sampling.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "AS_DB_URL" in result.stderr and "Traceback" not in result.stderr
    assert main(["worker", "--db-url", "sqlite:///x"]) == 2
    serve_env = {**env, "AS_DB_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x", "AS_MODEL": "etkdg"}
    result = subprocess.run([sys.executable, "-m", "adjoint_sampling.cli", "serve"], env=serve_env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "cannot connect to PostgreSQL" in result.stderr and "Traceback" not in result.stderr


# --- two API servers, two workers, one killed mid-job ----------------------------------------------


def _start_worker(workdir: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = workdir / f"worker-{name}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "adjoint_sampling.cli", "worker"], env=env, stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while "job slot(s)" not in log_path.read_text(errors="replace"):
        assert process.poll() is None, f"worker {name} exited:\n{log_path.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"worker {name} did not start:\n{log_path.read_text(errors='replace')}"
        time.sleep(0.1)
    return process, log_path


def test_two_servers_two_workers_survive_a_killed_worker(postgres, tmp_path):
    url = postgres.new_database()
    lease_s = 3.0
    common = {"AS_DB_URL": url, "AS_MODEL": "etkdg", "AS_JOB_LEASE_S": str(lease_s), "AS_JOB_MAX_ATTEMPTS": "3"}
    servers = [start_server(tmp_path / f"api{i}", {**common, "AS_JOB_WORKERS": "0"}) for i in range(2)]
    worker_env = {**os.environ, **common, "OMP_NUM_THREADS": "1"}
    workers = []
    try:
        workers = [_start_worker(tmp_path, name, worker_env) for name in ("a", "b")]
        (victim, _), (survivor, survivor_log) = workers
        clients = [httpx.Client(base_url=server.base_url, timeout=30) for server in servers]
        job_ids = []
        for i in range(8):
            body = {"molecules": [SLOW_MOLECULE] * 3, "n_conformers": 2, "relax": "xtb", "seed": i}
            response = clients[i % 2].post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["id"])

        # SIGKILL worker a in the middle of a job (a molecule done, not all)
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while True:
                row = conn.execute(
                    "SELECT id, lease_owner FROM jobs WHERE status = 'running' AND lease_owner LIKE %s "
                    "AND molecules_done >= 1 AND molecules_done < molecules_total",
                    (f"%:{victim.pid}:%",),
                ).fetchone()
                if row is not None:
                    break
                assert time.monotonic() < deadline, "worker a never got a job half done"
                time.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            victim.wait(30)
            killed_job, victim_owner = row
            lease_end = conn.execute("SELECT lease_expires_at FROM jobs WHERE id = %s", (killed_job,)).fetchone()[0]

        deadline = time.monotonic() + 240
        for job_id in job_ids:
            while (info := clients[0].get(f"/v1/jobs/{job_id}").json())["status"] != "succeeded":
                assert info["status"] in {"queued", "running"}, info
                assert time.monotonic() < deadline, f"job {job_id} stuck: {info}\n{survivor_log.read_text()}"
                time.sleep(0.2)

        for job_id in job_ids:
            results = [client.get(f"/v1/jobs/{job_id}/result") for client in clients]
            assert all(r.status_code == 200 for r in results), [r.text for r in results]
            assert results[0].json() == results[1].json()
            result = results[0].json()
            assert result["num_ok"] == 3 and len(result["molecules"]) == 3
            assert all(m["status"] == "ok" and m["result"]["num_returned"] == 2 for m in result["molecules"])
            assert clients[1].get(f"/v1/jobs/{job_id}").json()["progress"]["molecules_done"] == 3

        with psycopg.connect(url) as conn:
            finished = dict(conn.execute(
                "SELECT job_id, count(*) FROM job_events WHERE event = 'succeeded' GROUP BY job_id").fetchall())
            assert finished == {job_id: 1 for job_id in job_ids}  # every job finished exactly once
            claims = conn.execute(
                "SELECT owner, at FROM job_events WHERE job_id = %s AND event = 'claimed' ORDER BY id", (killed_job,)
            ).fetchall()
            attempts, owner = conn.execute(
                "SELECT attempts, lease_owner FROM jobs WHERE id = %s", (killed_job,)).fetchone()
        assert claims[0][0] == victim_owner and len(claims) == attempts >= 2
        assert f":{survivor.pid}:" in owner and claims[-1][0] == owner
        assert claims[1][1] >= lease_end  # taken over only after the dead worker's lease expired

        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0  # stops cleanly
        assert "stopping" in survivor_log.read_text()
        for client in clients:
            client.close()
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        for server in servers:
            server.stop()
