"""One-off record (seventeenth session): how much of GFN2-xTB's conformer energy and force variation
MMFF94 already explains on a split of data/labels/spice_xtb, i.e. whether delta learning on top of
MMFF94 would shrink what the GNN potential must learn. Per molecule: mean |E - mean E| of GFN2-xTB
(xtb_spread) and of GFN2-xTB minus MMFF94 (delta_spread, equal to MMFF94's relative-energy MAE),
mean |F| of GFN2-xTB (xtb_f) and of the force difference (delta_f), Spearman of the two energies
(rho), the spreads on the MMFF94-minimum frames alone (lowE, lowE_x), and frames whose delta is over
100 kcal/mol from the molecule's median (bad). kcal/mol, kcal/mol/A.

    OMP_NUM_THREADS=1 python benchmarks/results/gnn_delta_mmff/delta_check.py test \
        > benchmarks/results/gnn_delta_mmff/delta_check.txt
"""
import sys
from pathlib import Path

import numpy as np
from rdkit import Chem
from scipy.stats import spearmanr

from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.energy.mmff import mmff_force_field
from adjoint_sampling.labelling.extxyz import frames_by_molecule


def relative(e: np.ndarray) -> np.ndarray:
    return e - e.mean()


split = sys.argv[1] if len(sys.argv) > 1 else "test"
rows, skipped = [], 0
for frames in frames_by_molecule(sorted((Path("data/labels/spice_xtb/data") / split).glob("*.extxyz.gz")), {split}):
    first = frames[0]
    mol = Chem.AddHs(Chem.MolFromSmiles(first.smiles))
    if [a.GetAtomicNum() for a in mol.GetAtoms()] != list(first.atomic_numbers):
        skipped += 1
        continue
    try:
        _, ff = mmff_force_field(mol, first.positions)
    except AdjointSamplingError as exc:
        skipped += 1
        print("no MMFF94:", first.smiles, exc)
        continue
    e_m, f_m = [], []
    for frame in frames:  # RDKit's CalcGrad(x) is right only straight after CalcEnergy(x), as in energy/mmff.py
        x = frame.positions.reshape(-1).tolist()
        e_m.append(ff.CalcEnergy(x))
        f_m.append(-np.array(ff.CalcGrad(x)).reshape(-1, 3))
    e_m, f_m = np.array(e_m), np.stack(f_m)
    e_x = np.array([f.energy_kcal_mol for f in frames])
    f_x = np.stack([f.forces_kcal_mol_a for f in frames])
    minima = np.array([f.source for f in frames]) == "mmff"
    delta = e_x - e_m
    rows.append(dict(
        xtb_spread=np.abs(relative(e_x)).mean(), delta_spread=np.abs(relative(delta)).mean(),
        xtb_f=np.abs(f_x).mean(), delta_f=np.abs(f_x - f_m).mean(), rho=spearmanr(e_m, e_x).correlation,
        lowE=np.abs(relative(delta[minima])).mean() if minima.sum() > 1 else np.nan,
        lowE_x=np.abs(relative(e_x[minima])).mean() if minima.sum() > 1 else np.nan,
        bad=int((np.abs(delta - np.median(delta)) > 100).sum())))
print("molecules", len(rows), "skipped", skipped)
for key in rows[0]:
    values = np.array([r[key] for r in rows], dtype=float)
    print(f"{key:14s} mean {np.nanmean(values):8.3f} median {np.nanmedian(values):8.3f}")
