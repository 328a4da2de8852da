"""featurize / atomic_system: shapes, feature meaning, charges carried through."""

from __future__ import annotations

import torch
from rdkit import Chem

from adjoint_sampling.chemistry.graph import (
    ATOM_FEATURE_DIM,
    BOND_FEATURE_DIM,
    ELEMENTS,
    atomic_system,
    featurize,
    molecule_key,
)
from adjoint_sampling.chemistry.parsing import parse_smiles

# Column offsets of the documented feature layout.
_CHARGE = len(ELEMENTS)  # one-hot of -2..+2
_AROMATIC = _CHARGE + 5
_CHIRAL = _AROMATIC + 1 + 7 + 1 + 7  # none, CW, CCW, other
_CIP = _CHIRAL + 4  # R, S, none


def test_shapes_and_edges_in_both_directions():
    parsed = parse_smiles("c1ccccc1O")
    graph = featurize(parsed)
    n, bonds = parsed.num_atoms, parsed.mol.GetNumBonds()
    assert graph.atom_features.shape == (n, ATOM_FEATURE_DIM)
    assert graph.edge_index.shape == (2, 2 * bonds)
    assert graph.bond_features.shape == (2 * bonds, BOND_FEATURE_DIM)
    pairs = {tuple(p) for p in graph.edge_index.T.tolist()}
    assert all((j, i) in pairs for i, j in pairs)
    # element one-hot agrees with element_index and atomic numbers
    assert torch.equal(graph.atom_features[:, : len(ELEMENTS)].argmax(1), graph.element_index)
    symbols = [ELEMENTS[i] for i in graph.element_index]
    assert [Chem.GetPeriodicTable().GetAtomicNumber(s) for s in symbols] == graph.atomic_numbers.tolist()
    # six aromatic carbons
    assert int(graph.atom_features[:, _AROMATIC].sum()) == 6
    # aromatic bond type column (index 3) set for the 6 ring bonds, both directions
    assert int(graph.bond_features[:, 3].sum()) == 12


def test_charged_molecule_keeps_charge_in_graph_and_system():
    parsed = parse_smiles("C[N+](C)(C)CC(=O)[O-]")  # zwitterion, total 0
    graph = featurize(parsed)
    assert graph.charge == 0
    assert sorted(graph.formal_charges.tolist())[0] == -1 and sorted(graph.formal_charges.tolist())[-1] == 1
    anion = parse_smiles("CC(=O)[O-]")
    graph = featurize(anion)
    system = atomic_system(anion)
    assert graph.charge == -1 and system.charge == -1
    oxygen_minus = [a.GetIdx() for a in anion.mol.GetAtoms() if a.GetFormalCharge() == -1][0]
    assert graph.atom_features[oxygen_minus, _CHARGE + 1] == 1.0  # one-hot column of charge -1


def test_radical_multiplicity_reaches_system():
    parsed = parse_smiles("C[CH2]", allow_radicals=True)
    assert featurize(parsed).multiplicity == 2
    assert atomic_system(parsed).multiplicity == 2
    assert atomic_system(parsed).unpaired_electrons == 1


def test_chirality_and_double_bond_stereo_features():
    r_graph = featurize(parse_smiles("C[C@@H](N)C(=O)O"))
    s_graph = featurize(parse_smiles("C[C@H](N)C(=O)O"))
    assert not torch.equal(r_graph.atom_features[:, _CIP : _CIP + 2], s_graph.atom_features[:, _CIP : _CIP + 2])
    assert r_graph.atom_features[:, _CIP : _CIP + 2].sum() == 1  # one labelled centre
    e_graph = featurize(parse_smiles("C/C=C/C"))
    z_graph = featurize(parse_smiles("C/C=C\\C"))
    stereo = slice(BOND_FEATURE_DIM - 4, BOND_FEATURE_DIM)  # none, Z, E, other
    assert e_graph.bond_features[:, stereo][:, 2].sum() == 2  # one E bond, both directions
    assert z_graph.bond_features[:, stereo][:, 1].sum() == 2


def test_key_depends_on_atom_order_not_only_on_molecule():
    a, b = parse_smiles("CCO"), parse_smiles("OCC")
    assert Chem.MolToSmiles(a.mol) == Chem.MolToSmiles(b.mol)
    assert molecule_key(a.mol) != molecule_key(b.mol)
    assert molecule_key(a.mol) == molecule_key(parse_smiles("CCO").mol)
