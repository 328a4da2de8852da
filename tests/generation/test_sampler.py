"""Sampler end to end on a tiny checkpoint trained in the test: counts, structure checks, energies,
determinism, SDF parse-back, relaxation, pruning, mirror handling and bad input."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from molecular_helpers import TINY_SMILES, tiny_job
from rdkit import Chem

from adjoint_sampling.chemistry.checks import check_conformers, reflect_positions
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.core.errors import CheckpointError, ConfigError, InvalidMoleculeError
from adjoint_sampling.core.version import __version__
from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.generation.formats import conformers_to_sdf
from adjoint_sampling.generation import sampler as sampler_module
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import ConformerGenerator, GenerationRequest
from adjoint_sampling.models.checkpoint import ModelCheckpoint, load_model_checkpoint, save_model_checkpoint
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job

CHIRAL = TINY_SMILES[1]


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny_torsional")
    run_training_job(job_config_from_dict(tiny_job("torsional")), run_dir, progress=False)
    return run_dir / "model.pt"


@pytest.fixture(scope="module")
def sampler(checkpoint_path) -> Sampler:
    return Sampler.from_checkpoint(checkpoint_path)


def _bond_lengths(mol: Chem.Mol, positions: np.ndarray) -> np.ndarray:
    pairs = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()])
    return np.linalg.norm(positions[..., pairs[:, 0], :] - positions[..., pairs[:, 1], :], axis=-1)


def test_checkpoint_alone_describes_the_model(checkpoint_path, sampler):
    ckpt = load_model_checkpoint(checkpoint_path)
    assert ckpt.problem["mode"] == "torsional" and ckpt.problem["energy"] == "mmff"
    assert ckpt.problem["temperature_k"] == 300.0 and "Cl" in ckpt.problem["elements"]
    assert ckpt.versions["adjoint_sampling"] == __version__
    assert isinstance(sampler, ConformerGenerator)
    assert sampler.name == "adjoint-sampling-torsional" and sampler.version.startswith(__version__ + "+")


def test_generate_counts_checks_and_energies(sampler):
    cs = sampler.generate(GenerationRequest(CHIRAL, num_conformers=12, seed=3, max_draw_multiple=1))  # one draw
    assert cs.num_requested == 12 and cs.num_generated == 12
    assert len(cs.conformers) + cs.num_dropped == 12 and len(cs.conformers) > 0
    assert set(cs.dropped) <= {"clash", "connectivity_changed", "stereo_changed"}
    assert cs.num_reflected == 0  # torsional samples keep chirality by construction
    positions = np.stack([c.positions for c in cs.conformers])
    assert all(check.ok for check in check_conformers(cs.mol, positions))
    # bond lengths are those of one of the local structures (seeded by the request seed)
    record = sampler.prepare(GenerationRequest(CHIRAL, seed=3))
    local = np.stack([r.local_positions.numpy() for r in sampler.local_structures(record, 12, 3)])
    sampled_bonds = _bond_lengths(cs.mol, positions)[:, None, :]
    local_bonds = _bond_lengths(cs.mol, local)[None, :, :]
    assert np.abs(sampled_bonds - local_bonds).max(axis=-1).min(axis=1).max() < 1e-6
    energies = MMFFEnergy().energy_and_forces(sampler.prepare(GenerationRequest(CHIRAL)).system, torch.from_numpy(positions))
    assert cs.energy_model == "mmff"
    assert np.allclose([c.energy for c in cs.conformers], energies.energy.numpy(), atol=1e-6)
    assert {"sample", "check", "total"} <= set(cs.timings)


def test_same_seed_same_conformers_other_seed_different(sampler):
    a = sampler.generate(GenerationRequest(TINY_SMILES[0], num_conformers=5, seed=7))
    b = sampler.generate(GenerationRequest(TINY_SMILES[0], num_conformers=5, seed=7))
    c = sampler.generate(GenerationRequest(TINY_SMILES[0], num_conformers=5, seed=8))
    assert [x.index for x in a.conformers] == [x.index for x in b.conformers]
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a.conformers, b.conformers))
    assert not np.allclose(a.conformers[0].positions, c.conformers[0].positions)


def test_sdf_parse_back(sampler):
    cs = sampler.generate(GenerationRequest(CHIRAL, num_conformers=6, seed=0))
    records = [m for m in Chem.ForwardSDMolSupplier(io.BytesIO(conformers_to_sdf(cs).encode()), removeHs=False)]
    assert len(records) == len(cs.conformers)
    for mol, conf in zip(records, cs.conformers):
        assert mol.GetIntProp("conformer_index") == conf.index and mol.GetIntProp("seed") == 0
        assert mol.GetProp("model_version") == sampler.version
        assert float(mol.GetProp("energy_kcal_mol")) == pytest.approx(conf.energy, abs=1e-5)
        assert np.allclose(mol.GetConformer().GetPositions(), conf.positions, atol=1e-3)
        Chem.AssignStereochemistryFrom3D(mol)
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(CHIRAL))


def test_relax_and_prune(sampler):
    raw = sampler.generate(GenerationRequest(CHIRAL, num_conformers=8, seed=1))
    relaxed = sampler.generate(GenerationRequest(CHIRAL, num_conformers=8, seed=1, relax="mmff"))
    assert relaxed.energy_model == "mmff" and relaxed.relax == "mmff"
    assert min(c.energy for c in relaxed.conformers) < min(c.energy for c in raw.conformers)
    assert all(check.ok for check in check_conformers(relaxed.mol, np.stack([c.positions for c in relaxed.conformers])))
    pruned = sampler.generate(GenerationRequest(CHIRAL, num_conformers=8, seed=1, relax="mmff", prune_rms=1.5))
    assert len(pruned.conformers) < len(relaxed.conformers)
    assert pruned.dropped["pruned"] == len(relaxed.conformers) - len(pruned.conformers)


def test_bad_requests_raise_typed_errors(sampler):
    with pytest.raises(InvalidMoleculeError) as err:
        sampler.generate(GenerationRequest("C1CC(", num_conformers=2))
    assert err.value.reason == "invalid_smiles"
    with pytest.raises(InvalidMoleculeError) as err:
        sampler.generate(GenerationRequest("C[Se]CCC", num_conformers=2))
    assert err.value.reason == "unsupported_element"
    with pytest.raises(ConfigError, match="num_conformers"):
        sampler.generate(GenerationRequest(CHIRAL, num_conformers=0))
    with pytest.raises(ConfigError, match="relax"):
        sampler.generate(GenerationRequest(CHIRAL, num_conformers=1, relax="uff"))  # type: ignore[arg-type]


def test_rigid_molecule_gives_its_local_structure(sampler):
    cs = sampler.generate(GenerationRequest("c1ccccc1O", num_conformers=3, seed=0))
    assert cs.num_generated == 3 and len(cs.conformers) == 3


def test_non_molecular_or_missing_checkpoint_is_refused(checkpoint_path, tmp_path):
    with pytest.raises(CheckpointError):
        Sampler.from_checkpoint(tmp_path / "missing.pt")
    ckpt = load_model_checkpoint(checkpoint_path)
    ckpt.problem = {"system": "dw4"}
    save_model_checkpoint(tmp_path / "dw4.pt", ckpt)
    with pytest.raises(CheckpointError, match="not a molecular model"):
        Sampler.from_checkpoint(tmp_path / "dw4.pt")


def test_output_energy_of_the_checkpoint_sets_the_reported_energies(checkpoint_path, sampler, tmp_path):
    """``output_energy`` swaps the backend of reported energies (same samples); None keeps the training one."""
    assert load_model_checkpoint(checkpoint_path).output_energy is None
    ckpt = load_model_checkpoint(checkpoint_path)
    ckpt.output_energy = "xtb"
    save_model_checkpoint(tmp_path / "xtb_out.pt", ckpt)
    assert load_model_checkpoint(tmp_path / "xtb_out.pt").output_energy == "xtb"
    request = GenerationRequest("CCCO", num_conformers=3, seed=2)
    own, other = sampler.generate(request), Sampler.from_checkpoint(tmp_path / "xtb_out.pt").generate(request)
    assert (own.energy_model, other.energy_model) == ("mmff", "xtb")
    np.testing.assert_array_equal(np.stack([c.positions for c in own.conformers]), np.stack([c.positions for c in other.conformers]))
    assert [c.energy for c in own.conformers] != [c.energy for c in other.conformers]


def test_cartesian_mirror_images_are_reflected_other_failures_dropped(checkpoint_path, tmp_path):
    """In Cartesian mode a fully mirrored sample is reflected back; a broken one is dropped."""
    ckpt: ModelCheckpoint = load_model_checkpoint(checkpoint_path)
    ckpt.problem = {**ckpt.problem, "mode": "cartesian"}
    save_model_checkpoint(tmp_path / "cart.pt", ckpt)
    cartesian = Sampler.from_checkpoint(tmp_path / "cart.pt")
    record = cartesian.prepare(GenerationRequest(CHIRAL, seed=0))
    good = record.local_positions.numpy()
    mirror = reflect_positions(record.local_positions).numpy()
    broken = good.copy()
    broken[0] = broken[1]  # two atoms on top of each other
    dropped: dict[str, int] = {}
    positions, kept, reflected = cartesian.check_samples(record.parsed.mol, np.stack([good, mirror, broken]), [0, 1, 2], dropped)
    assert kept == [0, 1] and reflected == 1 and dropped == {"clash": 1}
    assert check_conformers(record.parsed.mol, positions[1:2])[0].ok
    # the torsional sampler never reflects: a mirror image is a stereo change there
    torsional = Sampler.from_checkpoint(checkpoint_path)
    dropped = {}
    _, kept, reflected = torsional.check_samples(record.parsed.mol, np.stack([good, mirror]), [0, 1], dropped)
    assert kept == [0] and reflected == 0 and dropped == {"stereo_changed": 1}


def _centre_labels(mol: Chem.Mol, positions: np.ndarray) -> tuple:
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    conf = Chem.Conformer(m.GetNumAtoms())
    for i, xyz in enumerate(positions):
        conf.SetAtomPosition(i, xyz.tolist())
    m.AddConformer(conf)
    Chem.AssignStereochemistryFrom3D(m)
    return tuple(Chem.FindMolChiralCenters(m, includeUnassigned=True, useLegacyImplementation=False))


def test_unspecified_stereocentres_are_sampled_in_every_configuration(sampler):
    """Local structures cycle through the stereoisomers the SMILES leaves open; specified ones stay."""
    open_centres = sampler.generate(GenerationRequest("CC(O)C(N)CC", num_conformers=16, seed=0))
    labels = {_centre_labels(open_centres.mol, c.positions) for c in open_centres.conformers}
    assert len(labels) == 4
    fixed = sampler.generate(GenerationRequest("C[C@H](O)[C@@H](N)CC", num_conformers=16, seed=0))
    assert len({_centre_labels(fixed.mol, c.positions) for c in fixed.conformers}) == 1


def test_samples_spread_over_several_local_structures(sampler):
    record = sampler.prepare(GenerationRequest(CHIRAL, num_conformers=12, seed=5))
    structures = sampler.local_structures(record, 12, 5)
    assert len(structures) == 3  # ceil(12 / conformers_per_local_structure=4)
    first = structures[0].local_positions
    assert all(not torch.allclose(first, other.local_positions) for other in structures[1:])


def test_local_structure_counts_are_carried_by_the_checkpoint(checkpoint_path, sampler, tmp_path):
    """``conformers_per_local_structure`` / ``max_local_structures``: fewer, shared local structures
    (the same RDKit seeds, so the same first ones); bad settings are refused."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "structures.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, conformers_per_local_structure=8, max_local_structures=3))
    sharing = Sampler.from_checkpoint(path)
    record = sampler.prepare(GenerationRequest(CHIRAL, num_conformers=12, seed=5))
    default, fewer = sampler.local_structures(record, 12, 5), sharing.local_structures(record, 12, 5)
    assert len(default) == 3 and len(fewer) == 2  # ceil(12 / 4), ceil(12 / 8)
    assert all(torch.equal(a.local_positions, b.local_positions) for a, b in zip(default, fewer))
    assert len(sharing.local_structures(record, 100, 5)) == 3 and len(sampler.local_structures(record, 100, 5)) == 16
    assert [n for _, n in sharing.local_structure_plan(record, 12, 5)] == [6, 6]
    for bad in ({"conformers_per_local_structure": 0}, {"max_local_structures": 0}):
        with pytest.raises(CheckpointError, match="local_structure"):
            dataclasses.replace(ckpt, **bad)


