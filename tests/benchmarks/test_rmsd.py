"""Batched heavy-atom symmetric RMSD: agreement with RDKit GetBestRMS, invariances, pruning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from adjoint_sampling.benchmarks.conformers.rmsd import heavy_atom_copy, validate_rmsd
from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.rmsd import (
    greedy_distinct,
    heavy_atom_symmetry,
    prune_by_rmsd,
    prune_subset,
    rmsd_matrix,
    symmetric_rmsd_matrix,
)

torch.set_num_threads(1)

SYMMETRIC_SMILES = [
    "CC(C)(C)c1ccc(CC(=O)NC)cc1",  # tert-butyl + para-substituted phenyl
    "O=[N+]([O-])c1ccc(C(=O)[O-])cc1",  # nitro + carboxylate (conjugated terminal groups)
    "CC(C)Oc1ccc(F)cc1",  # isopropyl + para phenyl
    "C[C@H](N)C(=O)O",  # chiral, carboxylic acid
]


def _mol(smiles: str) -> Chem.Mol:
    return Chem.AddHs(Chem.MolFromSmiles(smiles))


def _kabsch_rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """Reference implementation by SVD (proper rotations only)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    u, _, vt = np.linalg.svd(x.T @ y)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((x @ rotation - y) ** 2).sum(1).mean()))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("smiles", SYMMETRIC_SMILES)
def test_agrees_with_rdkit_get_best_rms(smiles: str) -> None:
    mol = _mol(smiles)
    probe = embed_etkdg(mol, 5, seed=1)
    reference = embed_etkdg(mol, 4, seed=2)
    result = validate_rmsd(smiles, mol, probe, reference)
    assert result.num_pairs == 20
    assert result.max_abs_diff < 1e-3
    # also against a direct call, so the helper itself is checked
    probe_mol, ref_mol = heavy_atom_copy(mol, probe), heavy_atom_copy(mol, reference)
    direct = rdMolAlign.GetBestRMS(probe_mol, ref_mol, 2, 3)
    assert rmsd_matrix(heavy_atom_symmetry(mol), probe, reference)[2, 3] == pytest.approx(direct, abs=1e-3)


def test_symmetry_counts() -> None:
    # 3! methyl permutations of tert-butyl x 2 ring flips of the para-phenyl
    assert heavy_atom_symmetry(_mol("CC(C)(C)c1ccc(O)cc1")).num_permutations == 12
    # the two carboxylate oxygens are equivalent, as in RDKit's GetBestRMS
    assert heavy_atom_symmetry(_mol("CC(=O)[O-]")).num_permutations == 2
    symmetry = heavy_atom_symmetry(_mol("CCO"))
    assert symmetry.num_permutations == 1
    assert symmetry.heavy_atoms.tolist() == [0, 1, 2]


def test_matches_svd_kabsch_without_permutations() -> None:
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(6, 9, 3))
    reference = rng.normal(size=(5, 9, 3))
    got = symmetric_rmsd_matrix(probe, reference)
    expected = np.array([[_kabsch_rmsd(p, r) for r in reference] for p in probe])
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_invariant_to_rigid_motion_and_symmetric_relabelling() -> None:
    rng = np.random.default_rng(1)
    mol = _mol("CC(C)(C)c1ccc(O)cc1")
    symmetry = heavy_atom_symmetry(mol)
    positions = embed_etkdg(mol, 1, seed=3)[0]
    moved = positions @ _random_rotation(rng).T + np.array([3.0, -1.0, 7.0])
    # swap two methyl carbons of the tert-butyl (atoms 0 and 2; atom 1 is the quaternary C)
    swapped = positions.copy()
    swapped[[0, 2]] = swapped[[2, 0]]
    distances = rmsd_matrix(symmetry, np.stack([positions, moved, swapped]), positions[None])
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-5)
    heavy = symmetry.heavy_positions
    plain = symmetric_rmsd_matrix(heavy(swapped[None]), heavy(positions[None]))
    assert plain[0, 0] > 0.1  # without the symmetries the relabelled copy looks different


