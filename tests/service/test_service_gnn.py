"""``relax: gnn`` through the REST service: the shipped GNN energy model end to end, refused elements
and charges (422 with the reason), the large-molecule warning and ``AS_ENERGY_MODEL``."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from molecular_helpers import write_tiny_gnn_checkpoint
from rdkit import Chem

from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.generation.shipped import load_energy_model
from adjoint_sampling.service.testing import start_server

SMILES = "CCCO"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The test model (ETKDG) with the shipped energy model."""
    proc = start_server(tmp_path_factory.mktemp("gnn"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tiny_client(tmp_path_factory):
    """A server whose ``AS_ENERGY_MODEL`` is a tiny checkpoint: H C N O, charges -1..1, at most 10 atoms."""
    folder = tmp_path_factory.mktemp("gnn_tiny")
    checkpoint = write_tiny_gnn_checkpoint(folder / "tiny.pt", max_atoms=10)
    proc = start_server(folder, {"AS_ENERGY_MODEL": str(checkpoint)})
    with httpx.Client(base_url=proc.base_url, timeout=60) as client:
        yield client
    proc.stop()


def _error(response: httpx.Response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return response.json()["error"]


def test_relax_gnn_moves_conformers_downhill_under_the_shipped_model(client):
    body = {"smiles": SMILES, "n_conformers": 3, "seed": 3}
    raw = client.post("/v1/conformers", json=body).json()
    response = client.post("/v1/conformers", json=dict(body, relax="gnn"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["relax"] == "gnn" and data["energy_model"] == "gnn" and data["warnings"] == []
    assert data["num_returned"] == 3
    before = {c["index"]: np.array(c["positions"]) for c in raw["conformers"]}
    start = load_energy_model().energy(
        atomic_system(parse_smiles(SMILES)), torch.from_numpy(np.stack([before[c["index"]] for c in data["conformers"]]))
    ).numpy()
    for conformer, unrelaxed in zip(data["conformers"], start, strict=True):
        assert np.abs(np.array(conformer["positions"]) - before[conformer["index"]]).max() > 1e-3
        assert np.isfinite(conformer["energy_kcal_mol"]) and conformer["energy_kcal_mol"] < unrelaxed
    sdf = client.post("/v1/conformers", json=dict(body, relax="gnn", format="sdf")).json()
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf["content"], removeHs=False)
    mols = list(supplier)
    assert [m.GetProp("energy_model") for m in mols] == ["gnn"] * 3
    assert [m.GetDoubleProp("energy_kcal_mol") for m in mols] == pytest.approx(
        [c["energy_kcal_mol"] for c in data["conformers"]], abs=1e-5
    )


def test_relax_gnn_refuses_elements_the_parser_refuses(client):
    error = _error(client.post("/v1/conformers", json={"smiles": "C[Si](C)(C)C", "relax": "gnn"}))
    assert error["reason"] == "unsupported_element" and error["field"] == "smiles" and "Si" in error["message"]
    error = _error(client.post("/v1/conformers", json={"smiles": "CCO", "relax": "uff"}))
    assert error["field"] == "relax" and "gnn" in error["message"]


def test_the_web_page_offers_gnn(client):
    assert '<option value="gnn">' in client.get("/").text


def test_an_element_the_energy_model_lacks_is_a_422_naming_it(tiny_client):
    error = _error(tiny_client.post("/v1/conformers", json={"smiles": "CCS", "relax": "gnn", "n_conformers": 2}))
    assert error["reason"] == "unsupported_element" and error["field"] == "smiles" and "element(s) S" in error["message"]
    assert tiny_client.post("/v1/conformers", json={"smiles": "CCS", "relax": "mmff", "n_conformers": 1}).status_code == 200
    batch = tiny_client.post(
        "/v1/conformers/batch", json={"molecules": [{"smiles": "CO"}, {"smiles": "CCS"}], "relax": "gnn", "n_conformers": 1}
    ).json()
    assert [m["status"] for m in batch["molecules"]] == ["ok", "failed"]
    assert batch["molecules"][1]["error"]["reason"] == "unsupported_element"
    error = _error(tiny_client.post("/v1/conformers", json={"smiles": "[NH3+]CC[NH3+]", "relax": "gnn"}))
    assert error["reason"] == "unsupported_charge" and error["field"] == "charge" and "total charge 2" in error["message"]


def test_a_molecule_larger_than_the_training_data_runs_with_a_warning(tiny_client):
    small = tiny_client.post("/v1/conformers", json={"smiles": "CO", "relax": "gnn", "n_conformers": 1}).json()
    assert small["warnings"] == [] and small["energy_model"] == "gnn"
    response = tiny_client.post(
        "/v1/conformers", json={"smiles": SMILES, "relax": "gnn", "relax_steps": 2, "n_conformers": 2, "format": "sdf"}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["num_returned"] == 2 and all(c["energy_kcal_mol"] is not None for c in data["conformers"])
    (warning,) = data["warnings"]
    assert warning.startswith("gnn_extrapolation: the molecule has 12 atoms")
    assert "<warnings>" in data["content"]


def test_a_missing_energy_model_stops_the_server_with_one_line(tmp_path):
    with pytest.raises(RuntimeError) as info:
        start_server(tmp_path, {"AS_WORKERS": "1", "AS_ENERGY_MODEL": str(tmp_path / "nope.pt")}, ready_timeout_s=60)
    log = str(info.value)
    assert "Traceback" not in log and "does not exist" in log and "nope.pt" in log
