"""GNN potential backend (random weights): forces = -grad E, invariances, batch independence, charge
input, refused elements and charges, checkpoint round trip, relaxation through ``relax``."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import CheckpointError, ConfigError, InvalidMoleculeError
from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.energy.gnn import GNNCheckpoint, GNNEnergy, load_gnn_checkpoint, save_gnn_checkpoint
from adjoint_sampling.energy.gnn_graph import concat_graphs
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential, polynomial_envelope
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.energy.relax import relax

HP = GNNHParams(num_scalars=8, num_vectors=4, num_layers=2, radial_hidden=8)
ARCHITECTURE_HP = {
    "nequip": HP,
    "mace": GNNHParams(architecture="mace", num_scalars=8, num_vectors=8, num_layers=2, lmax=2, radial_hidden=8,
                       correlation=2),
}


def _random_model(hp: GNNHParams = HP, seed: int = 0) -> GNNPotential:
    torch.manual_seed(seed)
    model = GNNPotential(hp)
    model.energy_scale.fill_(3.0)
    model.atom_reference.copy_(torch.linspace(-300.0, -10.0, len(hp.elements), dtype=torch.float64))
    return model


def _backend(hp: GNNHParams = HP, **kwargs) -> GNNEnergy:
    model = _random_model(hp)
    ckpt = GNNCheckpoint(hparams=hp, state_dict=model.state_dict(), elements=hp.elements,
                         charge_range=(hp.min_charge, hp.max_charge), **kwargs)
    return GNNEnergy(checkpoint=ckpt, dtype="float64")


@pytest.fixture(scope="module")
def molecule() -> tuple[AtomicSystem, torch.Tensor]:
    parsed = parse_smiles("OCC(N)C(=O)Cl")
    return atomic_system(parsed), rdkit_conformers(parsed.mol, 3, seed=1)


@pytest.mark.parametrize("architecture", ["nequip", "mace"])
def test_forces_are_minus_the_gradient(molecule, numerical_forces, architecture):
    system, pos = molecule
    model = _backend(ARCHITECTURE_HP[architecture])
    result = model.energy_and_forces(system, pos[:2])
    assert result.ok.all() and result.energy.dtype == torch.float64 and result.forces.dtype == torch.float64
    assert result.forces.abs().max() > 1e-2
    numeric = numerical_forces(model, system, pos[:2], h=1e-5)
    assert torch.allclose(result.forces, numeric, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("hparams", [
    GNNHParams(num_scalars=8, num_vectors=4, radial_hidden=8, lmax=1),
    GNNHParams(num_scalars=8, num_vectors=4, radial_hidden=8, lmax=2),
    ARCHITECTURE_HP["mace"],
], ids=["nequip-lmax1", "nequip-lmax2", "mace-lmax2"])
def test_energy_is_invariant_to_rotation_translation_and_permutation(molecule, hparams):
    system, pos = molecule
    model = _backend(hparams)
    gen = torch.Generator().manual_seed(3)
    rot = random_orthogonal(3, gen)
    moved = pos @ rot.T + torch.randn(3, dtype=torch.float64, generator=gen)
    ref = model.energy_and_forces(system, pos)
    out = model.energy_and_forces(system, moved)
    assert torch.allclose(out.energy, ref.energy, atol=1e-8, rtol=0)
    assert torch.allclose(out.forces, ref.forces @ rot.T, atol=1e-8)
    perm = torch.randperm(system.num_atoms, generator=gen)
    permuted = AtomicSystem(atomic_numbers=system.atomic_numbers[perm], charge=system.charge)
    out = model.energy_and_forces(permuted, pos[:, perm])
    assert torch.allclose(out.energy, ref.energy, atol=1e-8, rtol=0)
    assert torch.allclose(out.forces, ref.forces[:, perm], atol=1e-8)


@pytest.mark.parametrize("architecture", ["nequip", "mace"])
def test_energy_of_a_conformer_does_not_depend_on_its_batch_mates(molecule, architecture):
    system, pos = molecule
    model = _backend(ARCHITECTURE_HP[architecture])
    alone = model.energy_and_forces(system, pos[1:2])
    far = pos[0] + 100.0  # a batch mate far away in space still shares no edge
    together = model.energy_and_forces(system, torch.stack([pos[0], pos[1], far, pos[2]]))
    assert torch.allclose(together.energy[1], alone.energy[0], atol=1e-9, rtol=0)
    assert torch.allclose(together.forces[1], alone.forces[0], atol=1e-9)
    assert torch.allclose(together.energy[2], together.energy[0], atol=1e-9, rtol=0)


@pytest.mark.parametrize("architecture", ["nequip", "mace"])
def test_total_charge_is_an_input(molecule, architecture):
    system, pos = molecule
    model = _backend(ARCHITECTURE_HP[architecture])
    cation = AtomicSystem(atomic_numbers=system.atomic_numbers, charge=1)
    assert (model.energy(cation, pos) - model.energy(system, pos)).abs().min() > 1e-6


def test_unsupported_elements_and_charges_are_refused_by_name(molecule):
    system, pos = molecule
    model = _backend()
    silicon = AtomicSystem(atomic_numbers=torch.tensor([14, 1, 1, 1, 1]), charge=0)
    with pytest.raises(InvalidMoleculeError, match="Si") as info:
        model.energy(silicon, torch.zeros(1, 5, 3, dtype=torch.float64))
    assert info.value.reason == "unsupported_element"
    with pytest.raises(InvalidMoleculeError, match="total charge 3") as info:
        model.energy(AtomicSystem(atomic_numbers=system.atomic_numbers, charge=3), pos)
    assert info.value.reason == "unsupported_charge"
    no_chlorine = GNNEnergy(checkpoint=GNNCheckpoint(
        hparams=HP, state_dict=_random_model().state_dict(), elements=(1, 6, 7, 8), charge_range=(0, 0)))
    with pytest.raises(InvalidMoleculeError, match="Cl"):
        no_chlorine.energy(system, pos)
    with pytest.raises(InvalidMoleculeError, match="total charge -1"):
        no_chlorine.energy(AtomicSystem(atomic_numbers=torch.tensor([8, 1]), charge=-1),
                           torch.tensor([[[0.0, 0.0, 0.0], [0.97, 0.0, 0.0]]], dtype=torch.float64))


def test_checkpoint_round_trip_registry_and_size_warning(tmp_path, molecule, caplog):
    system, pos = molecule
    path = tmp_path / "gnn.pt"
    model = _random_model()
    save_gnn_checkpoint(path, model, elements=(1, 6, 7, 8, 17), charge_range=(-1, 1),
                        training_data={"max_atoms": 5, "level_of_theory": "GFN2-xTB"})
    ckpt = load_gnn_checkpoint(path)
    assert ckpt.elements == (1, 6, 7, 8, 17) and ckpt.charge_range == (-1, 1)
    assert {"adjoint_sampling", "torch", "e3nn"} <= set(ckpt.versions)
    backend = build_energy("gnn", checkpoint_path=path, dtype="float64")
    with caplog.at_level(logging.WARNING, logger="adjoint_sampling.energy.gnn"):
        energy = backend.energy(system, pos)
    assert "larger than any in the GNN's training data" in caplog.text
    with torch.no_grad():
        assert torch.allclose(energy, model.double()(pos, system.atomic_numbers, 0), atol=1e-9, rtol=0)
    fast = build_energy("gnn", checkpoint_path=path)  # float32 network, float64 out
    assert torch.allclose(fast.energy(system, pos), energy, atol=1e-3, rtol=0)
    # only the network is cast: the fitted per-element references stay float64, bit for bit
    assert fast.model.atom_reference.dtype == torch.float64
    assert torch.equal(fast.model.atom_reference, model.atom_reference)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_gnn_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ConfigError):
        build_energy("gnn", checkpoint_path=path, no_such_option=1)


def test_non_finite_positions_fail_per_conformer(molecule):
    system, pos = molecule
    bad = pos.clone()
    bad[1, 0, 0] = float("nan")
    result = _backend().energy_and_forces(system, bad)
    assert result.ok.tolist() == [True, False, True] and result.failure_reasons == ("non-finite positions",)
    assert torch.isnan(result.energy[1]) and (result.forces[1] == 0).all()


def test_envelope_is_smooth_at_the_cutoff():
    x = torch.tensor([0.0, 1.0 - 1e-6, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
    u = polynomial_envelope(x, 6)
    (grad,) = torch.autograd.grad(u.sum(), x)
    u = u.detach()
    assert u[0] == 1.0 and abs(float(u[1])) < 1e-12 and u[2] == 0 and u[3] == 0
    assert grad.abs()[1:].max() < 1e-9


def test_relax_with_the_gnn_backend_lowers_the_energy(tmp_path, molecule):
    system, pos = molecule
    path = tmp_path / "gnn.pt"
    model = _random_model()
    model.energy_scale.fill_(100.0)  # random weights give weak forces; make them worth relaxing
    save_gnn_checkpoint(path, model)
    start = build_energy("gnn", checkpoint_path=path).energy(system, pos)
    result = relax(system, pos, "gnn", max_steps=20, fmax=0.05, checkpoint_path=path)
    assert result.ok.all()
    assert (result.energy < start - 1e-3).all()
    assert (result.num_steps > 0).all()


@pytest.mark.parametrize("architecture", ["nequip", "mace"])
def test_one_graph_of_several_molecules_gives_each_molecule_its_own_energies(molecule, architecture):
    system, pos = molecule
    model = _random_model(ARCHITECTURE_HP[architecture]).double()
    other = parse_smiles("C[NH3+]")
    other_system, other_pos = atomic_system(other), rdkit_conformers(other.mol, 2, seed=0)
    graphs = [model.graph(pos, system.atomic_numbers, 0, molecule=0),
              model.graph(other_pos, other_system.atomic_numbers, 1, molecule=1)]
    together = model.graph_energy(concat_graphs(graphs)).detach()
    apart = torch.cat([model(pos, system.atomic_numbers, 0), model(other_pos, other_system.atomic_numbers, 1)])
    assert together.shape == (5,)
    assert torch.allclose(together, apart.detach(), atol=1e-9, rtol=0)


def test_an_unknown_architecture_is_refused_by_name():
    with pytest.raises(ConfigError, match="schnet"):
        GNNHParams(architecture="schnet")
    with pytest.raises(ConfigError, match="no_such"):
        GNNHParams.from_dict({"no_such": 1})


@pytest.mark.parametrize("architecture", ["nequip", "mace"])
def test_energy_is_continuous_where_a_pair_crosses_the_cutoff(architecture):
    """A message must vanish at the cutoff even though the radial MLP has biases (format 1 did not:
    its energies jumped there, and L-BFGS relaxations stalled on the jumps)."""
    hp = ARCHITECTURE_HP[architecture]
    model = _random_model(hp).double()
    for param in model.network.parameters():  # make sure biases are far from zero
        param.data.add_(0.3)
    numbers = torch.tensor([8, 1, 6])
    base = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    inside, outside = base.clone(), base.clone()
    inside[2, 0], outside[2, 0] = hp.cutoff - 1e-7, hp.cutoff + 1e-7
    energies = model(torch.stack([inside, outside]), numbers, 0).detach()
    assert abs(float(energies[0] - energies[1])) < 1e-6
    if architecture == "nequip":  # the format-1 form of the same weights jumps
        rough = GNNPotential(dataclasses.replace(hp, smooth_messages=False)).double()
        rough.load_state_dict(model.state_dict())
        jump = rough(torch.stack([inside, outside]), numbers, 0).detach()
        assert abs(float(jump[0] - jump[1])) > 1e-3


def test_format_1_checkpoints_load_with_their_message_form(tmp_path):
    path = tmp_path / "old.pt"
    save_gnn_checkpoint(path, _random_model())
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    payload["hparams"].pop("smooth_messages")
    torch.save(payload, path)
    assert load_gnn_checkpoint(path).hparams.smooth_messages is False
    assert load_gnn_checkpoint(tmp_path / "old.pt").build_model().hparams == dataclasses.replace(HP, smooth_messages=False)
