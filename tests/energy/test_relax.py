"""relax(): RDKit MMFF optimiser, generic L-BFGS on any backend, failures, bad methods."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.relax import relax
from adjoint_sampling.energy.xtb import XTBEnergy

SMILES = "CC(C)C[C@H](N)C(=O)O"


def _starts(parsed, batch, scale=0.1, seed=0):
    pos = local_structure(parsed, seed)
    noise = torch.randn(batch, *pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return pos + scale * noise


def test_mmff_relaxation_matches_rdkit_and_keeps_the_structure():
    parsed = parse_smiles(SMILES)
    system = atomic_system(parsed)
    start = _starts(parsed, 3)
    result = relax(system, start, "mmff", max_steps=2000)
    assert result.ok.all() and result.converged.all()
    before = MMFFEnergy().energy(system, start)
    assert (result.energy < before).all()
    assert torch.allclose(MMFFEnergy().energy(system, result.positions), result.energy, atol=1e-6)
    for b in range(3):
        mol = Chem.Mol(parsed.mol)
        conf = Chem.Conformer(mol.GetNumAtoms())
        for i, xyz in enumerate(start[b].tolist()):
            conf.SetAtomPosition(i, xyz)
        mol.AddConformer(conf, assignId=True)
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
        reference = AllChem.MMFFGetMoleculeForceField(mol, AllChem.MMFFGetMoleculeProperties(mol)).CalcEnergy()
        assert result.energy[b].item() == pytest.approx(reference, abs=1e-4)
    assert all(check.ok for check in check_conformers(parsed.mol, result.positions))


def test_generic_lbfgs_reaches_a_minimum_of_the_backend():
    parsed = parse_smiles(SMILES)
    system = atomic_system(parsed)
    start = _starts(parsed, 2, seed=1)
    model = MMFFEnergy()
    result = relax(system, start, model, max_steps=500)
    assert result.ok.all() and result.converged.all()
    assert (result.num_steps > 0).all() and (result.num_steps <= 500).all()
    forces = model.energy_and_forces(system, result.positions).forces
    assert forces.norm(dim=-1).max() < 0.5  # DEFAULT_FMAX kcal/mol/A
    rdkit_min = relax(system, start, "mmff", max_steps=2000).energy
    assert torch.allclose(result.energy, rdkit_min, atol=0.1)  # same basin, looser threshold
    assert (result.energy < model.energy(system, start)).all()


def test_xtb_relaxation_lowers_energy_and_forces():
    parsed = parse_smiles("CO")
    system = atomic_system(parsed)
    start = _starts(parsed, 2, scale=0.08)
    model = XTBEnergy(num_workers=2)
    result = relax(system, start, model, max_steps=200)
    assert result.ok.all() and result.converged.all()
    assert (result.energy < model.energy(system, start)).all()
    assert model.energy_and_forces(system, result.positions).forces.norm(dim=-1).max() < 0.5


def test_failed_energy_during_relaxation_is_reported_not_raised():
    parsed = parse_smiles("CO")
    system = atomic_system(parsed)
    start = _starts(parsed, 2)
    result = relax(system, start, XTBEnergy(max_iterations=1, num_workers=1), max_steps=5)
    assert result.ok.tolist() == [False, False]
    assert torch.isnan(result.energy).all()
    assert torch.equal(result.positions, start)


def test_unknown_method_is_a_config_error():
    parsed = parse_smiles("CO")
    with pytest.raises(ConfigError, match="relaxation method"):
        relax(atomic_system(parsed), _starts(parsed, 1), "uff")


def test_mmff_relaxation_skips_non_finite_conformers():
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    start = _starts(parsed, 3)
    start[1, 0, 0] = float("nan")
    result = relax(system, start, "mmff")
    assert result.ok.tolist() == [True, False, True]
    assert torch.isnan(result.energy[1]) and torch.isfinite(result.energy[[0, 2]]).all()
    assert torch.isnan(result.positions[1, 0, 0]) and torch.equal(result.positions[1, 1:], start[1, 1:])
    assert check_conformers(parsed.mol, result.positions[[0, 2]])[0].ok
