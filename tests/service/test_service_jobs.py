"""Durable jobs: 202 + polling + result, and no accepted job lost across a server crash/restart."""

from __future__ import annotations

import time

import httpx
import pytest

from adjoint_sampling.service.job_store import JobStore
from adjoint_sampling.service.testing import start_server

# about 0.8 s per molecule (GFN2-xTB relaxation of 2 conformers): slow enough to crash mid-job
SLOW_MOLECULE = {"smiles": "CCCCO"}


def _wait_status(client: httpx.Client, job_id: str, statuses: set[str], timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.get(f"/v1/jobs/{job_id}").json()
        if info["status"] in statuses:
            return info
        assert time.monotonic() < deadline, f"job {job_id} stuck in {info}"
        time.sleep(0.1)


def test_job_lifecycle_and_restart_survival(tmp_path):
    workdir = tmp_path / "jobs"
    settings = {"AS_JOB_WORKERS": "1", "AS_JOB_MAX_ATTEMPTS": "2"}
    first = start_server(workdir, settings)
    try:
        with httpx.Client(base_url=first.base_url, timeout=30) as client:
            quick = client.post(
                "/v1/jobs",
                json={"molecules": [{"smiles": "CCO"}, {"smiles": "C1CC"}], "n_conformers": 2, "format": "sdf"},
            )
            assert quick.status_code == 202, quick.text
            quick_id = quick.json()["id"]
            assert quick.headers["location"] == f"/v1/jobs/{quick_id}"
            done = _wait_status(client, quick_id, {"succeeded"})
            assert done["progress"] == {"molecules_done": 2, "molecules_total": 2}
            assert done["result_url"] == f"/v1/jobs/{quick_id}/result"
            quick_result = client.get(done["result_url"]).json()
            assert [m["status"] for m in quick_result["molecules"]] == ["ok", "failed"]
            assert quick_result["molecules"][1]["error"]["reason"] == "invalid_smiles"

            slow = client.post(
                "/v1/jobs", json={"molecules": [SLOW_MOLECULE] * 3, "n_conformers": 2, "relax": "xtb", "seed": 5}
            ).json()
            queued = client.post("/v1/jobs", json={"molecules": [{"smiles": "CCN"}], "n_conformers": 2}).json()
            running = _wait_status(client, slow["id"], {"running"})
            assert running["attempts"] == 1
            not_ready = client.get(f"/v1/jobs/{slow['id']}/result")
            assert not_ready.status_code == 409 and not_ready.json()["error"]["reason"] == "not_finished"
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{slow['id']}").json()["progress"]["molecules_done"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.get(f"/v1/jobs/{queued['id']}").json()["status"] == "queued"
    finally:
        first.stop(kill=True)  # a crash: no chance to clean up

    second = start_server(workdir, settings)
    try:
        with httpx.Client(base_url=second.base_url, timeout=30) as client:
            # the finished result is still downloadable, unchanged
            assert client.get(f"/v1/jobs/{quick_id}/result").json() == quick_result
            # the interrupted job runs again (second attempt) and the queued one runs too
            redone = _wait_status(client, slow["id"], {"succeeded", "failed"})
            assert redone["status"] == "succeeded" and redone["attempts"] == 2
            result = client.get(f"/v1/jobs/{slow['id']}/result").json()
            assert result["num_ok"] == 3
            assert all(m["result"]["energy_model"] == "xtb" for m in result["molecules"])
            assert _wait_status(client, queued["id"], {"succeeded"})["attempts"] == 1
            assert _error_reason(client.get("/v1/jobs/0123"), 404) == "not_found"
            assert _error_reason(client.get("/v1/jobs/0123/result"), 404) == "not_found"
    finally:
        second.stop()


def _error_reason(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["reason"]


def test_store_fails_a_job_interrupted_too_often(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job_id = store.create({"molecules": [{"smiles": "C"}]}, 1)
    other = store.create({"molecules": [{"smiles": "CC"}]}, 1)
    assert store.claim_next().id == job_id
    assert store.recover(max_attempts=2) == (1, 0)
    assert store.get(job_id).status == "queued"
    assert store.claim_next().id == job_id  # oldest first
    assert store.get(job_id).attempts == 2
    store.close()

    reopened = JobStore(tmp_path / "jobs.sqlite3")
    assert reopened.recover(max_attempts=2) == (0, 1)
    failed = reopened.get(job_id)
    assert failed.status == "failed" and failed.error_reason == "interrupted"
    assert "2 time(s)" in failed.error_message and failed.finished_at is not None
    assert reopened.get(other).status == "queued"
    reopened.finish(other, {"num_ok": 1})
    assert reopened.result(other) == {"num_ok": 1} and reopened.get(other).status == "succeeded"
    assert reopened.get("missing") is None and reopened.result("missing") is None


def test_failed_job_reports_the_reason_over_http(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job_id = store.create({"molecules": [{"smiles": "C"}], "n_conformers": 1}, 1)
    store.claim_next()
    store.fail(job_id, "interrupted", "the server stopped while this job was running, 2 time(s)")
    store.close()
    proc = start_server(tmp_path, {"AS_JOB_MAX_ATTEMPTS": "2"})
    try:
        with httpx.Client(base_url=proc.base_url, timeout=30) as client:
            info = client.get(f"/v1/jobs/{job_id}").json()
            assert info["status"] == "failed" and info["error"]["reason"] == "interrupted"
            response = client.get(f"/v1/jobs/{job_id}/result")
            assert response.status_code == 409 and response.json()["error"]["reason"] == "job_failed"
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "body,field,reason",
    [
        ({"molecules": "CCO"}, "molecules", "list_type"),
        ({"molecules": [{"smiles": "CCO"}], "n_conformers": 10**6}, "n_conformers", "above_cap"),
    ],
)
def test_bad_job_requests_are_422(tmp_path_factory, body, field, reason):
    # validation happens before anything is stored: use an in-process app (no server needed)
    from fastapi.testclient import TestClient

    from adjoint_sampling.service.app import create_app
    from adjoint_sampling.service.settings import ServiceSettings

    settings = ServiceSettings(model="etkdg", db_path=tmp_path_factory.mktemp("bad-jobs") / "jobs.sqlite3")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 422
        assert (response.json()["error"]["field"], response.json()["error"]["reason"]) == (field, reason)