def test_a_stereoisomer_that_cannot_be_embedded_is_tried_once(sampler, monkeypatch):
    """The bridgehead nitrogen of this azabicyclo[2.2.2]octane enumerates as two stereoisomers, one of
    which cannot exist in 3D: it is tried once, and every local structure comes from the other."""
    calls: list[str] = []

    def counting(parsed, seed, max_iterations=0):
        calls.append(Chem.MolToSmiles(parsed.mol))
        return local_structure(parsed, seed, max_iterations)

    monkeypatch.setattr(sampler_module, "local_structure", counting)
    record = sampler.prepare(GenerationRequest("C[C@@H]1CC2CCN1CC2", num_conformers=24, seed=0))
    structures = sampler.local_structures(record, 24, 0)
    assert sorted(Counter(calls).values()) == [1, 3]  # 6 structures wanted, alternating isomers
    assert len(structures) == 3  # one per successful embedding


def test_sde_steps_override_and_sample_reuse(checkpoint_path):
    coarse = Sampler.from_checkpoint(checkpoint_path, sde_steps=3, reuse_samples=True)
    assert coarse.grid.shape[0] == 4
    with pytest.raises(ConfigError, match="sde_steps"):
        Sampler.from_checkpoint(checkpoint_path, sde_steps=0)
    raw = coarse.generate(GenerationRequest(CHIRAL, num_conformers=6, seed=2))
    relaxed = coarse.generate(GenerationRequest(CHIRAL, num_conformers=6, seed=2, relax="mmff"))
    assert "reused_wall" in relaxed.timings and "reused_wall" not in raw.timings
    fresh = Sampler.from_checkpoint(checkpoint_path, sde_steps=3).generate(
        GenerationRequest(CHIRAL, num_conformers=6, seed=2, relax="mmff")
    )
    assert np.allclose(
        np.stack([c.positions for c in relaxed.conformers]), np.stack([c.positions for c in fresh.conformers])
    )


