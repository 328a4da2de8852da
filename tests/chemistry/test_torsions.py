"""Torsional coordinates: rotatable bonds, set_torsions, torsion_gradient, local_structure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import rdMolTransforms

from adjoint_sampling.chemistry import embedding as embedding_module
from adjoint_sampling.chemistry.checks import check_conformers, chirality_signs
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.torsions import (
    dihedral_angles,
    find_torsions,
    rotate_torsions,
    set_torsions,
    torsion_gradient,
)
from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.core.geometry import wrap_angle
from adjoint_sampling.energy.mmff import MMFFEnergy

IBUPROFEN_S = "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O"


def _with_positions(mol: Chem.Mol, pos: torch.Tensor) -> Chem.Mol:
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    conf = Chem.Conformer(out.GetNumAtoms())
    for i, xyz in enumerate(pos.tolist()):
        conf.SetAtomPosition(i, xyz)
    out.AddConformer(conf, assignId=True)
    return out


@pytest.mark.parametrize(
    ("smiles", "count"),
    [
        ("CCCC", 1),  # only the central bond: methyls are terminal heavy atoms
        ("CCO", 0),
        ("c1ccccc1-c1ccccc1", 1),
        ("C1CCCCC1", 0),  # ring bonds never rotate
        ("CC#CCC", 0),  # bonds next to the linear sp centres are excluded
        ("CC(=O)NC", 1),  # amide C-N
        (IBUPROFEN_S, 4),
    ],
)
def test_rotatable_bond_count(smiles, count):
    assert find_torsions(parse_smiles(smiles).mol).num_torsions == count


def test_moving_side_is_the_smaller_side_and_contains_c_not_b():
    parsed = parse_smiles("CCCCc1ccccc1")  # butylbenzene
    topology = find_torsions(parsed.mol)
    n = parsed.num_atoms
    for quad, mask in zip(topology.torsion_atoms.tolist(), topology.moving_mask):
        a, b, c, d = quad
        assert mask[c] and mask[d] and not mask[b] and not mask[a]
        assert int(mask.sum()) <= n - int(mask.sum())
        assert parsed.mol.GetBondBetweenAtoms(b, c) is not None


def test_set_torsions_gives_requested_dihedrals_as_rdkit_measures_them():
    parsed = parse_smiles(IBUPROFEN_S)
    topology = find_torsions(parsed.mol)
    pos = local_structure(parsed, seed=1)
    generator = torch.Generator().manual_seed(0)
    angles = (torch.rand(5, topology.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    out = set_torsions(pos, topology, angles)
    assert out.shape == (5, parsed.num_atoms, 3)
    for b in range(5):
        conf = _with_positions(parsed.mol, out[b]).GetConformer()
        measured = [rdMolTransforms.GetDihedralRad(conf, *quad) for quad in topology.torsion_atoms.tolist()]
        # RDKit's acos-based dihedral is accurate to ~1e-7 rad
        assert np.allclose(wrap_angle(torch.tensor(measured) - angles[b]).numpy(), 0.0, atol=1e-6)
    assert torch.allclose(dihedral_angles(out, topology.torsion_atoms), wrap_angle(angles), atol=1e-9)


def test_rotate_torsions_equals_set_torsions_by_the_same_change():
    """Changing each torsion by delta in place gives what setting the dihedrals to (current + delta)
    gives; the input is not modified."""
    parsed = parse_smiles(IBUPROFEN_S)
    topology = find_torsions(parsed.mol)
    generator = torch.Generator().manual_seed(3)
    angles = (torch.rand(6, topology.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    start = set_torsions(local_structure(parsed, seed=1), topology, angles)
    deltas = (torch.rand(6, topology.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * 0.5
    kept = start.clone()
    out = rotate_torsions(start, topology, deltas)
    assert torch.equal(start, kept)
    expected = set_torsions(start, topology, dihedral_angles(start, topology.torsion_atoms) + deltas)
    assert torch.allclose(out, expected, atol=1e-10)
    changed = dihedral_angles(out, topology.torsion_atoms) - dihedral_angles(start, topology.torsion_atoms)
    assert torch.allclose(wrap_angle(changed), deltas, atol=1e-9)
    with pytest.raises(ValueError, match="deltas"):
        rotate_torsions(start, topology, deltas[:, :1])


def test_set_torsions_keeps_bond_lengths_angles_and_chirality():
    parsed = parse_smiles(IBUPROFEN_S)
    mol = parsed.mol
    topology = find_torsions(mol)
    pos = local_structure(parsed, seed=2)
    angles = torch.linspace(-3.0, 3.0, 4 * topology.num_torsions, dtype=torch.float64).reshape(4, -1)
    out = set_torsions(pos, topology, angles)
    bonds = torch.tensor([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()])
    triples = torch.tensor(
        [
            [n1.GetIdx(), atom.GetIdx(), n2.GetIdx()]
            for atom in mol.GetAtoms()
            for i, n1 in enumerate(atom.GetNeighbors())
            for n2 in list(atom.GetNeighbors())[i + 1 :]
        ]
    )

    def lengths(x):
        return (x[..., bonds[:, 0], :] - x[..., bonds[:, 1], :]).norm(dim=-1)

    def angles_of(x):
        u = x[..., triples[:, 0], :] - x[..., triples[:, 1], :]
        v = x[..., triples[:, 2], :] - x[..., triples[:, 1], :]
        return torch.acos((u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)))

    assert torch.allclose(lengths(out), lengths(pos).expand(4, -1), atol=1e-9)
    assert torch.allclose(angles_of(out), angles_of(pos).expand(4, -1), atol=1e-9)
    # Arbitrary torsions may make steric clashes, but never change a stereocentre.
    assert (chirality_signs(mol, out) == 1).all()
    for b in range(4):
        perceived = _with_positions(mol, out[b])
        Chem.AssignStereochemistryFrom3D(perceived)
        assert Chem.MolToSmiles(Chem.RemoveHs(perceived)) == parsed.canonical_smiles


def test_set_torsions_is_differentiable_and_batched_like_single_calls():
    parsed = parse_smiles("CCCC(=O)OC")
    topology = find_torsions(parsed.mol)
    pos = local_structure(parsed, seed=0)
    angles = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.5, -2.5]], dtype=torch.float64, requires_grad=True)
    out = set_torsions(pos, topology, angles)
    single = set_torsions(pos, topology, angles[1:].detach())
    assert torch.allclose(out[1:].detach(), single)
    out.pow(2).sum().backward()
    assert angles.grad is not None and torch.isfinite(angles.grad).all() and angles.grad.abs().sum() > 0


def test_torsion_gradient_matches_finite_differences_of_the_energy():
    parsed = parse_smiles(IBUPROFEN_S)
    system = atomic_system(parsed)
    topology = find_torsions(parsed.mol)
    pos = local_structure(parsed, seed=3)
    model = MMFFEnergy()
    angles = torch.tensor([[0.4, -2.0, 1.1, 2.9], [-1.5, 0.7, -0.3, 1.9]], dtype=torch.float64)
    x = set_torsions(pos, topology, angles)
    analytic = torsion_gradient(x, model.energy_and_forces(system, x).forces, topology)
    h = 1e-5
    numeric = torch.zeros_like(angles)
    for k in range(topology.num_torsions):
        step = torch.zeros_like(angles)
        step[:, k] = h
        e_plus = model.energy(system, set_torsions(pos, topology, angles + step))
        e_minus = model.energy(system, set_torsions(pos, topology, angles - step))
        numeric[:, k] = (e_plus - e_minus) / (2 * h)
    assert analytic.abs().max() > 0.1  # a non-trivial check
    assert torch.allclose(analytic, numeric, atol=1e-4, rtol=1e-4)


def test_local_structure_is_deterministic_per_seed():
    parsed = parse_smiles(IBUPROFEN_S)
    a, b, c = local_structure(parsed, 7), local_structure(parsed, 7), local_structure(parsed, 8)
    assert a.shape == (parsed.num_atoms, 3) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert check_conformers(parsed.mol, a[None])[0].ok


def test_local_structure_failure_is_a_typed_error(monkeypatch):
    monkeypatch.setattr(embedding_module.AllChem, "EmbedMolecule", lambda *args, **kwargs: -1)
    with pytest.raises(InvalidMoleculeError) as err:
        local_structure(parse_smiles("CCCC"), seed=0)
    assert err.value.reason == "no_conformer"


def test_wrong_shapes_are_refused():
    parsed = parse_smiles("CCCC")
    topology = find_torsions(parsed.mol)
    pos = local_structure(parsed, 0)
    with pytest.raises(ValueError, match="torsions"):
        set_torsions(pos, topology, torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="atoms"):
        set_torsions(pos[:5], topology, torch.zeros(1, 1, dtype=torch.float64))
