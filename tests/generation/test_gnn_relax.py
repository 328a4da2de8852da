"""``relax="gnn"``: the shipped GNN energy model (path, cached loader, one-line errors) relaxing conformers
through the pipeline and the Python API; refused elements and charges, the large-molecule warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from molecular_helpers import write_tiny_gnn_checkpoint
from rdkit import Chem

import adjoint_sampling
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import CheckpointError, InvalidMoleculeError
from adjoint_sampling.energy.gnn import EXTRAPOLATION_WARNING, GNNEnergy
from adjoint_sampling.generation.etkdg import EtkdgGenerator
from adjoint_sampling.generation.formats import conformers_to_json, conformers_to_sdf
from adjoint_sampling.generation.shipped import (
    ENERGY_MODEL_ENV,
    SHIPPED_ENERGY_MODEL_PATH,
    load_energy_model,
    resolve_energy_model_path,
)
from adjoint_sampling.generation.types import RELAX_METHODS, GenerationRequest

SMILES = "CCCO"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """H, C, N, O only; training data of at most 10 atoms."""
    return write_tiny_gnn_checkpoint(tmp_path_factory.mktemp("gnn") / "tiny.pt", max_atoms=10)


def _energies_under(model: GNNEnergy, smiles: str, positions: np.ndarray) -> np.ndarray:
    system = atomic_system(parse_smiles(smiles))
    return model.energy(system, torch.from_numpy(positions)).numpy()


def test_the_shipped_energy_model_is_package_data_and_loads_once():
    assert "gnn" in RELAX_METHODS
    assert SHIPPED_ENERGY_MODEL_PATH.is_file()
    assert SHIPPED_ENERGY_MODEL_PATH.parent == Path(adjoint_sampling.models.__file__).parent / "shipped"
    model = load_energy_model()
    assert isinstance(model, GNNEnergy) and load_energy_model(SHIPPED_ENERGY_MODEL_PATH) is model


def test_env_var_and_explicit_path_choose_the_energy_model(monkeypatch, tiny_checkpoint):
    monkeypatch.delenv(ENERGY_MODEL_ENV, raising=False)
    assert resolve_energy_model_path() == SHIPPED_ENERGY_MODEL_PATH
    monkeypatch.setenv(ENERGY_MODEL_ENV, str(tiny_checkpoint))
    assert resolve_energy_model_path() == tiny_checkpoint
    assert resolve_energy_model_path("/elsewhere/energy.pt") == Path("/elsewhere/energy.pt")
    assert load_energy_model().checkpoint.elements == (1, 6, 7, 8)


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    (b"not a checkpoint\n", "cannot be read: corrupt, truncated or not a torch checkpoint"),
])
def test_a_missing_or_corrupt_energy_model_is_a_one_line_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "energy.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_energy_model(path)
    assert len(str(info.value).splitlines()) == 1 and str(path) in str(info.value)


def test_gnn_relaxation_moves_conformers_downhill_and_reports_gnn_energies():
    generator = EtkdgGenerator(reuse_embedding=True)
    raw = generator.generate(GenerationRequest(SMILES, num_conformers=4, seed=2))
    relaxed = generator.generate(GenerationRequest(SMILES, num_conformers=4, seed=2, relax="gnn"))
    assert relaxed.energy_model == "gnn" and relaxed.relax == "gnn" and relaxed.warnings == ()
    assert len(relaxed.conformers) == 4 and "relax" in relaxed.timings
    before = {c.index: c.positions for c in raw.conformers}
    start = _energies_under(load_energy_model(), SMILES, np.stack([before[c.index] for c in relaxed.conformers]))
    for conformer, unrelaxed in zip(relaxed.conformers, start, strict=True):
        assert np.abs(conformer.positions - before[conformer.index]).max() > 1e-3
        assert conformer.energy is not None and np.isfinite(conformer.energy)
        assert conformer.energy < unrelaxed
    capped = generator.generate(GenerationRequest(SMILES, num_conformers=4, seed=2, relax="gnn", relax_steps=1))
    assert all(c.energy is not None for c in capped.conformers)


def test_python_api_relaxes_with_gnn():
    mol = adjoint_sampling.generate(SMILES, n=3, seed=1, relax="gnn", model="etkdg", sort=True)
    assert mol.GetProp("energy_model") == "gnn" and mol.GetProp("relax") == "gnn"
    energies = [c.GetDoubleProp("energy_kcal_mol") for c in mol.GetConformers()]
    assert len(energies) == 3 and energies == sorted(energies)
    assert not mol.HasProp("warnings")


def test_an_element_the_energy_model_lacks_is_refused_before_drawing(tiny_checkpoint):
    with pytest.raises(InvalidMoleculeError, match=r"element\(s\) S") as info:
        adjoint_sampling.generate("CCS", n=2, relax="gnn", model="etkdg", energy_model=tiny_checkpoint)
    assert info.value.reason == "unsupported_element"
    adjoint_sampling.generate("CCS", n=1, relax="mmff", model="etkdg", energy_model=tiny_checkpoint)  # only gnn refuses
    with pytest.raises(InvalidMoleculeError) as parsed:  # elements no relaxation supports: the parser refuses them
        adjoint_sampling.generate("C[Si](C)(C)C", n=2, relax="gnn", model="etkdg")
    assert parsed.value.reason == "unsupported_element" and "Si" in parsed.value.detail


def test_a_charge_outside_the_energy_model_range_is_refused(tiny_checkpoint):
    generator = EtkdgGenerator()
    generator.relax_energy_path = tiny_checkpoint  # charges -1..1
    with pytest.raises(InvalidMoleculeError, match="total charge 2") as info:
        generator.generate(GenerationRequest("[NH3+]CC[NH3+]", num_conformers=2, relax="gnn"))
    assert info.value.reason == "unsupported_charge"


def test_a_molecule_larger_than_the_training_data_runs_and_is_flagged(tiny_checkpoint):
    generator = EtkdgGenerator()
    generator.relax_energy_path = tiny_checkpoint  # at most 10 atoms in training
    small = generator.generate(GenerationRequest("CO", num_conformers=2, relax="gnn"))
    assert small.warnings == ()
    large = generator.generate(GenerationRequest(SMILES, num_conformers=2, relax="gnn", relax_steps=2))
    assert len(large.conformers) == 2 and all(c.energy is not None for c in large.conformers)
    (warning,) = large.warnings
    assert warning.startswith(f"{EXTRAPOLATION_WARNING}: the molecule has 12 atoms") and "(10)" in warning
    assert conformers_to_json(large)["warnings"] == [warning] and conformers_to_json(small)["warnings"] == []
    supplier = Chem.SDMolSupplier()
    supplier.SetData(conformers_to_sdf(large), removeHs=False)
    assert [m.GetProp("warnings") for m in supplier] == [warning, warning]
    mol = adjoint_sampling.generate(SMILES, n=1, relax="gnn", model="etkdg", energy_model=tiny_checkpoint)
    assert json.loads(mol.GetProp("warnings")) == [warning]