def test_batched_samples_follow_the_local_structure_plan(sampler):
    """All local structures are integrated in one batch; sample i must come from its plan entry
    (torsional moves keep every bond length of the local structure they start from)."""
    record = sampler.prepare(GenerationRequest("CC(O)C(N)CCOC", num_conformers=10, seed=1))
    plan = sampler.local_structure_plan(record, 10, 1)
    assert [n for _, n in plan] == [4, 3, 3]  # ceil(10 / 4) structures, an even split
    samples = torch.from_numpy(sampler.sample_positions(record, 10, 1))
    bonds = torch.tensor([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in record.parsed.mol.GetBonds()])

    def lengths(pos):
        return (pos[..., bonds[:, 0], :] - pos[..., bonds[:, 1], :]).norm(dim=-1)

    owner = [i for i, (_, n) in enumerate(plan) for _ in range(n)]
    for k, i in enumerate(owner):
        own = lengths(plan[i][0].local_positions)
        assert torch.allclose(lengths(samples[k]), own, atol=1e-6)
        others = [j for j in range(len(plan)) if j != i]
        assert all(not torch.allclose(lengths(samples[k]), lengths(plan[j][0].local_positions), atol=1e-6) for j in others)


def test_quiet_final_step_is_carried_by_the_checkpoint_and_changes_only_the_end(checkpoint_path, sampler, tmp_path):
    """A checkpoint with ``quiet_steps = 1`` round-trips, samples from the same random stream
    (draws near the noisy ones, not equal) and refuses settings it cannot honour."""
    ckpt = load_model_checkpoint(checkpoint_path)
    quiet_path = tmp_path / "quiet.pt"
    save_model_checkpoint(quiet_path, dataclasses.replace(ckpt, quiet_steps=1))
    quiet = Sampler.from_checkpoint(quiet_path)
    assert quiet.checkpoint.quiet_steps == 1 and ckpt.quiet_steps == 0
    record = sampler.prepare(GenerationRequest(CHIRAL, num_conformers=8, seed=0))
    noisy_pos = sampler.sample_positions(record, 8, seed=5)
    quiet_pos = quiet.sample_positions(record, 8, seed=5)
    moved = np.sqrt(((noisy_pos - quiet_pos) ** 2).sum(-1).mean(-1))
    assert moved.max() > 1e-4  # the last noise is gone ...
    assert np.median(moved) < 1.0  # ... but the draws stay where the shared path took them
    with pytest.raises(CheckpointError, match="quiet_steps"):
        dataclasses.replace(ckpt, quiet_steps=ckpt.sde_steps + 1)
    with pytest.raises(CheckpointError, match="quiet_steps"):
        dataclasses.replace(quiet.checkpoint, kind="flow", base=None)


