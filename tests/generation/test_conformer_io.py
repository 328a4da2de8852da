"""SDF / XYZ / JSON writers of a ConformerSet: parse the output back and compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.generation.formats import conformers_to_json, conformers_to_sdf, conformers_to_xyz
from adjoint_sampling.generation.types import Conformer, ConformerSet


def _conformer_set(smiles: str = "C[C@H](N)C(=O)[O-]", n: int = 3) -> ConformerSet:
    parsed = parse_smiles(smiles)
    embedded = Chem.Mol(parsed.mol)
    ids = AllChem.EmbedMultipleConfs(embedded, numConfs=n, randomSeed=7)
    assert len(ids) == n
    conformers = [
        Conformer(
            positions=embedded.GetConformer(cid).GetPositions(), energy=(-10.5 + i if i != 1 else None), index=2 * i
        )
        for i, cid in enumerate(ids)
    ]
    return ConformerSet(
        smiles=smiles,
        mol=parsed.mol,
        conformers=conformers,
        num_requested=n,
        num_generated=n + 2,
        dropped={"stereo_changed": 2},
        energy_model="mmff",
        relax="mmff",
        model_name="test-model",
        model_version="1.2",
        seed=11,
        timings={"sample": 0.25, "total": 0.5},
    )


def test_sdf_parses_back_with_same_atoms_bonds_coordinates_and_tags():
    cs = _conformer_set()
    text = conformers_to_sdf(cs)
    supplier = Chem.SDMolSupplier()
    supplier.SetData(text, removeHs=False)
    mols = list(supplier)
    assert len(mols) == 3 and all(m is not None for m in mols)
    for mol, conformer in zip(mols, cs.conformers, strict=True):
        assert [a.GetSymbol() for a in mol.GetAtoms()] == [a.GetSymbol() for a in cs.mol.GetAtoms()]
        assert [a.GetFormalCharge() for a in mol.GetAtoms()] == [a.GetFormalCharge() for a in cs.mol.GetAtoms()]
        bonds = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType()) for b in mol.GetBonds()}
        expected = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType()) for b in cs.mol.GetBonds()}
        assert bonds == expected
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), conformer.positions, atol=1e-4)
        assert mol.GetIntProp("conformer_index") == conformer.index
        assert mol.GetIntProp("seed") == 11
        assert mol.GetProp("model_name") == "test-model" and mol.GetProp("model_version") == "1.2"
        assert mol.GetProp("energy_model") == "mmff" and mol.GetProp("relax") == "mmff"
        if conformer.energy is None:
            assert not mol.HasProp("energy_kcal_mol")
        else:
            assert mol.GetDoubleProp("energy_kcal_mol") == pytest.approx(conformer.energy, abs=1e-6)
    # the stereocentre survives the round trip (3D coordinates -> CIP label)
    Chem.AssignStereochemistryFrom3D(mols[0])
    assert Chem.MolToSmiles(Chem.RemoveHs(mols[0])) == Chem.MolToSmiles(Chem.MolFromSmiles(cs.smiles))


def test_xyz_is_multi_frame_with_exact_coordinates():
    cs = _conformer_set()
    lines = conformers_to_xyz(cs).splitlines()
    n_atoms = cs.mol.GetNumAtoms()
    assert len(lines) == 3 * (n_atoms + 2)
    for k, conformer in enumerate(cs.conformers):
        block = lines[k * (n_atoms + 2) : (k + 1) * (n_atoms + 2)]
        assert int(block[0]) == n_atoms
        fields = dict(item.split("=", 1) for item in block[1].split())
        assert int(fields["index"]) == conformer.index
        assert fields["model"] == "test-model/1.2" and fields["smiles"] == cs.smiles
        if conformer.energy is None:
            assert fields["energy_kcal_mol"] == "nan"
        else:
            assert float(fields["energy_kcal_mol"]) == pytest.approx(conformer.energy)
        symbols = [row.split()[0] for row in block[2:]]
        xyz = np.array([[float(v) for v in row.split()[1:]] for row in block[2:]])
        assert symbols == [a.GetSymbol() for a in cs.mol.GetAtoms()]
        np.testing.assert_allclose(xyz, conformer.positions, atol=1e-6)


def test_json_is_serialisable_and_complete():
    cs = _conformer_set()
    data = json.loads(json.dumps(conformers_to_json(cs)))
    assert data["charge"] == -1 and data["multiplicity"] == 1
    assert data["elements"] == [a.GetSymbol() for a in cs.mol.GetAtoms()]
    assert len(data["bonds"]) == cs.mol.GetNumBonds()
    assert data["model"] == {"name": "test-model", "version": "1.2"}
    assert data["num_generated"] == 5 and data["num_returned"] == 3 and data["num_dropped"] == 2
    assert data["dropped"] == {"stereo_changed": 2}
    assert [c["index"] for c in data["conformers"]] == [0, 2, 4]
    assert data["conformers"][1]["energy_kcal_mol"] is None
    assert data["conformers"][0]["energy_kcal_mol"] == pytest.approx(-10.5)
    np.testing.assert_allclose(data["conformers"][2]["positions"], cs.conformers[2].positions, atol=1e-6)


def test_empty_set_gives_empty_files():
    cs = _conformer_set()
    cs.conformers = []
    assert conformers_to_sdf(cs) == ""
    assert conformers_to_xyz(cs) == ""
    assert conformers_to_json(cs)["conformers"] == []


def test_wrong_position_shape_is_refused():
    cs = _conformer_set()
    cs.conformers[0].positions = cs.conformers[0].positions[:-1]
    with pytest.raises(ValueError, match="positions"):
        conformers_to_sdf(cs)
