"""The REST API against a real uvicorn server on 127.0.0.1: happy paths, bad inputs, batches, metrics."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from rdkit import Chem

from adjoint_sampling.service.testing import start_server

MAX_CONFORMERS = 12
MAX_SMILES = 120
MAX_ATOMS = 60
MAX_BODY = 8192
MAX_BATCH = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_server(
        tmp_path_factory.mktemp("api"),
        {
            "AS_MAX_CONFORMERS": str(MAX_CONFORMERS),
            "AS_MAX_SMILES_LENGTH": str(MAX_SMILES),
            "AS_MAX_ATOMS": str(MAX_ATOMS),
            "AS_MAX_BODY_BYTES": str(MAX_BODY),
            "AS_MAX_BATCH_MOLECULES": str(MAX_BATCH),
        },
    )
    yield proc
    proc.stop()


def _post(client, body, path="/v1/conformers"):
    return client.post(path, json=body)


def _error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"status", "field", "reason", "message"} and error["status"] == status
    return error


def test_health_ready_and_models(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    model = client.get("/v1/models").json()["models"][0]
    assert model["name"] == "rdkit-etkdgv3" and model["ready"] is True
    assert model["limits"]["max_conformers"] == MAX_CONFORMERS


def test_json_format_returns_positions_energies_and_provenance(client):
    response = _post(client, {"smiles": "CC(=O)Nc1ccc(O)cc1", "n_conformers": 4, "seed": 3, "relax": "mmff"})
    assert response.status_code == 200, response.text
    data = response.json()
    n_atoms = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")).GetNumAtoms()
    assert len(data["elements"]) == n_atoms == 20
    assert data["model"]["name"] == "rdkit-etkdgv3" and data["model"]["version"]
    assert data["num_requested"] == 4 and data["num_returned"] + data["num_dropped"] == data["num_requested"]
    assert data["check"]["all_returned_passed"] is True and "stereo_changed" in data["check"]["reasons"]
    assert data["energy_model"] == "mmff" and data["relax"] == "mmff" and data["format"] == "json"
    assert data["content"] is None
    assert {"sample", "relax", "total", "service_total"} <= set(data["timings"])
    for conformer in data["conformers"]:
        positions = np.array(conformer["positions"])
        assert positions.shape == (n_atoms, 3)
        assert np.isfinite(conformer["energy_kcal_mol"])
        # bonded C=O of the amide stays a bond: 1.1 .. 1.4 angstrom
        assert 1.1 < np.linalg.norm(positions[1] - positions[2]) < 1.4
    # the same seed gives the same conformers, another seed others
    again = _post(client, {"smiles": "CC(=O)Nc1ccc(O)cc1", "n_conformers": 4, "seed": 3, "relax": "mmff"}).json()
    assert again["conformers"] == data["conformers"]
    other = _post(client, {"smiles": "CC(=O)Nc1ccc(O)cc1", "n_conformers": 4, "seed": 4, "relax": "mmff"}).json()
    assert other["conformers"][0]["positions"] != data["conformers"][0]["positions"]


def test_sdf_format_parses_back(client):
    response = _post(client, {"smiles": "C[C@H](N)C(=O)O", "n_conformers": 3, "relax": "mmff", "format": "sdf"})
    assert response.status_code == 200, response.text
    data = response.json()
    supplier = Chem.SDMolSupplier()
    supplier.SetData(data["content"], removeHs=False)
    mols = list(supplier)
    assert len(mols) == data["num_returned"] == len(data["conformers"]) >= 1
    for mol, conformer in zip(mols, data["conformers"], strict=True):
        assert mol.GetNumAtoms() == 13
        assert mol.GetIntProp("conformer_index") == conformer["index"]
        assert mol.GetDoubleProp("energy_kcal_mol") == pytest.approx(conformer["energy_kcal_mol"], abs=1e-5)
        assert conformer["positions"] is None
        Chem.AssignStereochemistryFrom3D(mol)
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles("C[C@H](N)C(=O)O"))


def test_xyz_format_is_multi_frame(client):
    data = _post(client, {"smiles": "CCO", "n_conformers": 3, "format": "xyz"}).json()
    lines = data["content"].splitlines()
    assert len(lines) == 3 * (9 + 2) and lines[0] == "9"
    assert [c["energy_kcal_mol"] for c in data["conformers"]] == [None, None, None]


def test_prune_rms_drops_duplicates_and_says_so(client):
    data = _post(client, {"smiles": "c1ccccc1", "n_conformers": 5, "relax": "mmff", "prune_rms": 0.3}).json()
    assert data["num_returned"] == 1 and data["dropped"] == {"pruned": 4} and data["num_dropped"] == 4


def test_relax_steps_caps_the_relaxation(client):
    body = {"smiles": "CCCCOCCCCO", "n_conformers": 4, "relax": "mmff", "seed": 2}
    full = [c["energy_kcal_mol"] for c in _post(client, body).json()["conformers"]]
    capped = [c["energy_kcal_mol"] for c in _post(client, dict(body, relax_steps=1)).json()["conformers"]]
    assert len(full) == len(capped) == 4
    assert sum(capped) > sum(full) + 1e-3


def test_salts_are_stripped_and_reported(client):
    body = _post(client, {"smiles": "CC(=O)[O-].[Na+]", "n_conformers": 2, "relax": "mmff", "format": "sdf"}).json()
    assert body["removed_fragments"] == ["[Na+]"] and body["canonical_smiles"] == "CC(=O)[O-]" and body["charge"] == -1
    assert re.search(r"<removed_fragments>.*\n\[Na\+\]\n", body["content"]) and body["num_returned"] == 2


def test_energy_window_and_sort(client):
    body = {"smiles": "CCCCOC(=O)CC", "n_conformers": 8, "relax": "mmff", "seed": 2}
    full = _post(client, dict(body, sort=True)).json()
    energies = [c["energy_kcal_mol"] for c in full["conformers"]]
    assert full["sorted_by_energy"] and energies == sorted(energies) and full["energy_model"] == "mmff"
    window = 0.5 * (max(energies) - min(energies))
    narrow = _post(client, dict(body, energy_window=window)).json()
    kept = [c["energy_kcal_mol"] for c in narrow["conformers"]]
    assert kept and max(kept) - min(energies) <= window + 1e-9
    assert narrow["dropped"].get("energy_window", 0) == len(energies) - len(kept) > 0
    # ETKDG reports no energies without a relaxation: a window cannot be applied, and says so
    error = _error(_post(client, {"smiles": "CCO", "n_conformers": 2, "energy_window": 3.0}), 422)
    assert (error["field"], error["reason"]) == ("energy_window", "needs_energies")


def test_charge_and_multiplicity(client):
    ok = _post(client, {"smiles": "C[NH3+]", "charge": 1, "n_conformers": 1})
    assert ok.status_code == 200 and ok.json()["charge"] == 1
    error = _error(_post(client, {"smiles": "C[NH3+]", "charge": 0, "n_conformers": 1}), 422)
    assert error["field"] == "charge" and error["reason"] == "charge_mismatch"
    error = _error(_post(client, {"smiles": "CCO", "multiplicity": 3, "n_conformers": 1}), 422)
    assert error["field"] == "multiplicity" and error["reason"] == "multiplicity_mismatch"


BAD_INPUTS = [
    # (case id, JSON body, expected field, expected reason, text expected in the message)
    ("invalid_smiles", {"smiles": "C1CC"}, "smiles", "invalid_smiles", "cannot parse"),
    ("garbage_smiles", {"smiles": "not-a-molecule"}, "smiles", "invalid_smiles", "cannot parse"),
    ("empty", {"smiles": ""}, "smiles", "empty", "empty"),
    ("blank", {"smiles": "   "}, "smiles", "empty", "empty"),
    ("huge_smiles", {"smiles": "C" * (MAX_SMILES + 1)}, "smiles", "too_long", f"limit is {MAX_SMILES}"),
    ("too_many_atoms", {"smiles": "C" * 30}, "smiles", "too_many_atoms", f"limit is {MAX_ATOMS}"),
    ("unsupported_element", {"smiles": "C[Si](C)(C)C"}, "smiles", "unsupported_element", "Si"),
    ("metal_salt_kept", {"smiles": "CC(=O)[O-].[Na+]", "strip_fragments": False}, "smiles", "multiple_fragments", "strip"),
    ("silicon", {"smiles": "C[Si](C)(C)C"}, "smiles", "unsupported_element", "Si"),
    ("radical", {"smiles": "[CH3]"}, "smiles", "radical", "unpaired"),
    ("salt_fragments", {"smiles": "C[NH3+].[Cl-]", "strip_fragments": False}, "smiles", "multiple_fragments", "2 disconnected"),
    ("unicode_emoji", {"smiles": "C\U0001f600C"}, "smiles", "invalid_smiles", "non-ASCII"),
    ("unicode_fullwidth", {"smiles": "\uff23\uff23"}, "smiles", "invalid_smiles", "non-ASCII"),
    ("nul_byte", {"smiles": "C\u0000C"}, "smiles", "invalid_smiles", ""),
    ("rtl_junk", {"smiles": "\u202eCCO"}, "smiles", "invalid_smiles", "non-ASCII"),
    ("smiles_wrong_type", {"smiles": 123}, "smiles", "string_type", "valid string"),
    ("smiles_null", {"smiles": None}, "smiles", "string_type", "valid string"),
    ("smiles_missing", {"n_conformers": 3}, "smiles", "missing", "required"),
    ("n_string", {"smiles": "CCO", "n_conformers": "5"}, "n_conformers", "int_type", "valid integer"),
    ("n_float", {"smiles": "CCO", "n_conformers": 2.5}, "n_conformers", "int_type", "valid integer"),
    ("n_bool", {"smiles": "CCO", "n_conformers": True}, "n_conformers", "int_type", "valid integer"),
    (
        "n_zero",
        {"smiles": "CCO", "n_conformers": 0},
        "n_conformers",
        "greater_than_equal",
        "greater than or equal to 1",
    ),
    ("n_negative", {"smiles": "CCO", "n_conformers": -3}, "n_conformers", "greater_than_equal", "greater than"),
    (
        "n_above_cap",
        {"smiles": "CCO", "n_conformers": MAX_CONFORMERS + 1},
        "n_conformers",
        "above_cap",
        f"cap of {MAX_CONFORMERS}",
    ),
    ("n_huge", {"smiles": "CCO", "n_conformers": 10**30}, "n_conformers", "above_cap", ""),
    ("seed_negative", {"smiles": "CCO", "seed": -1}, "seed", "greater_than_equal", ""),
    ("relax_unknown", {"smiles": "CCO", "relax": "uff"}, "relax", "literal_error", "'none', 'mmff', 'xtb' or 'gnn'"),
    ("format_unknown", {"smiles": "CCO", "format": "pdb"}, "format", "literal_error", "'sdf', 'xyz' or 'json'"),
    ("prune_zero", {"smiles": "CCO", "prune_rms": 0}, "prune_rms", "greater_than", "greater than 0"),
    ("relax_steps_zero", {"smiles": "CCO", "relax": "mmff", "relax_steps": 0}, "relax_steps", "greater_than_equal", ""),
    ("relax_steps_no_relax", {"smiles": "CCO", "relax_steps": 20}, "relax_steps", "needs_relax", "set relax to"),
    ("unknown_field", {"smiles": "CCO", "n_conformer": 3}, "n_conformer", "extra_forbidden", "not permitted"),
    ("body_is_list", ["CCO"], "body", "model_attributes_type", ""),
    ("body_is_string", "CCO", "body", "model_attributes_type", ""),
]


@pytest.mark.parametrize("case,body,field,reason,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_422_naming_field_and_reason(client, case, body, field, reason, message):
    error = _error(_post(client, body), 422)
    assert (error["field"], error["reason"]) == (field, reason)
    assert message in error["message"]


@pytest.mark.parametrize(
    "raw,content_type",
    [
        (b'{"smiles": "CC', "application/json"),
        (b'{"smiles": "\xff\xfe\xfa"}', "application/json"),
        (b"\x00\x01\x02binary", "application/json"),
        (b"smiles=CCO", "application/x-www-form-urlencoded"),
        (b"[" * 3000 + b"]" * 3000, "application/json"),
    ],
    ids=["truncated_json", "invalid_utf8", "binary", "form_encoded", "deeply_nested"],
)
def test_malformed_bodies_get_a_4xx_json_error(client, raw, content_type):
    response = client.post("/v1/conformers", content=raw, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    error = _error(response, response.status_code)
    assert error["field"] == "body"


def test_body_over_the_limit_is_413(client):
    error = _error(_post(client, {"smiles": "C" * (MAX_BODY + 10)}), 413)
    assert error["field"] == "body" and error["reason"] == "body_too_large"
    # a chunked body (no Content-Length) is counted while it streams
    chunks = (b'{"smiles": "' + b"C" * 4096, b"C" * 4096, b"C" * 4096 + b'"}')
    response = client.post("/v1/conformers", content=iter(chunks), headers={"content-type": "application/json"})
    assert _error(response, 413)["reason"] == "body_too_large"


def test_unknown_paths_and_methods(client):
    assert _error(client.get("/v1/nothing"), 404)["reason"] == "not_found"
    assert _error(client.get("/v1/conformers"), 405)["reason"] == "method_not_allowed"
    assert _error(client.get("/v1/jobs/\u00e9\u00e9"), 404)["field"] == "job_id"


def test_batch_reports_each_molecule(client):
    body = {
        "molecules": [
            {"smiles": "CCO"},
            {"smiles": "C1CC"},
            {"smiles": "C[NH3+]", "charge": 1},
            {"smiles": "[Na+].[Cl-]"},
        ],
        "n_conformers": 2,
        "relax": "mmff",
        "format": "sdf",
    }
    response = _post(client, body, "/v1/conformers/batch")
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["num_ok"], data["num_failed"]) == (2, 2)
    statuses = [(m["index"], m["smiles"], m["status"]) for m in data["molecules"]]
    assert statuses == [(0, "CCO", "ok"), (1, "C1CC", "failed"), (2, "C[NH3+]", "ok"), (3, "[Na+].[Cl-]", "failed")]
    assert data["molecules"][1]["error"]["field"] == "molecules.1.smiles"
    assert data["molecules"][1]["error"]["reason"] == "invalid_smiles"
    assert data["molecules"][3]["error"]["reason"] == "multiple_fragments"  # a salt with no organic part to keep
    assert data["molecules"][0]["result"]["content"].count("$$$$") == data["molecules"][0]["result"]["num_returned"]
    assert data["molecules"][2]["result"]["charge"] == 1


def test_batch_limits(client):
    error = _error(_post(client, {"molecules": [{"smiles": "C"}] * (MAX_BATCH + 1)}, "/v1/conformers/batch"), 422)
    assert (error["field"], error["reason"]) == ("molecules", "too_many_molecules")
    error = _error(_post(client, {"molecules": []}, "/v1/conformers/batch"), 422)
    assert (error["field"], error["reason"]) == ("molecules", "too_short")
    error = _error(_post(client, {"molecules": [{"smiles": 5}]}, "/v1/conformers/batch"), 422)
    assert error["field"] == "molecules.0.smiles"


def test_metrics_count_requests_molecules_conformers_and_failures(client):
    before = _metric_values(client.get("/metrics").text)
    _post(client, {"smiles": "CCO", "n_conformers": 3})
    _post(client, {"smiles": "C1CC"})
    text = client.get("/metrics").text
    after = _metric_values(text)
    key_ok = 'as_http_requests_total{method="POST",route="/v1/conformers",status="200"}'
    key_bad = 'as_http_requests_total{method="POST",route="/v1/conformers",status="422"}'
    assert after[key_ok] == before.get(key_ok, 0) + 1
    assert after[key_bad] == before.get(key_bad, 0) + 1
    assert after["as_conformers_total"] == before["as_conformers_total"] + 3
    key = 'as_failures_total{reason="invalid_smiles"}'
    assert after[key] == before.get(key, 0) + 1
    assert after['as_http_request_duration_seconds_count{method="POST",route="/v1/conformers"}'] >= 2
    assert after['as_failures_total{reason="body_too_large"}'] >= 1
    assert after["as_model_ready"] == 1


def test_server_survived_all_of_it(server, client):
    assert server.process.poll() is None
    assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.log_text()


def _metric_values(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_error_body_shape_is_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/v1/conformers"]["post"]["responses"]
    assert {"413", "422", "503", "504"} <= set(responses)
    ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorBody")
    json.dumps(schema)


def test_docker_healthcheck_command(server):
    import os
    import subprocess
    import sys

    from adjoint_sampling.service.testing import free_port

    port = server.base_url.rsplit(":", 1)[1]

    def run(p: object) -> int:
        env = {**os.environ, "AS_PORT": str(p)}
        return subprocess.run([sys.executable, "-m", "adjoint_sampling.service.healthcheck"], env=env, timeout=30).returncode

    assert run(port) == 0
    assert run(free_port()) == 1