def test_learned_descent_is_carried_by_the_checkpoint_and_moves_draws_a_little(checkpoint_path, sampler, tmp_path):
    """``descent_steps`` noise-free steps along the control at t = 1 after the SDE: the same random
    stream (draws move, but stay near the plain ones: the tiny test model's control is weak); bad settings are refused."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "descent.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, descent_steps=2, descent_step=0.5))
    descent = Sampler.from_checkpoint(path)
    assert (descent.checkpoint.descent_steps, descent.checkpoint.descent_step) == (2, 0.5)
    record = sampler.prepare(GenerationRequest(CHIRAL, num_conformers=8, seed=0))
    plain = sampler.sample_positions(record, 8, seed=5)
    moved = np.sqrt(((plain - descent.sample_positions(record, 8, seed=5)) ** 2).sum(-1).mean(-1))
    assert moved.max() > 1e-4 and np.median(moved) < 1.0
    for bad in ({"descent_steps": 1, "descent_step": 0.0}, {"descent_steps": -1, "descent_step": 0.01},
                {"descent_steps": 1, "descent_step": 0.01, "kind": "flow"}):
        with pytest.raises(CheckpointError, match="descent"):
            dataclasses.replace(ckpt, **bad)


def test_clash_repair_is_carried_by_the_checkpoint_and_fixes_only_failing_draws(checkpoint_path, sampler, tmp_path):
    """``clash_repair_steps``: draws that pass the check are the plain sampler's, bit for bit; the
    ones with a close contact are repaired (the tiny test model makes many on a long chain); a
    Cartesian checkpoint or a negative count is refused."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "repair.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, clash_repair_steps=30))
    repairing = Sampler.from_checkpoint(path)
    assert repairing.checkpoint.clash_repair_steps == 30 and ckpt.clash_repair_steps == 0
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=64, seed=0)
    record = sampler.prepare(request)
    plain = sampler.sample_positions(record, 64, seed=2)
    repaired = repairing.sample_positions(record, 64, seed=2)
    failing = np.array([not c.ok for c in check_conformers(record.parsed.mol, plain)])
    assert failing.sum() >= 3
    assert np.array_equal(repaired[~failing], plain[~failing])
    assert sum(not c.ok for c in check_conformers(record.parsed.mol, repaired)) <= failing.sum() // 10
    assert np.allclose(_bond_lengths(record.parsed.mol, repaired), _bond_lengths(record.parsed.mol, plain))
    with pytest.raises(CheckpointError, match="clash_repair_steps"):
        dataclasses.replace(ckpt, clash_repair_steps=-1)
    with pytest.raises(CheckpointError, match="clash_repair_steps"):
        dataclasses.replace(ckpt, clash_repair_steps=5, problem={**ckpt.problem, "mode": "cartesian"})


