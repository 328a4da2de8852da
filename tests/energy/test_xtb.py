"""GFN2-xTB backend: forces = -grad E, charge and unpaired electrons passed, failures counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tblite.interface import Calculator

from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.units import BOHR_TO_ANGSTROM, HARTREE_TO_KCAL
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.energy.xtb import XTBEnergy


def _direct_tblite(numbers, pos_angstrom, charge, uhf) -> float:
    calc = Calculator("GFN2-xTB", numbers, pos_angstrom / BOHR_TO_ANGSTROM, charge=charge, uhf=uhf)
    calc.set("verbosity", 0)
    return calc.singlepoint().get("energy") * HARTREE_TO_KCAL


def test_forces_are_minus_the_gradient(numerical_forces):
    parsed = parse_smiles("CO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0) + 0.03 * torch.randn(1, parsed.num_atoms, 3, dtype=torch.float64,
                                                          generator=torch.Generator().manual_seed(0))
    model = XTBEnergy(num_workers=2, accuracy=0.01)
    result = model.energy_and_forces(system, pos)
    assert result.ok.all()
    numeric = numerical_forces(model, system, pos, h=2e-3)
    assert result.forces.abs().max() > 1.0
    assert torch.allclose(result.forces, numeric, atol=2e-2)


def test_charge_and_unpaired_electrons_reach_tblite():
    anion = parse_smiles("CC(=O)[O-]")
    system = atomic_system(anion)
    pos = local_structure(anion, 0)
    numbers = system.atomic_numbers.numpy()
    energy = XTBEnergy(num_workers=1).energy(system, pos[None]).item()
    assert energy == pytest.approx(_direct_tblite(numbers, pos.numpy(), -1, 0), abs=1e-6)
    assert abs(energy - _direct_tblite(numbers, pos.numpy(), 0, 1)) > 10.0  # the charge matters

    radical = parse_smiles("[CH3]", allow_radicals=True)
    system = atomic_system(radical)
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.08, 0.0, 0.0], [-0.54, 0.935, 0.0], [-0.54, -0.935, 0.0]],
                       dtype=torch.float64)
    energy = XTBEnergy(num_workers=1).energy(system, pos[None]).item()
    assert system.multiplicity == 2
    assert energy == pytest.approx(_direct_tblite(system.atomic_numbers.numpy(), pos.numpy(), 0, 1), abs=1e-6)


def test_thread_pool_gives_the_same_numbers():
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0) + 0.05 * torch.randn(4, parsed.num_atoms, 3, dtype=torch.float64,
                                                          generator=torch.Generator().manual_seed(1))
    serial = XTBEnergy(num_workers=1).energy_and_forces(system, pos)
    pooled = XTBEnergy(num_workers=2).energy_and_forces(system, pos)
    assert torch.allclose(serial.energy, pooled.energy, atol=1e-9)
    assert torch.allclose(serial.forces, pooled.forces, atol=1e-8)


def test_scf_failure_is_a_counted_skip_not_a_crash():
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0)[None]
    result = XTBEnergy(max_iterations=1, num_workers=1).energy_and_forces(system, pos)
    assert result.ok.tolist() == [False]
    assert "SCF" in result.failure_reasons[0]
    assert torch.isnan(result.energy).all() and (result.forces == 0).all()


def test_absurd_geometry_in_a_batch_fails_only_that_sample():
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    good = local_structure(parsed, 0)
    absurd = torch.zeros_like(good)  # every atom on one point
    nan = good.clone()
    nan[0, 0] = float("nan")
    result = build_energy("xtb", num_workers=2).energy_and_forces(system, torch.stack([good, absurd, nan]))
    assert result.ok.tolist() == [True, False, False]
    assert result.num_failed == 2 and len(result.failure_reasons) == 2
    assert np.isfinite(result.energy[0].item())


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        XTBEnergy(method="GFN9-xTB")
    with pytest.raises(ConfigError):
        XTBEnergy(max_iterations=0)
    with pytest.raises(ConfigError):
        build_energy("xtb", no_such_option=1)
