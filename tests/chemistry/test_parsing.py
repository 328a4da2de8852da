"""parse_smiles: validated molecules, and refusals that name the reason."""

from __future__ import annotations

import pytest
from rdkit import Chem

from adjoint_sampling.chemistry.parsing import SUPPORTED_ELEMENTS, parse_smiles
from adjoint_sampling.core.errors import InvalidMoleculeError


def test_adds_hydrogens_and_keeps_canonical_smiles():
    parsed = parse_smiles("CCO")
    assert parsed.num_atoms == 9
    assert sum(a.GetAtomicNum() == 1 for a in parsed.mol.GetAtoms()) == 6
    assert parsed.canonical_smiles == "CCO"
    assert (parsed.charge, parsed.multiplicity) == (0, 1)


@pytest.mark.parametrize(
    ("smiles", "charge"),
    [("CC(=O)[O-]", -1), ("C[NH3+]", 1), ("[O-]C(=O)CC(=O)[O-]", -2), ("C[N+](C)(C)CC(=O)[O-]", 0)],
)
def test_charge_is_the_sum_of_formal_charges(smiles, charge):
    assert parse_smiles(smiles).charge == charge


def test_explicit_charge_must_agree():
    assert parse_smiles("CC(=O)[O-]", charge=-1).charge == -1
    with pytest.raises(InvalidMoleculeError) as err:
        parse_smiles("CC(=O)[O-]", charge=0)
    assert err.value.reason == "charge_mismatch"


def test_radical_refused_unless_allowed_and_then_multiplicity_is_two():
    with pytest.raises(InvalidMoleculeError) as err:
        parse_smiles("C[CH2]")
    assert err.value.reason == "radical"
    parsed = parse_smiles("C[CH2]", allow_radicals=True)
    assert parsed.multiplicity == 2


@pytest.mark.parametrize(
    ("smiles", "kwargs", "reason"),
    [
        ("C1CC", {}, "invalid_smiles"),
        ("", {}, "empty"),
        ("C[Si](C)(C)C", {}, "unsupported_element"),
        ("CC.O", {}, "multiple_fragments"),
        ("CCCCCCCCCC", {"max_atoms": 20}, "too_many_atoms"),
        ("C C", {}, "invalid_smiles"),
    ],
)
def test_refusals_name_the_reason(smiles, kwargs, reason):
    with pytest.raises(InvalidMoleculeError) as err:
        parse_smiles(smiles, **kwargs)
    assert err.value.reason == reason
    assert str(err.value)


def test_fragments_allowed_on_request():
    assert parse_smiles("[NH4+].[Cl-]", allow_fragments=True).charge == 0


def test_every_element_of_the_training_set_is_supported():
    # One SMILES per element of spice_train.txt.
    for smiles in ["C", "N", "O", "F", "P", "S", "Cl", "Br", "I"]:
        parsed = parse_smiles(smiles)
        assert {a.GetSymbol() for a in parsed.mol.GetAtoms()} <= set(SUPPORTED_ELEMENTS)


def test_stereo_is_kept():
    parsed = parse_smiles("C[C@H](N)C(=O)O")
    assert Chem.MolToSmiles(Chem.RemoveHs(parsed.mol)) == "C[C@H](N)C(=O)O"
