"""Shared checks of the service tests."""

from __future__ import annotations

import time

import httpx


def post_batch_past_the_limit(client: httpx.Client, heavy_smiles: str, time_limit_s: float) -> list[dict]:
    """POST a batch whose middle molecule cannot finish in time; check the answer comes within the limit
    with the first molecule done and the rest ``timeout``; returns the molecules."""
    body = {
        "molecules": [{"smiles": "CCO"}, {"smiles": heavy_smiles}, {"smiles": "CCN"}],
        "n_conformers": 4,
        "relax": "xtb",
    }
    start = time.monotonic()
    response = client.post("/v1/conformers/batch", json=body)
    assert time.monotonic() - start < time_limit_s + 1.5
    assert response.status_code == 200, response.text
    molecules = response.json()["molecules"]
    assert [m["status"] for m in molecules][1:] == ["failed", "failed"]
    assert [m["error"]["reason"] for m in molecules[1:]] == ["timeout", "timeout"]
    assert molecules[1]["error"]["field"] == "molecules.1"
    return molecules
