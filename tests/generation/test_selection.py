"""Choosing n conformers out of more draws: lowest energy first, no two closer than the RMSD limit."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.generation.selection import select_low_energy_distinct


@pytest.fixture(scope="module")
def pentanol() -> tuple[Chem.Mol, np.ndarray]:
    """Eight ETKDG conformers of 1-pentanol, pruned to be at least 0.3 A apart."""
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCCCO"))
    AllChem.EmbedMultipleConfs(mol, 8, randomSeed=7, pruneRmsThresh=0.3)
    positions = np.stack([c.GetPositions() for c in mol.GetConformers()])
    assert len(positions) >= 4
    return mol, positions


def _rotated(positions: np.ndarray, seed: int) -> np.ndarray:
    """The same conformer moved rigidly (a random rotation and a shift)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return positions @ (q * np.sign(np.linalg.det(q))) + np.array([1.0, -2.0, 0.5])


def test_a_copy_moved_rigidly_is_not_chosen_twice(pentanol):
    mol, confs = pentanol
    a, b, c = confs[0], confs[1], confs[2]
    positions = np.stack([a, _rotated(a, 0), b, c])
    energies = np.array([1.0, 0.0, 2.0, 3.0])  # the copy of a is the lowest
    assert list(select_low_energy_distinct(mol, positions, energies, 2, min_rmsd=0.25)) == [1, 2]
    # without the RMSD limit: simply the two lowest
    assert list(select_low_energy_distinct(mol, positions, energies, 2, min_rmsd=0.0)) == [0, 1]


def test_a_copy_with_symmetric_atoms_swapped_is_a_duplicate():
    """Two methyl carbons of a tert-butyl group are interchangeable under the symmetric RMSD."""
    mol = Chem.AddHs(Chem.MolFromSmiles("CCC(C)(C)C"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    first = mol.GetConformer().GetPositions()
    methyls = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 6 and a.GetDegree() == 4
               and sum(n.GetAtomicNum() == 1 for n in a.GetNeighbors()) == 3]
    order = list(range(mol.GetNumAtoms()))
    order[methyls[-1]], order[methyls[-2]] = order[methyls[-2]], order[methyls[-1]]
    swapped = first[order]  # two tert-butyl methyl carbons exchange places
    assert rmsd_matrix(heavy_atom_symmetry(mol), swapped[None], first[None])[0, 0] < 1e-6
    chosen = select_low_energy_distinct(mol, np.stack([first, swapped]), np.array([0.0, 1.0]), 1, min_rmsd=0.1)
    assert list(chosen) == [0]


def test_fewer_distinct_than_wanted_are_filled_by_energy_and_unknown_energies_come_last(pentanol):
    mol, confs = pentanol
    a = confs[0]
    positions = np.stack([_rotated(a, s) for s in range(5)])  # five copies of one conformer
    energies = np.array([4.0, np.nan, 1.0, 3.0, 2.0])
    assert list(select_low_energy_distinct(mol, positions, energies, 3, min_rmsd=0.25)) == [2, 3, 4]
    assert list(select_low_energy_distinct(mol, positions, energies, 5, min_rmsd=0.25)) == [0, 1, 2, 3, 4]
    distinct = confs[:4]
    nan_first = np.array([np.nan, 0.0, 1.0, 2.0])
    assert list(select_low_energy_distinct(mol, distinct, nan_first, 3, min_rmsd=0.25)) == [1, 2, 3]


def test_every_chosen_pair_keeps_the_limit_when_enough_are_distinct(pentanol):
    mol, confs = pentanol
    rng = np.random.default_rng(0)
    positions = np.concatenate([confs, np.stack([_rotated(c, i) for i, c in enumerate(confs)])])
    energies = rng.normal(size=len(positions))
    chosen = select_low_energy_distinct(mol, positions, energies, len(confs), min_rmsd=0.25)
    d = rmsd_matrix(heavy_atom_symmetry(mol), positions[chosen], positions[chosen])
    assert (d[~np.eye(len(chosen), dtype=bool)] >= 0.25).all()
    # of each duplicate pair, the lower-energy one is chosen
    n = len(confs)
    assert sorted(chosen) == sorted(i if energies[i] <= energies[i + n] else i + n for i in range(n))


def test_bad_arguments_are_refused(pentanol):
    mol, confs = pentanol
    with pytest.raises(ValueError, match="min_rmsd"):
        select_low_energy_distinct(mol, confs, np.zeros(len(confs)), 2, min_rmsd=-0.1)
    with pytest.raises(ValueError, match="num"):
        select_low_energy_distinct(mol, confs, np.zeros(len(confs)), -1, min_rmsd=0.1)
    with pytest.raises(ValueError, match="energies"):
        select_low_energy_distinct(mol, confs, np.zeros(len(confs) + 1), 2, min_rmsd=0.1)
