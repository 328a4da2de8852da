"""Concurrency limit (503 + Retry-After), per-request time limit (504), job queue limit, readiness."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from service_helpers import post_batch_past_the_limit

from adjoint_sampling.service.testing import start_server

# about 2 s of GFN2-xTB relaxation on one core: far over the 0.5 s limit of this server
HEAVY = {"smiles": "CCCCCCCCCC", "n_conformers": 4, "relax": "xtb"}
LIGHT = {"smiles": "CCO", "n_conformers": 1}
TIME_LIMIT_S = 0.5
RETRY_AFTER_S = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_server(
        tmp_path_factory.mktemp("limits"),
        {
            "AS_MAX_CONCURRENCY": "1",
            "AS_WORKERS": "0",  # the thread fallback: a computation past its limit keeps its slot until it ends
            "AS_REQUEST_TIMEOUT_S": str(TIME_LIMIT_S),
            "AS_RETRY_AFTER_S": str(RETRY_AFTER_S),
            "AS_MAX_QUEUED_JOBS": "1",
        },
    )
    yield proc
    proc.stop()


def _inflight(client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("as_inflight_requests "):
            return float(line.split()[1])
    raise AssertionError("as_inflight_requests missing from /metrics")


def _wait_inflight(client, value: float, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _inflight(client) != value:
        assert time.monotonic() < deadline, f"in-flight requests never reached {value}"
        time.sleep(0.05)


def test_full_server_answers_503_with_retry_after_and_slow_request_504(client):
    responses: dict[str, httpx.Response] = {}
    heavy = threading.Thread(target=lambda: responses.setdefault("heavy", client.post("/v1/conformers", json=HEAVY)))
    heavy.start()
    _wait_inflight(client, 1)
    busy = client.post("/v1/conformers", json=LIGHT)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == str(RETRY_AFTER_S)
    assert busy.json()["error"]["reason"] == "overloaded"
    heavy.join()
    slow = responses["heavy"]
    assert slow.status_code == 504, slow.text
    error = slow.json()["error"]
    assert error["reason"] == "timeout" and "POST /v1/jobs" in error["message"]
    # the computation outlives its time limit and keeps its slot until it really ends
    assert client.post("/v1/conformers", json=LIGHT).status_code == 503
    _wait_inflight(client, 0)
    assert client.post("/v1/conformers", json=LIGHT).status_code == 200


def test_batch_past_the_time_limit_returns_what_finished(client):
    _wait_inflight(client, 0)
    post_batch_past_the_limit(client, HEAVY["smiles"], TIME_LIMIT_S)
    _wait_inflight(client, 0)


def test_job_queue_limit_is_503(client):
    first = client.post(
        "/v1/jobs", json={"molecules": [{"smiles": HEAVY["smiles"]}], "n_conformers": 4, "relax": "xtb"}
    )
    assert first.status_code == 202
    accepted = [first]
    # one worker: with the queue limit of 1 a third job cannot be queued while the first two wait or run
    for _ in range(3):
        response = client.post("/v1/jobs", json={"molecules": [{"smiles": "CCO"}], "n_conformers": 1})
        if response.status_code == 503:
            assert response.json()["error"]["reason"] == "queue_full"
            assert response.headers["retry-after"] == str(RETRY_AFTER_S)
            break
        accepted.append(response)
    else:
        pytest.fail("the job queue never filled up")
    assert len(accepted) <= 2


def test_not_ready_until_warm_up_succeeds(tmp_path):
    proc = start_server(tmp_path, {"AS_WARMUP_SMILES": "C1CC"}, wait_for="/healthz")
    try:
        with httpx.Client(base_url=proc.base_url, timeout=30) as c:
            time.sleep(0.5)
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["reason"] == "not_ready"
            refused = c.post("/v1/conformers", json=LIGHT)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
            assert c.get("/healthz").status_code == 200
    finally:
        proc.stop()
