"""The torsional controller: rotation/translation/permutation invariance, sign flip under reflection."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from rdkit import Chem

from adjoint_sampling.chemistry.graph import ATOM_FEATURE_DIM, BOND_FEATURE_DIM, atomic_system, featurize
from adjoint_sampling.chemistry.parsing import ParsedMolecule
from adjoint_sampling.chemistry.torsions import dihedral_angles, find_torsions
from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.molecular.collate import torsional_context
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord, prepare_molecules

SMILES = ["N[C@@H](Cc1ccccc1)C(=O)O", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]
KEYS = [0, 0, 1, 0, 1, 1]


@pytest.fixture(scope="module")
def records() -> list[MoleculeRecord]:
    return prepare_molecules(SMILES)


@pytest.fixture(scope="module", params=[False, True], ids=["all_atoms", "heavy_atoms"])
def controller(request) -> torch.nn.Module:
    """Every symmetry test runs on the all-atom graph and on the heavy-atom graph."""
    torch.manual_seed(0)
    net = build_controller(
        "torsional",
        {"num_atom_features": ATOM_FEATURE_DIM, "num_bond_features": BOND_FEATURE_DIM, "heavy_atoms_only": request.param},
    )
    return net.double().eval()


def _run(controller, records, keys, t, x):
    ctx = torsional_context(records, keys)
    with torch.no_grad():
        return controller(t, x, SimpleNamespace(context=ctx))


def _inputs(records, keys, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = sum(records[k].num_torsions for k in keys)
    x = (torch.rand(m, 1, generator=g, dtype=torch.float64) * 2 - 1) * torch.pi
    t = torch.rand(len(keys), generator=g, dtype=torch.float64)
    return t, x


def _moved(records, transform):
    return [dataclasses.replace(r, local_positions=transform(r.local_positions)) for r in records]


def test_output_shape_and_dependence_on_state_and_time(controller, records):
    t, x = _inputs(records, KEYS)
    out = _run(controller, records, KEYS, t, x)
    assert out.shape == x.shape
    assert out.abs().max() > 0
    assert (out - _run(controller, records, KEYS, t, x + 0.5)).abs().max() > 1e-3 * out.abs().max()
    assert (out - _run(controller, records, KEYS, t * 0.5, x)).abs().max() > 1e-3 * out.abs().max()
    # a system's output does not depend on the other systems of the batch
    rows = torsional_context(records, KEYS).torsion_system == 4
    single = _run(controller, records, [KEYS[4]], t[4:5], x[rows])
    assert torch.allclose(single, out[rows], atol=1e-10 * float(out.abs().max()))


def test_invariant_under_rotation_and_translation(controller, records):
    t, x = _inputs(records, KEYS)
    out = _run(controller, records, KEYS, t, x)
    q = random_orthogonal(3, torch.Generator().manual_seed(1)).double()
    moved = _moved(records, lambda p: p @ q.T + torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(_run(controller, moved, KEYS, t, x), out, atol=1e-9 * float(out.abs().max()) + 1e-12)


def test_sign_flips_under_reflection(controller, records):
    """A mirror image has every dihedral negated, so the control on each torsion is negated."""
    t, x = _inputs(records, KEYS)
    out = _run(controller, records, KEYS, t, x)
    q = random_orthogonal(3, torch.Generator().manual_seed(2), reflection=True).double()
    mirrored = _moved(records, lambda p: p @ q.T)
    out_mirror = _run(controller, mirrored, KEYS, t, -x)
    assert torch.allclose(out_mirror, -out, atol=1e-9 * float(out.abs().max()) + 1e-12)
    # and it is not an even function: the mirrored output differs from the plain one
    assert (out_mirror - out).abs().max() > 1e-3 * out.abs().max()


def _renumbered(record: MoleculeRecord, perm: list[int]) -> MoleculeRecord:
    """The same molecule with atom i of the new numbering = atom perm[i] of the old one."""
    mol = Chem.RenumberAtoms(record.parsed.mol, perm)
    parsed = ParsedMolecule(record.parsed.smiles, record.parsed.canonical_smiles, mol, record.parsed.charge,
                            record.parsed.multiplicity)
    return MoleculeRecord(parsed=parsed, graph=featurize(parsed), system=atomic_system(parsed),
                          local_positions=record.local_positions[perm], topology=find_torsions(mol))


def test_invariant_under_atom_permutation(controller, records):
    rec = records[0]
    keys = [0, 0]
    t, x = _inputs([rec], keys, seed=3)
    out = _run(controller, [rec], keys, t, x)
    perm = torch.randperm(rec.num_atoms, generator=torch.Generator().manual_seed(4)).tolist()
    new = _renumbered(rec, perm)
    assert new.num_torsions == rec.num_torsions
    # the same 3D structures, expressed in the new numbering's torsion coordinates
    ctx = torsional_context([rec], keys)
    pos = ctx.positions(x).reshape(len(keys), rec.num_atoms, 3)[:, perm]
    x_new = dihedral_angles(pos, new.topology.torsion_atoms).reshape(-1, 1)
    out_new = _run(controller, [new], keys, t, x_new)
    # match torsions by their (unordered) bond, mapped back to the old numbering
    old_bonds = [frozenset(b) for b in rec.topology.torsion_atoms[:, 1:3].tolist()]
    new_bonds = [frozenset(perm[i] for i in b) for b in new.topology.torsion_atoms[:, 1:3].tolist()]
    order = [new_bonds.index(b) for b in old_bonds]
    m = rec.num_torsions
    reordered = out_new.reshape(len(keys), m)[:, order].reshape(-1, 1)
    assert torch.allclose(reordered, out, atol=1e-8 * float(out.abs().max()) + 1e-12)


def test_heavy_atom_graph_ignores_hydrogen_positions(records):
    """The heavy-atom controller does not see where the hydrogens are; the all-atom one does."""
    rec = records[1]
    keys = [0, 0]
    t, x = _inputs([rec], keys, seed=5)
    hydrogens = rec.parsed.mol.GetNumAtoms() - rec.parsed.mol.GetNumHeavyAtoms()
    assert hydrogens > 0
    is_h = torch.tensor([a.GetAtomicNum() == 1 for a in rec.parsed.mol.GetAtoms()])
    shift = torch.zeros_like(rec.local_positions)
    shift[is_h] = 0.3
    moved = [dataclasses.replace(rec, local_positions=rec.local_positions + shift)]
    outs = {}
    for heavy in (False, True):
        torch.manual_seed(0)
        net = build_controller(
            "torsional",
            {"num_atom_features": ATOM_FEATURE_DIM, "num_bond_features": BOND_FEATURE_DIM, "heavy_atoms_only": heavy},
        ).double().eval()
        outs[heavy] = (_run(net, [rec], keys, t, x), _run(net, moved, keys, t, x))
    plain, shifted = outs[True]
    assert torch.allclose(plain, shifted, atol=1e-12)
    plain, shifted = outs[False]
    assert (plain - shifted).abs().max() > 1e-4 * plain.abs().max()
