"""The service serving a trained Adjoint Sampling checkpoint (a tiny one trained here in seconds)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from molecular_helpers import TINY_SMILES, tiny_job
from rdkit import Chem

from adjoint_sampling.service.testing import start_server
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny_model")
    run_training_job(job_config_from_dict(tiny_job("torsional")), run_dir, progress=False)
    proc = start_server(tmp_path_factory.mktemp("sampler_server"), {"AS_MODEL": str(run_dir / "model.pt")})
    yield proc
    proc.stop()


def test_trained_model_is_served(server):
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        model = client.get("/v1/models").json()["models"][0]
        assert model["name"] == "adjoint-sampling-torsional" and model["source"].endswith("model.pt")
        smiles = TINY_SMILES[1]
        response = client.post("/v1/conformers", json={"smiles": smiles, "n_conformers": 6, "seed": 1, "format": "sdf"})
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["model"] == {"name": model["name"], "version": model["version"]}
        assert data["num_returned"] + data["num_dropped"] == data["num_generated"] >= 6 and data["num_returned"] >= 1
        supplier = Chem.SDMolSupplier()
        supplier.SetData(data["content"], removeHs=False)
        mols = list(supplier)
        assert len(mols) == data["num_returned"]
        for mol in mols:
            assert mol.GetProp("model_name") == "adjoint-sampling-torsional"
            Chem.AssignStereochemistryFrom3D(mol)
            assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        as_json = client.post("/v1/conformers", json={"smiles": smiles, "n_conformers": 6, "seed": 1}).json()
        first = np.array(as_json["conformers"][0]["positions"])
        assert first.shape == (mols[0].GetNumAtoms(), 3)
        np.testing.assert_allclose(first, mols[0].GetConformer().GetPositions(), atol=1e-4)  # seeded
        batch = client.post(
            "/v1/conformers/batch",
            json={"molecules": [{"smiles": TINY_SMILES[0]}, {"smiles": "C1CC"}], "n_conformers": 2},
        ).json()
        assert [m["status"] for m in batch["molecules"]] == ["ok", "failed"]