def test_torsional_polish_is_carried_by_the_checkpoint_and_lowers_the_energy(checkpoint_path, sampler, tmp_path):
    """``polish_steps``: the same SDE draws, then a monotone torsion-space descent on MMFF94: no draw
    ends higher, most end lower, bond lengths are kept; bad settings and a Cartesian model are refused."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "polish.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, polish_steps=8, polish_step=0.01))
    polishing = Sampler.from_checkpoint(path)
    assert polishing.checkpoint.polish_steps == 8 and polishing.checkpoint.polish_energy == "mmff"
    record = sampler.prepare(GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=32, seed=0))
    plain = sampler.sample_positions(record, 32, seed=2)
    polished = polishing.sample_positions(record, 32, seed=2)
    mmff = MMFFEnergy()
    e_plain = mmff.energy_and_forces(record.system, torch.from_numpy(plain)).energy
    e_polished = mmff.energy_and_forces(record.system, torch.from_numpy(polished)).energy
    assert (e_polished <= e_plain + 1e-9).all() and (e_polished < e_plain - 0.1).float().mean() > 0.8
    # with a tolerance the checkpoint's draws stop early: never below the full polish, never above the draws
    save_model_checkpoint(path, dataclasses.replace(ckpt, polish_steps=8, polish_step=0.01, polish_tolerance=0.5))
    early = Sampler.from_checkpoint(path).sample_positions(record, 32, seed=2)
    e_early = mmff.energy_and_forces(record.system, torch.from_numpy(early)).energy
    assert (e_early >= e_polished - 1e-9).all() and (e_early <= e_plain + 1e-9).all()
    assert (e_early > e_polished + 1e-9).any()
    assert np.allclose(_bond_lengths(record.parsed.mol, polished), _bond_lengths(record.parsed.mol, plain))
    for bad in ({"polish_steps": -1}, {"polish_steps": 3, "polish_step": 0.0}, {"polish_steps": 3, "polish_energy": ""},
                {"polish_steps": 3, "polish_tolerance": -0.1},
                {"polish_steps": 3, "problem": {**ckpt.problem, "mode": "cartesian"}}):
        with pytest.raises(CheckpointError, match="polish"):
            dataclasses.replace(ckpt, **bad)
    unknown = tmp_path / "unknown.pt"
    save_model_checkpoint(unknown, dataclasses.replace(ckpt, polish_steps=3, polish_energy="uff"))
    with pytest.raises(CheckpointError, match="polish_energy 'uff'"):
        Sampler.from_checkpoint(unknown)


def test_polish_without_parameters_for_the_molecule_leaves_the_draws_unpolished(
        checkpoint_path, sampler, tmp_path, caplog):
    """MMFF94 has no parameters for this fluorophosphorane: the request is still answered, with the
    plain draws and a logged warning."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "polish.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, polish_steps=5))
    polishing = Sampler.from_checkpoint(path)
    smiles = "CCN(CC)P1(F)(F)N(C)C(=O)N1C"
    record = sampler.prepare(GenerationRequest(smiles, num_conformers=8, seed=0))
    with caplog.at_level("WARNING"):
        polished = polishing.sample_positions(record, 8, seed=1)
    assert np.array_equal(polished, sampler.sample_positions(record, 8, seed=1))
    assert any("no torsional polish" in r.getMessage() for r in caplog.records)


def test_polish_on_the_gnn_potential_uses_the_shipped_energy_model(checkpoint_path, sampler, tmp_path):
    """``polish_energy: gnn`` descends on the GNN potential of ``relax="gnn"``: its energy of the draws
    does not rise and falls for most of them."""
    from adjoint_sampling.generation.shipped import load_energy_model

    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "polish_gnn.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, polish_steps=4, polish_energy="gnn"))
    polishing = Sampler.from_checkpoint(path)
    gnn = load_energy_model()
    assert polishing.polish_model() is gnn
    record = sampler.prepare(GenerationRequest("CCCCOC(=O)CCN", num_conformers=8, seed=0))
    plain = sampler.sample_positions(record, 8, seed=4)
    polished = polishing.sample_positions(record, 8, seed=4)
    e_plain = gnn.energy_and_forces(record.system, torch.from_numpy(plain)).energy
    e_polished = gnn.energy_and_forces(record.system, torch.from_numpy(polished)).energy
    assert (e_polished <= e_plain + 1e-3).all() and (e_polished < e_plain - 0.01).float().mean() >= 0.75


