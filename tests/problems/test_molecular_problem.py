"""Molecular training problems: datasets, batch layout, energies and their gradients, warm starts."""

from __future__ import annotations

import math

import pytest
import torch

from adjoint_sampling.chemistry.torsions import dihedral_angles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.units import kelvin_to_tau
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.penalty import PenalizedEnergy
from adjoint_sampling.problems.molecular.cartesian import CartesianMoleculeProblem
from adjoint_sampling.problems.molecular.dataset import draw_molecule_keys, prepare_molecules, read_smiles_file
from adjoint_sampling.problems.molecular.torsional import TorsionalMoleculeProblem
from adjoint_sampling.training.jobs import build_problem

SMILES = ["CCCCO", "N[C@@H](Cc1ccccc1)C(=O)O", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]


@pytest.fixture(scope="module")
def records():
    return prepare_molecules(SMILES, min_torsions=1)


@pytest.fixture(scope="module")
def torsional(records):
    return TorsionalMoleculeProblem(records, MMFFEnergy(), temperature_k=300.0, samples_per_molecule=2,
                                    warm_start_pool=4)


def test_read_smiles_file_spice_format_and_plain(tmp_path):
    spice = tmp_path / "spice.txt"
    spice.write_text("Rotatable_Bonds\tSMILES\tRot_Hash\n3\tCC#N\tid1\n0\tc1ccccc1\tid2\n")
    assert read_smiles_file(spice) == ["CC#N", "c1ccccc1"]
    plain = tmp_path / "mols.smi"
    plain.write_text("# comment\nCCO ethanol\n\nC#C\n")
    assert read_smiles_file(plain) == ["CCO", "C#C"]
    with pytest.raises(ConfigError, match="does not exist"):
        read_smiles_file(tmp_path / "missing.smi")


def test_prepare_molecules_skips_and_counts(caplog):
    with caplog.at_level("INFO"):
        recs = prepare_molecules(["CCCC", "not a smiles", "C", "CCO.CC", "C[Se]C", "CCCCO", "CCCCC"],
                                 min_torsions=1, limit=2)
    assert [r.smiles for r in recs] == ["CCCC", "CCCCO"]
    assert ("skipped {'invalid_smiles': 1, 'too_few_torsions': 1, 'multiple_fragments': 1, "
            "'unsupported_element': 1}") in caplog.text


def test_draw_keys_batch_composition():
    g = torch.Generator().manual_seed(0)
    keys = draw_molecule_keys(10, num_molecules=5, samples_per_molecule=4, generator=g)
    assert len(keys) == 10
    assert keys[0:4] == [keys[0]] * 4 and keys[4:8] == [keys[4]] * 4 and keys[8:10] == [keys[8]] * 2
    assert len({keys[0], keys[4], keys[8]}) == 3  # distinct molecules while possible


