"""Worker processes of the synchronous routes (``AS_WORKERS``): separate processes, a request past
its time limit has its process killed and replaced (its slot free at once), results identical to
the in-process path."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import post_batch_past_the_limit

from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.generation.loading import load_generator
from adjoint_sampling.service.generation import generate, process_molecule, validate_molecule
from adjoint_sampling.service.schemas import BatchRequest, ConformerRequest, ConformerResult, MoleculeOutcome
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.testing import TEST_MODEL, start_server

# about 2 s of GFN2-xTB relaxation on one core: far over the time limit of this server
HEAVY = {"smiles": "CCCCCCCCCC", "n_conformers": 4, "relax": "xtb"}
LIGHT = {"smiles": "CCO", "n_conformers": 1}
TIME_LIMIT_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # one concurrency slot: a 504 that kept its slot would make the next request a 503
    proc = start_server(
        tmp_path_factory.mktemp("workers"),
        {"AS_WORKERS": "2", "AS_MAX_CONCURRENCY": "1", "AS_REQUEST_TIMEOUT_S": str(TIME_LIMIT_S)},
    )
    yield proc
    proc.stop()


def _metrics(client) -> dict[str, float]:
    """``name{labels}`` -> value of every sample on ``/metrics``."""
    samples = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _pids(client) -> dict[str, int]:
    return {k.split('"')[1]: int(v) for k, v in _metrics(client).items() if k.startswith("as_worker_pid{")}


def _wait_workers_ready(client, count: int = 2, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _metrics(client).get("as_workers_ready") != count:
        assert time.monotonic() < deadline, f"never {count} workers ready"
        time.sleep(0.05)


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        pid = int(fields[1])  # ppid
        chain.append(pid)
    return chain


def test_two_workers_run_in_two_processes_of_the_server(server, client):
    _wait_workers_ready(client)
    for seed in range(4):  # idle workers are taken in turn
        assert client.post("/v1/conformers", json={**LIGHT, "seed": seed}).status_code == 200
    samples = _metrics(client)
    assert samples['as_worker_tasks_total{worker="0"}'] >= 1 and samples['as_worker_tasks_total{worker="1"}'] >= 1
    pids = _pids(client)
    assert len(set(pids.values())) == 2 and server.process.pid not in pids.values()
    for pid in pids.values():
        assert server.process.pid in _ancestors(pid)  # forkserver children of the server


def test_request_past_its_limit_frees_its_slot_at_once_and_its_process_is_replaced(client):
    _wait_workers_ready(client)
    restarts = _metrics(client).get('as_worker_restarts_total{reason="timeout"}', 0.0)
    pids_before = _pids(client)
    busy: dict[str, float] = {}
    responses: dict[str, httpx.Response] = {}
    heavy = threading.Thread(target=lambda: responses.setdefault("heavy", client.post("/v1/conformers", json=HEAVY)))
    heavy.start()
    while not busy:
        busy = {k: v for k, v in _metrics(client).items() if k.startswith("as_worker_busy{") and v == 1}
        time.sleep(0.02)
    killed_slot = next(iter(busy)).split('"')[1]
    heavy.join()
    freed_at = time.monotonic()
    slow = responses["heavy"]
    assert slow.status_code == 504, slow.text
    error = slow.json()["error"]
    assert error["reason"] == "timeout" and "POST /v1/jobs" in error["message"]

    light = client.post("/v1/conformers", json=LIGHT)
    assert light.status_code == 200, light.text  # not 503: the slot of the 504 is free
    assert time.monotonic() - freed_at < 1.0

    assert _metrics(client)['as_worker_restarts_total{reason="timeout"}'] == restarts + 1
    _wait_workers_ready(client)
    pids_after = _pids(client)
    assert pids_after[killed_slot] != pids_before[killed_slot]
    assert not Path(f"/proc/{pids_before[killed_slot]}/cmdline").exists() or _is_zombie(pids_before[killed_slot])
    for seed in range(4):
        assert client.post("/v1/conformers", json={**LIGHT, "seed": seed}).status_code == 200
    assert _metrics(client)[f'as_worker_tasks_total{{worker="{killed_slot}"}}'] >= 1


def test_batch_past_the_time_limit_returns_what_finished_and_frees_its_slot(client):
    _wait_workers_ready(client)
    post_batch_past_the_limit(client, HEAVY["smiles"], TIME_LIMIT_S)
    after = time.monotonic()
    assert client.post("/v1/conformers", json=LIGHT).status_code == 200
    assert time.monotonic() - after < 1.0


def test_results_are_identical_to_the_in_process_path(client):
    _wait_workers_ready(client)
    settings = ServiceSettings(model=TEST_MODEL)
    generator = load_generator(TEST_MODEL)
    for body in (
        {"smiles": "CC(=O)Nc1ccc(O)cc1", "n_conformers": 5, "seed": 7, "relax": "mmff", "sort": True},
        {"smiles": "OCCN", "n_conformers": 3, "seed": 3, "format": "sdf"},
    ):
        request = ConformerRequest.model_validate(body)
        local = generate(generator, request, request, parsed=validate_molecule(request, settings))
        expected = ConformerResult.model_validate(local).model_dump(mode="json", exclude={"timings"})
        served = client.post("/v1/conformers", json=body)
        assert served.status_code == 200, served.text
        assert {k: v for k, v in served.json().items() if k != "timings"} == expected

    batch = {"molecules": [{"smiles": "CCO"}, {"smiles": "C1CC"}, {"smiles": "c1ccccc1O"}], "n_conformers": 3, "seed": 1}
    request = BatchRequest.model_validate(batch)
    served = client.post("/v1/conformers/batch", json=batch)
    assert served.status_code == 200, served.text
    for index, (molecule, got) in enumerate(zip(request.molecules, served.json()["molecules"], strict=True)):
        outcome = MoleculeOutcome.model_validate(process_molecule(generator, index, molecule, request, settings))
        expected = outcome.model_dump(mode="json")
        for o in (expected, got):
            if o["result"] is not None:
                o["result"].pop("timings")
        assert got == expected


def test_workers_setting_defaults_to_the_usable_cores_and_zero_means_threads():
    assert ServiceSettings().workers == available_cores()
    assert ServiceSettings.from_env({"AS_WORKERS": "0"}).workers == 0
    assert ServiceSettings.from_env({"AS_WORKERS": "3"}, workers=1).workers == 1


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
