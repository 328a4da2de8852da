"""Energy-only reference ensembles of held-out SPICE *training* molecules: a validation set for
choosing a sampler's inference settings without the test list's reference conformers.

Molecules: ``spice_train.txt`` after the shuffle the training jobs use (seed 0), from index
``--offset`` (default 2000, past every molecule a job trained on), ``--per-count`` of each
rotatable-bond count 3..10 (the test list's strata), at most ``--max-atoms`` atoms. Per molecule
(all from the SMILES and energies, no reference data):

1. ``--pool`` ETKDG conformers, each relaxed with MMFF94;
2. the MMFF minima by increasing energy, pruned at 0.5 A heavy-atom RMSD, those within
   ``--mmff-window`` kcal/mol of the lowest, at most ``--relax`` of them;
3. those relaxed with GFN2-xTB (tblite; batched L-BFGS, fmax 1 kcal/mol/A, at most 200 steps);
4. the xTB minima within ``--window`` kcal/mol (6, CREST's default window) of the lowest, that
   still match the SMILES, by increasing energy, pruned at 0.25 A.

The output folder has the layout of ``../shared/data`` (``validation.txt`` and
``<id>/crest_conformers.xyz`` with the xTB energy in hartree on each comment line), so
``adjoint-sampling bench conformers run --test-list OUT/validation.txt --conformer-dir OUT`` scores
methods against it. These ensembles are narrower than CREST's (ETKDG starts, no metadynamics),
and they favour ETKDG, which seeded them: use them to compare a sampler's settings with each other,
not the sampler with ETKDG. Nor do they judge choices made on MMFF94 energies: step 2 keeps the
lowest MMFF94 minima, so a method that keeps its lowest MMFF94-relaxed conformers finds the same ones
(a relaxed selection gained 4 to 8 points of COV-R at 1.0 A here and none on the CREST references).
A molecule whose file exists is skipped (resumable; files are written atomically).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.validation_ensembles --out data/validation_ensembles
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from adjoint_sampling.benchmarks.conformers.references import (
    BenchmarkMolecule,
    read_test_list,
)
from adjoint_sampling.energy.relax import relax

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.rmsd import prune_by_rmsd
from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.core.units import HARTREE_TO_KCAL
from adjoint_sampling.problems.molecular.dataset import DEFAULT_TRAIN_SMILES

__all__ = ["build_ensemble", "select_validation_molecules", "xyz_text"]

log = logging.getLogger(__name__)

LIST_NAME = "validation.txt"
ROTATABLE_COUNTS = tuple(range(3, 11))


class NoMinimaError(AdjointSamplingError):
    """No conformer of a molecule survived a relaxation and the structure checks."""


def select_validation_molecules(
    per_count: int, offset: int = 2000, max_atoms: int = 60, train_list: Path = DEFAULT_TRAIN_SMILES
) -> list[BenchmarkMolecule]:
    """``per_count`` molecules of each rotatable-bond count 3..10 from the shuffled training list
    past ``offset`` (neutral or charged, parsable, at most ``max_atoms`` atoms with hydrogens).

    The list has the test list's columns; shuffled whole with seed 0, it is in the order the
    training jobs draw their molecules (the permutation depends only on its length)."""
    rows = read_test_list(train_list)
    random.Random(0).shuffle(rows)
    wanted = dict.fromkeys(ROTATABLE_COUNTS, per_count)
    picked: list[BenchmarkMolecule] = []
    for row in rows[offset:]:
        if wanted.get(row.rotatable_bonds, 0) <= 0:
            continue
        try:
            parse_smiles(row.smiles, max_atoms=max_atoms)
        except AdjointSamplingError:
            continue
        wanted[row.rotatable_bonds] -= 1
        picked.append(row)
        if not any(wanted.values()):
            break
    return sorted(picked, key=lambda m: (m.rotatable_bonds, m.mol_id))


def build_ensemble(
    smiles: str, pool: int, relax_count: int, mmff_window: float, window: float, seed: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, float]]:
    """Symbols ``(N,)``, xTB minima ``(L, N, 3)`` angstrom and their energies ``(L,)`` kcal/mol (by
    increasing energy), and statistics, for ``smiles`` (steps 1 to 4 of the module docstring)."""
    parsed = parse_smiles(smiles)
    system = atomic_system(parsed)
    mol = parsed.mol
    cpu = time.process_time()
    start = embed_etkdg(mol, pool, seed)
    mmff = relax(system, torch.from_numpy(start), "mmff", num_threads=1)
    ok = mmff.ok.numpy() & np.array([c.ok for c in check_conformers(mol, mmff.positions)])
    order = [i for i in np.argsort(mmff.energy.numpy()) if ok[i]]
    positions = mmff.positions.numpy()[order]
    energies = mmff.energy.numpy()[order]
    kept = prune_by_rmsd(mol, positions, 0.5)
    if len(kept) == 0:
        raise NoMinimaError(f"no valid MMFF94 minimum among {len(start)} ETKDG conformers of {smiles}")
    kept = [i for i in kept if energies[i] - energies[kept[0]] <= mmff_window][:relax_count]
    xtb = relax(system, torch.from_numpy(positions[kept]), "xtb", max_steps=200, fmax=1.0, num_workers=1)
    minima = xtb.positions.numpy()
    good = xtb.ok.numpy() & np.array([c.ok for c in check_conformers(mol, minima)])
    energy = xtb.energy.numpy()
    if not good.any():
        raise NoMinimaError(f"no valid GFN2-xTB minimum of {smiles}")
    order = [i for i in np.argsort(energy) if good[i] and energy[i] - energy[good].min() <= window]
    minima, energy = minima[order], energy[order]
    final = prune_by_rmsd(mol, minima, 0.25)
    stats = {"etkdg": float(len(start)), "mmff_minima": float(len(kept)),
             "xtb_converged": float(xtb.converged.numpy()[good].mean()) if good.any() else 0.0,
             "references": float(len(final)), "cpu_s": time.process_time() - cpu}
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    return symbols, minima[final], energy[final], stats


def xyz_text(symbols: list[str], positions: np.ndarray, energies_kcal: np.ndarray) -> str:
    """Concatenated XYZ blocks, the energy in hartree on each comment line (CREST's layout)."""
    lines: list[str] = []
    for pos, e in zip(positions, energies_kcal):
        lines += [str(len(symbols)), f"{e / HARTREE_TO_KCAL:.8f}"]
        lines += [f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in zip(symbols, pos.tolist())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.validation_ensembles",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-count", type=int, default=3, help="molecules per rotatable-bond count 3..10")
    parser.add_argument("--offset", type=int, default=2000)
    parser.add_argument("--max-atoms", type=int, default=60)
    parser.add_argument("--pool", type=int, default=300, help="ETKDG conformers per molecule")
    parser.add_argument("--relax", type=int, default=20, help="MMFF minima relaxed with GFN2-xTB per molecule")
    parser.add_argument("--mmff-window", type=float, default=10.0, help="kcal/mol")
    parser.add_argument("--window", type=float, default=6.0, help="kcal/mol")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if min(args.per_count, args.pool, args.relax) < 1 or min(args.window, args.mmff_window) <= 0:
        print("error: --per-count, --pool and --relax must be >= 1 and the windows > 0", file=sys.stderr)
        return 2
    molecules = select_validation_molecules(args.per_count, args.offset, args.max_atoms)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / LIST_NAME, "Rotatable_Bonds\tSMILES\tRot_Hash\n" + "".join(
        f"{m.rotatable_bonds}\t{m.smiles}\t{m.mol_id}\n" for m in molecules))
    for molecule in molecules:
        path = args.out / molecule.mol_id / "crest_conformers.xyz"
        if path.is_file():
            continue
        try:
            symbols, minima, energy, stats = build_ensemble(molecule.smiles, args.pool, args.relax,
                                                            args.mmff_window, args.window)
        except AdjointSamplingError as exc:
            log.warning("%s (%s) skipped: %s", molecule.mol_id, molecule.smiles, exc)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, xyz_text(symbols, minima, energy))
        log.info("%s: %s", molecule.mol_id, {k: round(v, 2) for k, v in stats.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