def test_torsional_batch_layout(torsional, records):
    keys = [1, 1, 0, 2, 1]
    batch = torsional.make_batch(keys)
    m = [records[k].num_torsions for k in keys]
    assert batch.space.num_rows == sum(m) and batch.space.num_systems == len(keys) and batch.space.dim == 1
    expected = torch.cat([torch.full((mi,), i) for i, mi in enumerate(m)])
    assert torch.equal(batch.space.batch, expected)
    # torsions set through the context are read back from the positions
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(sum(m), 1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    pos = batch.context.positions(x)
    start_atom = start_tor = 0
    for key in keys:
        rec = records[key]
        block = pos[start_atom : start_atom + rec.num_atoms]
        got = dihedral_angles(block, rec.topology.torsion_atoms)[0]
        diff = torch.remainder(got - x[start_tor : start_tor + rec.num_torsions, 0] + math.pi, 2 * math.pi) - math.pi
        assert diff.abs().max() < 1e-8
        start_atom += rec.num_atoms
        start_tor += rec.num_torsions


def test_torsional_energy_gradient_matches_finite_differences(torsional, records):
    keys = [2, 1]
    batch = torsional.make_batch(keys)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(batch.space.num_rows, 1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    ev = torsional.evaluate(batch, x)
    assert ev.ok.all() and ev.energy.shape == (2,) and ev.energy_grad.shape == x.shape
    h = 1e-4
    numeric = torch.zeros_like(x)
    for row in range(x.shape[0]):
        plus, minus = x.clone(), x.clone()
        plus[row] += h
        minus[row] -= h
        system = int(batch.space.batch[row])
        numeric[row] = (torsional.evaluate(batch, plus).energy[system] - torsional.evaluate(batch, minus).energy[system]) / (2 * h)
    assert torch.allclose(ev.energy_grad, numeric, rtol=1e-3, atol=1e-3 * float(numeric.abs().max()))
    assert numeric.abs().max() > 0.1  # a real, non-flat landscape


def test_tau_and_description(torsional):
    assert torsional.tau == pytest.approx(kelvin_to_tau(300.0))
    assert torsional.describe()["mode"] == "torsional"
    assert set(torsional.controller_defaults()) == {"num_atom_features", "num_bond_features"}


def test_torsional_warm_start_samples_are_rdkit_torsions(torsional, records):
    keys = [0, 0, 2]
    x1 = torsional.warm_start_samples(keys, torch.Generator().manual_seed(0))
    assert x1.shape == (sum(records[k].num_torsions for k in keys), 1)
    assert (x1.abs() <= math.pi + 1e-6).all()
    # RDKit torsions have far lower MMFF energies than uniformly random ones
    batch = torsional.make_batch([2] * 16)
    pool = torsional.warm_start_samples([2] * 16, torch.Generator().manual_seed(1))
    rand = (torch.rand(pool.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1) * math.pi
    assert torsional.evaluate(batch, pool).energy.median() < torsional.evaluate(batch, rand).energy.median()


def test_cartesian_problem_gradient_and_warm_start(records):
    energy = PenalizedEnergy(MMFFEnergy())
    problem = CartesianMoleculeProblem(records, energy, temperature_k=300.0, samples_per_molecule=2, warm_start_pool=2)
    keys = [1, 0]
    batch = problem.make_batch(keys)
    assert batch.space.num_rows == records[1].num_atoms + records[0].num_atoms and batch.space.dim == 3
    x1 = problem.warm_start_samples(keys, torch.Generator().manual_seed(0)).double()
    assert torch.allclose(batch.space.project_state(x1), x1, atol=1e-5)  # zero centre of mass
    x1 = x1 + 0.05 * torch.randn(x1.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ev = problem.evaluate(batch, x1)
    assert ev.ok.all()
    h = 1e-5
    for row, col in [(0, 0), (3, 2), (records[1].num_atoms + 1, 1)]:
        plus, minus = x1.clone(), x1.clone()
        plus[row, col] += h
        minus[row, col] -= h
        system = int(batch.space.batch[row])
        numeric = (problem.evaluate(batch, plus).energy[system] - problem.evaluate(batch, minus).energy[system]) / (2 * h)
        assert float(ev.energy_grad[row, col]) == pytest.approx(float(numeric), rel=1e-3, abs=1e-3)


def test_job_builder_reads_yaml_section_and_refuses_bad_values():
    problem = build_problem({"kind": "molecules", "mode": "torsional", "smiles": SMILES, "samples_per_molecule": 3,
                             "temperature_k": 500})
    assert isinstance(problem, TorsionalMoleculeProblem)
    assert len(problem.records) == 3 and problem.tau == pytest.approx(kelvin_to_tau(500))
    desc = problem.describe()
    assert desc["energy"] == "mmff" and desc["temperature_k"] == 500 and "C" in desc["elements"]
    with pytest.raises(ConfigError, match="mode"):
        build_problem({"kind": "molecules", "mode": "internal", "smiles": SMILES})
    with pytest.raises(ConfigError, match="temperature_k"):
        build_problem({"kind": "molecules", "smiles": SMILES, "temperature_k": -1})
    with pytest.raises(ConfigError, match="unknown key"):
        build_problem({"kind": "molecules", "smiles": SMILES, "temprature_k": 300})
    with pytest.raises(ConfigError, match="no usable molecule"):
        build_problem({"kind": "molecules", "smiles": ["C", "CC"]})
    with pytest.raises(ConfigError, match="list_entries"):
        build_problem({"kind": "molecules", "smiles": SMILES, "list_entries": 0})


def test_list_entries_keeps_the_rest_of_the_shuffled_list_out_of_training():
    import random

    smiles = ["C", "CC", *SMILES, "CCCCCCO", "OCCOCCO"]
    order = list(smiles)
    random.Random(0).shuffle(order)
    problem = build_problem({"kind": "molecules", "mode": "torsional", "smiles": smiles, "shuffle_seed": 0,
                             "list_entries": 4, "max_molecules": None})
    # The first four shuffled entries, less those without a torsion: never a molecule from past them.
    kept = [r.smiles for r in problem.records]
    assert kept == [s for s in order[:4] if s not in ("C", "CC")]
    assert problem.describe()["params"]["list_entries"] == 4


def test_an_exclude_list_keeps_its_molecules_out_whatever_their_spelling(tmp_path):
    """``exclude_smiles_file`` (a SPICE-style list, like the validation ensembles'): its molecules are
    left out by canonical SMILES, the others kept in order; a missing file is refused."""
    smiles = ["CCCCCCO", "OCCOCCO", "CCOC(=O)CC", "NCCCCN"]
    listing = tmp_path / "held_out.txt"
    listing.write_text("Rotatable_Bonds\tSMILES\tRot_Hash\n4\tOCCCCCC\tx1\n3\tO=C(CC)OCC\tx2\n")
    problem = build_problem({"kind": "molecules", "mode": "torsional", "smiles": smiles, "shuffle_seed": None,
                             "max_molecules": None, "exclude_smiles_file": str(listing)})
    assert [r.smiles for r in problem.records] == ["OCCOCCO", "NCCCCN"]
    assert problem.describe()["params"]["exclude_smiles_file"] == str(listing)
    with pytest.raises(ConfigError, match="does not exist"):
        build_problem({"kind": "molecules", "smiles": smiles, "exclude_smiles_file": str(tmp_path / "none.txt")})


def test_molecules_the_energy_refuses_are_dropped_before_training(tmp_path, caplog):
    """A GNN potential's element and charge range filter the training list up front (no mid-run stop)."""
    import logging

    from molecular_helpers import write_tiny_gnn_checkpoint

    gnn = write_tiny_gnn_checkpoint(tmp_path / "gnn.pt")  # H C N O, total charge -1..1
    smiles = ["CCCCO", "[NH3+]CCCC[NH3+]", "ClCCCCO", "N[C@@H](Cc1ccccc1)C(=O)O"]
    spec = {"kind": "molecules", "mode": "torsional", "smiles": smiles, "shuffle_seed": None, "energy": "gnn",
            "energy_options": {"checkpoint_path": str(gnn)}}
    with caplog.at_level(logging.INFO, logger="adjoint_sampling.problems.molecular.dataset"):
        problem = build_problem(spec)
    assert [r.smiles for r in problem.records] == [smiles[0], smiles[3]]
    assert problem.describe()["num_molecules"] == 2
    assert "unsupported_charge" in caplog.text and "unsupported_element" in caplog.text
    # Refused molecules do not count towards max_molecules: the next usable one takes their place.
    limited = build_problem({**spec, "max_molecules": 2})
    assert [r.smiles for r in limited.records] == [smiles[0], smiles[3]]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adjoint_sampling.problems.molecular.dataset"):
        with pytest.raises(ConfigError, match="no usable molecule"):
            build_problem({**spec, "smiles": ["ClCCCCO"]})
    assert "unsupported_element" in caplog.text