def test_selection_from_more_draws_is_carried_by_the_checkpoint(checkpoint_path, sampler, tmp_path):
    """``select_from: 2``: a request for n draws 2n samples (the plain sampler's 2n, on the local
    structures of n) and returns the n lowest in MMFF94 energy that are 0.25 A apart; bad settings
    are refused."""
    from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix

    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "select.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, select_from=2.0, select_rmsd=0.25))
    selecting = Sampler.from_checkpoint(path)
    assert selecting.checkpoint.select_from == 2.0 and ckpt.select_from == 1.0
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=16, seed=5)
    record = sampler.prepare(request)
    every = sampler.sample_positions(record, 32, seed=5, structures_for=16)
    structures = len(sampler.local_structure_plan(record, 32, 5, structures_for=16))
    assert structures == len(sampler.local_structure_plan(record, 16, 5)) < 8
    chosen = selecting.draw(record, request).positions
    assert chosen.shape == (16,) + every.shape[1:]
    index = [int(np.flatnonzero((np.abs(every - c).max(axis=(1, 2)) == 0))[0]) for c in chosen]
    assert len(set(index)) == 16
    mmff = MMFFEnergy()
    energy = mmff.energy_and_forces(record.system, torch.from_numpy(every)).energy.numpy()
    assert energy[index].mean() < energy.mean() - 1.0
    distances = rmsd_matrix(heavy_atom_symmetry(record.parsed.mol), chosen, chosen)
    assert (distances[~np.eye(16, dtype=bool)] >= 0.25).all()
    out = selecting.generate(dataclasses.replace(request, num_conformers=10))
    assert len(out.conformers) == 10
    for bad in ({"select_from": 0.5}, {"select_rmsd": -0.1}):
        with pytest.raises(CheckpointError, match="select_"):
            dataclasses.replace(ckpt, **bad)


def test_relaxed_selection_relaxes_more_draws_and_keeps_the_lowest_distinct(checkpoint_path, tmp_path):
    """``relaxed_select_from: 2``: a request with a relaxation draws 2n samples (the plain sampler's 2n,
    on the local structures of n), relaxes them all and returns the n lowest in relaxed MMFF94 energy
    that are 0.25 A apart; a request without relaxation is unchanged; bad settings are refused."""
    from adjoint_sampling.chemistry.checks import check_conformers
    from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
    from adjoint_sampling.energy.relax import relax
    from adjoint_sampling.generation.pipeline import RelaxedSelection
    from adjoint_sampling.generation.selection import select_low_energy_distinct

    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "relaxed_select.pt"
    # the clash repair, so that the tiny model's draws survive the relaxation (as the shipped model's do)
    ckpt = dataclasses.replace(ckpt, clash_repair_steps=20)
    plain_path = tmp_path / "repaired.pt"
    save_model_checkpoint(plain_path, ckpt)
    plain = Sampler.from_checkpoint(plain_path)
    save_model_checkpoint(path, dataclasses.replace(ckpt, relaxed_select_from=2.0, relaxed_select_rmsd=0.25))
    selecting = Sampler.from_checkpoint(path)
    assert selecting.relaxed_selection("mmff") == RelaxedSelection(2.0, 0.25, 0)
    assert plain.relaxed_selection("mmff") is None and selecting.relaxed_selection("gnn") is None
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=12, seed=3, max_draw_multiple=1)
    raw_plain, raw_selecting = plain.generate(request), selecting.generate(request)
    assert np.array_equal(np.stack([c.positions for c in raw_plain.conformers]),
                          np.stack([c.positions for c in raw_selecting.conformers]))

    relaxed_request = dataclasses.replace(request, relax="mmff")
    out = selecting.generate(relaxed_request)
    positions = np.stack([c.positions for c in out.conformers])
    energies = np.array([c.energy for c in out.conformers])
    assert out.num_generated == 24 and out.relax == "mmff"
    assert out.dropped["not_selected"] + len(out.conformers) + sum(
        v for k, v in out.dropped.items() if k != "not_selected") == 24

    # the same by hand: the plain sampler's 24 draws, relaxed, checked, the lowest distinct 12 kept
    record = plain.prepare(relaxed_request)
    every = plain.sample_positions(record, 24, seed=3, structures_for=12)
    relaxed = relax(record.system, torch.from_numpy(every), "mmff")
    valid = [i for i, check in enumerate(check_conformers(record.parsed.mol, relaxed.positions.numpy())) if check.ok]
    every_energy = relaxed.energy.numpy()[valid]
    expected = select_low_energy_distinct(record.parsed.mol, relaxed.positions.numpy()[valid], every_energy, 12, 0.25)
    assert np.allclose(positions, relaxed.positions.numpy()[valid][expected], rtol=0, atol=1e-9)
    assert np.allclose(energies, every_energy[expected], rtol=0, atol=1e-9)
    assert energies.mean() < every_energy.mean()
    distances = rmsd_matrix(heavy_atom_symmetry(record.parsed.mol), positions, positions)
    assert len(out.conformers) == 12 and (distances[~np.eye(12, dtype=bool)] >= 0.25).all()
    plain_relaxed = plain.generate(relaxed_request)
    assert np.mean([c.energy for c in plain_relaxed.conformers]) > energies.mean()

    for bad in ({"relaxed_select_from": 0.5}, {"relaxed_select_rmsd": -0.1}, {"relaxed_prescreen_steps": -1}):
        with pytest.raises(CheckpointError, match="relaxed_"):
            dataclasses.replace(ckpt, **bad)
    with pytest.raises(ValueError, match="relaxed selection"):
        RelaxedSelection(0.5, 0.25)


