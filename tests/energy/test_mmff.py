"""MMFF94 backend: RDKit's numbers, forces = -grad E, caching by key, failures."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import EnergyCalculationError
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.registry import build_energy


def _rdkit_energy(mol: Chem.Mol, pos: torch.Tensor) -> float:
    work = Chem.Mol(mol)
    conf = Chem.Conformer(work.GetNumAtoms())
    for i, xyz in enumerate(pos.tolist()):
        conf.SetAtomPosition(i, xyz)
    work.AddConformer(conf, assignId=True)
    return AllChem.MMFFGetMoleculeForceField(work, AllChem.MMFFGetMoleculeProperties(work)).CalcEnergy()


def _jittered(parsed, batch=3, scale=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pos = local_structure(parsed, 0)
    return pos + scale * torch.randn(batch, *pos.shape, generator=generator, dtype=torch.float64)


def test_energy_matches_rdkit_and_forces_are_minus_the_gradient(numerical_forces):
    parsed = parse_smiles("CC(=O)[O-]")  # charged: MMFF charges come from the molecule
    system = atomic_system(parsed)
    model = build_energy("mmff")
    pos = _jittered(parsed)
    result = model.energy_and_forces(system, pos)
    assert result.ok.all() and result.energy.dtype == torch.float64
    for b in range(pos.shape[0]):
        assert result.energy[b].item() == pytest.approx(_rdkit_energy(parsed.mol, pos[b]), abs=1e-9)
    numeric = numerical_forces(model, system, pos, h=1e-5)
    assert result.forces.abs().max() > 1.0
    assert torch.allclose(result.forces, numeric, atol=1e-4)


def test_cache_is_keyed_by_atom_order():
    model = MMFFEnergy(cache_size=4)
    a, b = parse_smiles("CCO"), parse_smiles("OCC")
    pos_a = local_structure(a, 0)
    # the same geometry in b's atom order: map through a substructure match
    match = b.mol.GetSubstructMatch(a.mol)
    pos_b = torch.zeros_like(pos_a)
    pos_b[list(match)] = pos_a
    e_a = model.energy(atomic_system(a), pos_a[None])
    e_b = model.energy(atomic_system(b), pos_b[None])
    assert len(model._cache) == 2
    assert e_a.item() == pytest.approx(e_b.item(), abs=1e-8)
    model.energy(atomic_system(a), pos_a[None])
    assert len(model._cache) == 2


def test_non_finite_positions_are_a_counted_failure():
    parsed = parse_smiles("CCO")
    pos = _jittered(parsed, batch=2)
    pos[1, 0, 0] = float("nan")
    result = MMFFEnergy().energy_and_forces(atomic_system(parsed), pos)
    assert result.ok.tolist() == [True, False]
    assert result.num_failed == 1 and len(result.failure_reasons) == 1
    assert torch.isnan(result.energy[1]) and (result.forces[1] == 0).all()


def test_molecule_without_parameters_is_a_typed_error():
    parsed = parse_smiles("ClP(Cl)(Cl)(Cl)Cl")
    with pytest.raises(EnergyCalculationError, match="MMFF94"):
        MMFFEnergy().energy(atomic_system(parsed), torch.zeros(1, parsed.num_atoms, 3, dtype=torch.float64))


def test_concurrent_calls_from_threads_give_the_serial_numbers():
    from concurrent.futures import ThreadPoolExecutor

    model = MMFFEnergy(cache_size=2)  # small cache: entries are evicted while threads run
    molecules = [parse_smiles(s) for s in ("CCO", "CC(=O)[O-]", "c1ccccc1O", "CCN")]
    jobs = [(atomic_system(p), _jittered(p, batch=4, seed=i)) for i, p in enumerate(molecules)] * 5
    serial = [MMFFEnergy().energy_and_forces(system, pos) for system, pos in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda job: model.energy_and_forces(*job), jobs))
    for a, b in zip(serial, threaded):
        assert torch.equal(a.energy, b.energy) and torch.equal(a.forces, b.forces)
