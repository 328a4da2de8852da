"""Check the batched symmetric RMSD (:mod:`adjoint_sampling.conformer_ops`) against RDKit.

For each molecule, the same probe x reference pairs go through (a) one call of the batched
RMSD, including the automorphism search, and (b) a loop of ``rdMolAlign.GetBestRMS`` on
heavy-atom copies; the largest absolute difference and both times are recorded. Times are CPU
seconds of this process (``time.process_time``), robust to other load on a shared machine;
run it with one torch thread for a single-core comparison.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix

__all__ = ["RmsdValidation", "heavy_atom_copy", "summarize_validations", "validate_rmsd", "validations_to_json"]


@dataclass(frozen=True)
class RmsdValidation:
    """Agreement and timing of one molecule's probe x reference block.

    Attributes:
        max_abs_diff: largest |batched - RDKit| over the pairs, angstrom.
        batched_s: CPU seconds for the batched matrix (automorphisms included).
        rdkit_s: CPU seconds for the loop of ``GetBestRMS`` over the same pairs.
    """

    mol_id: str
    num_pairs: int
    num_heavy_atoms: int
    num_permutations: int
    max_abs_diff: float
    batched_s: float
    rdkit_s: float

    @property
    def speedup(self) -> float:
        return self.rdkit_s / self.batched_s if self.batched_s > 0 else float("inf")


def heavy_atom_copy(mol: Chem.Mol, positions: np.ndarray) -> Chem.Mol:
    """Heavy-atom copy of ``mol`` (with hydrogens) carrying ``positions`` ``(B, N, 3)`` as conformers 0..B-1."""
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    for block in np.asarray(positions, dtype=np.float64):
        conf = Chem.Conformer(work.GetNumAtoms())
        conf.SetPositions(block)
        work.AddConformer(conf, assignId=True)
    return Chem.RemoveHs(work)


def validate_rmsd(mol_id: str, mol: Chem.Mol, probe: np.ndarray, reference: np.ndarray) -> RmsdValidation:
    """Compare the batched RMSD with ``GetBestRMS`` on all pairs of ``probe`` ``(K, N, 3)`` x ``reference`` ``(L, N, 3)``."""
    tic = time.process_time()
    symmetry = heavy_atom_symmetry(mol)
    batched = rmsd_matrix(symmetry, probe, reference)
    batched_s = time.process_time() - tic

    probe_mol = heavy_atom_copy(mol, probe)
    ref_mol = heavy_atom_copy(mol, reference)
    expected = np.empty_like(batched)
    tic = time.process_time()
    for k in range(probe.shape[0]):
        for l in range(reference.shape[0]):
            expected[k, l] = rdMolAlign.GetBestRMS(probe_mol, ref_mol, k, l)
    rdkit_s = time.process_time() - tic
    return RmsdValidation(
        mol_id=mol_id,
        num_pairs=int(batched.size),
        num_heavy_atoms=symmetry.num_heavy_atoms,
        num_permutations=symmetry.num_permutations,
        max_abs_diff=float(np.abs(batched - expected).max()),
        batched_s=batched_s,
        rdkit_s=rdkit_s,
    )


def summarize_validations(validations: Sequence[RmsdValidation]) -> dict[str, float]:
    """Totals: pairs, worst difference, total times and the overall speed-up."""
    batched = sum(v.batched_s for v in validations)
    rdkit = sum(v.rdkit_s for v in validations)
    return {
        "num_molecules": len(validations),
        "num_pairs": sum(v.num_pairs for v in validations),
        "max_abs_diff": max(v.max_abs_diff for v in validations),
        "batched_s": batched,
        "rdkit_s": rdkit,
        "speedup": rdkit / batched if batched > 0 else float("inf"),
        "max_permutations": max(v.num_permutations for v in validations),
    }


def validations_to_json(validations: Sequence[RmsdValidation], path: str | Path) -> Path:
    """Write per-molecule validations plus the summary as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "summary": summarize_validations(validations),
        "molecules": [dict(asdict(v), speedup=v.speedup) for v in validations],
    }
    path.write_text(json.dumps(payload, indent=1))
    return path
