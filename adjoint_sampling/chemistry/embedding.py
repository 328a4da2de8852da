"""RDKit ETKDGv3 embedding: the one place that sets up RDKit's distance-geometry parameters.

Used by the ETKDG baseline (many conformers), the torsional local structures (one MMFF-optimised
conformer per seed) and the warm-start targets of training (conformers as a tensor).
"""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem, rdDistGeom

from adjoint_sampling.chemistry.parsing import ParsedMolecule
from adjoint_sampling.core.errors import InvalidMoleculeError

__all__ = ["etkdg_parameters", "embed_etkdg", "rdkit_conformers", "local_structure"]


def etkdg_parameters(seed: int, num_threads: int = 1) -> rdDistGeom.EmbedParameters:
    """ETKDGv3 parameters with ``seed`` (masked to RDKit's 31-bit range) and ``num_threads``."""
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed) & 0x7FFFFFFF
    params.numThreads = int(num_threads)
    return params


def embed_etkdg(mol: Chem.Mol, num_conformers: int, seed: int, num_threads: int = 1) -> np.ndarray:
    """Embed conformers of ``mol`` (with hydrogens) with ETKDGv3.

    Conformer ``i`` is embedded with the seed ``seed + i`` (RDKit's sequential random seeds):
    with one shared seed, RDKit 2026.09 returns ``num_conformers`` identical copies.

    Returns:
        ``(B, N, 3)`` float64 positions in angstrom, ``B <= num_conformers`` (RDKit may fail to
        embed some); the same ``seed`` gives the same positions.
    """
    params = etkdg_parameters(seed, num_threads)
    params.enableSequentialRandomSeeds = True
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    conf_ids = list(rdDistGeom.EmbedMultipleConfs(work, int(num_conformers), params))
    if not conf_ids:
        return np.zeros((0, mol.GetNumAtoms(), 3))
    return np.stack([work.GetConformer(cid).GetPositions() for cid in conf_ids]).astype(np.float64)


def rdkit_conformers(mol: Chem.Mol, num: int, seed: int) -> torch.Tensor:
    """``(K, N, 3)`` float64 angstrom, ``1 <= K <= num`` ETKDGv3 conformers of ``mol`` (with Hs).

    Raises:
        InvalidMoleculeError: ``no_conformer`` if RDKit embeds none.
    """
    positions = embed_etkdg(mol, int(num), int(seed))
    if positions.shape[0] == 0:
        raise InvalidMoleculeError("no_conformer", f"RDKit could not embed {Chem.MolToSmiles(mol)!r}")
    return torch.from_numpy(positions)


def local_structure(parsed: ParsedMolecule, seed: int, max_iterations: int = 0) -> torch.Tensor:
    """One RDKit ETKDGv3 conformer of ``parsed``, MMFF94-optimised, as ``(N, 3)`` float64 angstrom.

    Deterministic for a given ``seed``. If MMFF94 has no parameters for the molecule the
    ETKDG geometry is returned unoptimised. ``max_iterations`` bounds RDKit's embedding attempts
    and then leaves out the second try from random coordinates (0: RDKit's default of 10 attempts
    per atom, then that second try; a stereoisomer that cannot exist in 3D uses them all, about
    10 s for 40 atoms).

    Raises:
        InvalidMoleculeError: ``no_conformer`` if RDKit cannot embed the molecule.
    """
    mol = Chem.Mol(parsed.mol)
    mol.RemoveAllConformers()
    params = etkdg_parameters(seed)
    params.maxIterations = int(max_iterations)
    conf_id = AllChem.EmbedMolecule(mol, params)
    if conf_id < 0 and not max_iterations:
        params.useRandomCoords = True
        conf_id = AllChem.EmbedMolecule(mol, params)
    if conf_id < 0:
        raise InvalidMoleculeError("no_conformer", f"RDKit could not embed a 3D conformer of {parsed.smiles!r}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    return torch.tensor(mol.GetConformer(conf_id).GetPositions(), dtype=torch.float64)
