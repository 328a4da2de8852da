"""Bond-structure penalty: zero on real molecules, exact values, forces, combination."""

from __future__ import annotations

import pytest
import torch

from adjoint_sampling.chemistry.checks import covalent_radii
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.penalty import BondStructurePenalty, PenalizedEnergy


@pytest.mark.parametrize(
    "smiles", ["CCO", "O=S1(=O)CSC1", "Cc1ccc2c(c1C)Nc1c(c(=O)c1=O)N2", "OC(O)C(Br)(Br)Br", "c1cc(I)c(I)cc1"]
)
def test_zero_for_relaxed_molecules_including_small_rings(smiles):
    parsed = parse_smiles(smiles)
    pos = local_structure(parsed, 0)
    result = BondStructurePenalty().energy_and_forces(atomic_system(parsed), pos[None])
    assert result.energy.item() == 0.0
    assert (result.forces == 0).all()


def test_value_of_a_stretched_bond_and_a_squeezed_pair():
    # Two bonded atoms and a third bonded to neither: H-H ... H with a 1-2 bond only.
    system = AtomicSystem(atomic_numbers=torch.tensor([1, 1, 6]), key="")
    penalty = BondStructurePenalty(bonds=torch.tensor([[0, 1]]), alpha=10.0, bond_factor=1.2, nonbond_factor=1.3)
    r_h, r_c = covalent_radii([1, 6])
    pos = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]], dtype=torch.float64)
    upper_hh = 1.2 * 2 * r_h
    lower_hc = 1.3 * (r_h + r_c)
    d_02 = 0.5
    d_12 = (1.0**2 + 0.5**2) ** 0.5
    expected = 10.0 * ((1.0 - upper_hh) + max(lower_hc - d_02, 0) + max(lower_hc - d_12, 0))
    assert penalty.energy(system, pos).item() == pytest.approx(expected, rel=1e-12)


def test_forces_are_minus_the_gradient(numerical_forces):
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0)
    generator = torch.Generator().manual_seed(0)
    distorted = pos + 0.35 * torch.randn(2, *pos.shape, generator=generator, dtype=torch.float64)
    penalty = BondStructurePenalty(alpha=5.0)
    result = penalty.energy_and_forces(system, distorted)
    assert (result.energy > 0).all()  # the distortion does violate some limits
    assert torch.allclose(result.forces, numerical_forces(penalty, system, distorted, h=1e-6), atol=1e-5)


def test_penalized_energy_adds_and_propagates_failures():
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = local_structure(parsed, 0)
    stretched = pos.clone()
    stretched[0] += torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    batch = torch.stack([pos, stretched, stretched])
    batch[2, 3, 1] = float("nan")
    combined = PenalizedEnergy(MMFFEnergy(), BondStructurePenalty(alpha=7.0))
    result = combined.energy_and_forces(system, batch)
    base = MMFFEnergy().energy_and_forces(system, batch)
    extra = BondStructurePenalty(alpha=7.0).energy_and_forces(system, batch)
    assert combined.name == "mmff+bond_penalty"
    assert result.ok.tolist() == [True, True, False]
    assert torch.allclose(result.energy[:2], base.energy[:2] + extra.energy[:2])
    assert torch.allclose(result.forces[:2], base.forces[:2] + extra.forces[:2])
    assert extra.energy[1] > 0 and extra.energy[0] == 0
    assert len(result.failure_reasons) == 1


def test_penalized_energy_passes_on_its_base_energys_refusals(tmp_path):
    from molecular_helpers import write_tiny_gnn_checkpoint

    from adjoint_sampling.core.errors import InvalidMoleculeError
    from adjoint_sampling.energy.gnn import GNNEnergy

    penalized = PenalizedEnergy(GNNEnergy(checkpoint_path=write_tiny_gnn_checkpoint(tmp_path / "gnn.pt")))
    penalized.check_system(atomic_system(parse_smiles("CCO")))  # accepted
    with pytest.raises(InvalidMoleculeError) as info:
        penalized.check_system(atomic_system(parse_smiles("[NH3+]CC[NH3+]")))
    assert info.value.reason == "unsupported_charge"