def test_relaxed_raw_selection_draws_more_for_relaxed_requests_only(checkpoint_path, tmp_path):
    """``relaxed_raw_select_from: 3`` (``select_from: 1.5``): an unrelaxed request draws as before; a
    relaxed one chooses its n draws from 3n (on the local structures of n); the draws of one are
    never reused for the other, while relaxed requests share theirs."""
    ckpt = dataclasses.replace(load_model_checkpoint(checkpoint_path), clash_repair_steps=20, select_from=1.5)
    plain_path, path = tmp_path / "plain.pt", tmp_path / "relaxed_raw.pt"
    save_model_checkpoint(plain_path, ckpt)
    save_model_checkpoint(path, dataclasses.replace(ckpt, relaxed_raw_select_from=3.0))
    plain, variant = Sampler.from_checkpoint(plain_path), Sampler.from_checkpoint(path, reuse_samples=True)
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=10, seed=4, max_draw_multiple=1)
    raw = variant.generate(request)
    assert np.array_equal(np.stack([c.positions for c in raw.conformers]),
                          np.stack([c.positions for c in plain.generate(request).conformers]))
    relaxed_request = dataclasses.replace(request, relax="mmff")
    record = variant.prepare(relaxed_request)
    every = plain.sample_positions(record, 30, seed=4, structures_for=10)
    assert np.allclose(variant.draw(record, relaxed_request).positions, every[plain.select(record, every, 10)],
                       rtol=0, atol=1e-12)
    assert not np.allclose(variant.draw(record, request).positions, every[plain.select(record, every, 10)])
    relaxed = variant.generate(relaxed_request)
    assert "reused_cpu" not in relaxed.timings and "not_selected" not in relaxed.dropped
    pruned = variant.generate(dataclasses.replace(relaxed_request, prune_rms=0.1))
    assert pruned.timings["reused_cpu"] > 0
    with pytest.raises(CheckpointError, match="relaxed_raw_select_from"):
        dataclasses.replace(ckpt, relaxed_raw_select_from=0.5)


def test_relaxed_selection_with_a_prescreen_returns_fully_relaxed_conformers(checkpoint_path, tmp_path, monkeypatch):
    """``relaxed_prescreen_steps: 3``: every draw is relaxed by at most 3 iterations, the n are chosen
    on those energies, and only they are relaxed to the end: the conformers returned are MMFF94 minima
    (a further relaxation gains nothing) with their MMFF94 energies."""
    from adjoint_sampling.energy import relax as relax_module
    from adjoint_sampling.generation import pipeline as pipeline_module

    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "prescreen.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, relaxed_select_from=2.0, relaxed_prescreen_steps=3,
                                                    clash_repair_steps=20))
    selecting = Sampler.from_checkpoint(path)
    calls: list[tuple[int, int | None]] = []

    def spying(system, positions, method="mmff", **options):
        calls.append((len(positions), options.get("max_steps")))
        return relax_module.relax(system, positions, method, **options)

    monkeypatch.setattr(pipeline_module, "relax", spying)
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=10, seed=2, relax="mmff",
                                max_draw_multiple=1)
    out = selecting.generate(request)
    monkeypatch.undo()
    assert len(out.conformers) == 10 and out.num_generated == 20
    assert [c[1] for c in calls] == [3, None] and 10 < calls[0][0] <= 20 and calls[1][0] == 10
    record = selecting.prepare(request)
    positions = np.stack([c.positions for c in out.conformers])
    energies = np.array([c.energy for c in out.conformers])
    mmff = MMFFEnergy()
    assert np.allclose(energies, mmff.energy_and_forces(record.system, torch.from_numpy(positions)).energy.numpy(),
                       rtol=0, atol=1e-6)
    again = relax_module.relax(record.system, torch.from_numpy(positions), "mmff")
    assert (energies - again.energy.numpy()).max() < 0.05