def test_mirror_image_is_not_superimposable() -> None:
    rng = np.random.default_rng(2)
    points = rng.normal(size=(1, 7, 3))
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    assert symmetric_rmsd_matrix(mirrored, points)[0, 0] > 0.1
    assert symmetric_rmsd_matrix(mirrored, points)[0, 0] == pytest.approx(_kabsch_rmsd(mirrored[0], points[0]), abs=1e-8)


def test_chunking_gives_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import adjoint_sampling.chemistry.rmsd as ops

    mol = _mol("CC(C)Oc1ccc(F)cc1")
    probe, reference = embed_etkdg(mol, 7, seed=4), embed_etkdg(mol, 3, seed=5)
    full = rmsd_matrix(heavy_atom_symmetry(mol), probe, reference)
    monkeypatch.setattr(ops, "_ELEMENTS_PER_CHUNK", 1)
    np.testing.assert_allclose(rmsd_matrix(heavy_atom_symmetry(mol), probe, reference), full, atol=1e-6)  # sqrt of ~1e-15 msd noise near 0


def test_prune_by_rmsd_keeps_distinct_conformers_in_order() -> None:
    mol = _mol("CCCCO")
    positions = embed_etkdg(mol, 6, seed=0)
    stack = np.concatenate([positions[:1], positions[:1] + 1.0, positions[1:]])
    kept = prune_by_rmsd(mol, stack, 0.05)
    assert kept[0] == 0 and 1 not in kept.tolist()
    distances = rmsd_matrix(heavy_atom_symmetry(mol), stack[kept], stack[kept])
    off_diagonal = distances[~np.eye(len(kept), dtype=bool)]
    assert (off_diagonal >= 0.05).all()
    assert prune_by_rmsd(mol, stack, 0.0).tolist() == list(range(len(stack)))

    # on a subset: indices refer to the full stack, the pruned ones are counted
    dropped = {"pruned": 1}
    subset = [1, 0, 3]  # 1 duplicates 0 (translated), so 0 goes
    assert prune_subset(mol, stack, subset, 0.05, dropped) == [1, 3] and dropped == {"pruned": 2}
    assert prune_subset(mol, stack, [], 0.05, dropped) == [] and dropped == {"pruned": 2}


@pytest.mark.parametrize("threshold", [0.3, 0.8])
def test_greedy_distinct_equals_the_greedy_over_every_pair(threshold: float) -> None:
    """The blocked greedy with the radius-of-gyration bound keeps exactly what comparing every pair
    keeps, for any block size, and stops at max_kept."""
    mol = _mol("CC(C)(C)c1ccc(CCCCOCCC(=O)NC)cc1")
    positions = embed_etkdg(mol, 40, seed=2)
    rng = np.random.default_rng(1)
    copies = positions[:10] @ _random_rotation(rng).T + 0.5  # duplicates, moved rigidly
    positions = np.concatenate([positions, copies])[rng.permutation(50)]
    symmetry = heavy_atom_symmetry(mol)
    full = rmsd_matrix(symmetry, positions, positions)
    expected: list[int] = []
    for i in range(len(positions)):
        if not expected or full[i, expected].min() >= threshold:
            expected.append(i)
    assert len(expected) <= 40
    for block in (64, 7, 1):
        assert greedy_distinct(symmetry, positions, threshold, block=block).tolist() == expected
        assert greedy_distinct(symmetry, positions, threshold, max_kept=5, block=block).tolist() == expected[:5]
    assert greedy_distinct(symmetry, positions, 0.0, max_kept=3).tolist() == [0, 1, 2]
    assert greedy_distinct(symmetry, positions[:0], threshold).tolist() == []


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        symmetric_rmsd_matrix(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="permutations"):
        symmetric_rmsd_matrix(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), np.zeros((1, 3), dtype=int))