def test_selection_without_energies_keeps_distinct_draws_in_draw_order(checkpoint_path, sampler, tmp_path, caplog):
    """MMFF94 has no parameters for this fluorophosphorane: the selection still answers, with the
    first distinct draws in draw order and a logged warning."""
    from adjoint_sampling.chemistry.rmsd import greedy_distinct, heavy_atom_symmetry

    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "select.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, select_from=2.0, select_rmsd=0.25))
    selecting = Sampler.from_checkpoint(path)
    record = sampler.prepare(GenerationRequest("CCN(CC)P1(F)(F)N(C)C(=O)N1C", num_conformers=8, seed=0))
    every = sampler.sample_positions(record, 16, seed=1)
    with caplog.at_level("WARNING"):
        chosen = selecting.select(record, every, 8)
    expected = greedy_distinct(heavy_atom_symmetry(record.parsed.mol), every, 0.25, max_kept=8)
    assert len(expected) == 8 and chosen.tolist() == expected.tolist()
    assert any("no energies to select" in r.getMessage() for r in caplog.records)


def test_polish_energies_are_reported_without_evaluating_them_again(checkpoint_path, sampler, tmp_path, monkeypatch):
    """With the polish on the reported-energy backend, the draw carries the polish's energies (equal
    to a fresh MMFF94 evaluation of the returned positions), and ``generate`` reports them: after
    the polish, the backend evaluates only the samples the clash repair moved."""
    ckpt = load_model_checkpoint(checkpoint_path)
    path = tmp_path / "select.pt"
    save_model_checkpoint(path, dataclasses.replace(ckpt, polish_steps=6, polish_step=0.01, select_from=1.5,
                                                    clash_repair_steps=10, output_energy="mmff"))
    selecting = Sampler.from_checkpoint(path)
    assert selecting.polish_model() is selecting.energy_model()
    request = GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=12, seed=3)
    record = selecting.prepare(request)
    drawn = selecting.draw(record, request)
    mmff = MMFFEnergy()
    fresh = mmff.energy_and_forces(record.system, torch.from_numpy(drawn.positions)).energy.numpy()
    assert drawn.energy_model == "mmff" and drawn.energies.shape == (12,)
    known = np.isfinite(drawn.energies)
    assert known.sum() >= 9 and np.allclose(drawn.energies[known], fresh[known], rtol=0, atol=1e-9)

    evaluated: list[int] = []
    backend = selecting.energy_model()
    original = type(backend).energy_and_forces

    def counting(self, system, positions):
        evaluated.append(len(positions))
        return original(self, system, positions)

    monkeypatch.setattr(type(backend), "energy_and_forces", counting)
    every, every_energy = selecting.sample_with_energies(record, 18, 3, structures_for=12)  # the 1.5 x 12 draws
    sampling_rows, evaluated[:] = sum(evaluated), []
    out = selecting.generate(request)
    reported = np.array([c.energy for c in out.conformers])
    positions = np.stack([c.positions for c in out.conformers])
    monkeypatch.undo()
    assert out.energy_model == "mmff" and len(out.conformers) == 12 and out.num_generated == 12
    assert np.allclose(reported, mmff.energy_and_forces(record.system, torch.from_numpy(positions)).energy.numpy(),
                       rtol=0, atol=1e-9)
    # beyond the sampling's own calls (polish), only the draws the clash repair moved were evaluated
    moved = int(np.isnan(every_energy).sum())
    assert 0 < moved < 18 and sum(evaluated) == sampling_rows + moved + int((~known).sum())


def test_draws_on_one_local_structure_share_their_first_control(sampler, monkeypatch):
    """Every draw starts at ``X_0 = 0``: the first control is evaluated once per local structure (a
    batch of one system each), and the samples equal those with the control evaluated per draw."""
    record = sampler.prepare(GenerationRequest("CCCCCCC(=O)NCCCCOCCCC(=O)O", num_conformers=24, seed=1))
    plan = sampler.local_structure_plan(record, 24, 1)
    assert len(plan) == 6
    sizes: list[int] = []
    forward = type(sampler.controller).forward

    def counting(self, t, x, batch):
        sizes.append(len(batch.keys))
        return forward(self, t, x, batch)

    monkeypatch.setattr(type(sampler.controller), "forward", counting)
    shared = sampler.sample_plan(plan, seed=3)
    steps = sampler.checkpoint.sde_steps
    assert sizes == [6] + [24] * (steps - 1)
    sizes.clear()
    monkeypatch.setattr(Sampler, "_start_control", lambda self, records, chunk, make_batch: None)
    per_draw = sampler.sample_plan(plan, seed=3)
    assert sizes == [24] * steps
    assert np.abs(shared - per_draw).max() < 1e-4  # float summation order only
