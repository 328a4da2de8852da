"""RDKit ETKDGv3 conformers of a molecule, used as warm-start targets (bridge matching)."""

from __future__ import annotations

import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch import Tensor

from adjoint_sampling.errors import InvalidMoleculeError


def rdkit_conformers(mol: Chem.Mol, num: int, seed: int) -> Tensor:
    """``(K, N, 3)`` float64 angstrom, ``1 <= K <= num`` ETKDGv3 conformers of ``mol`` (with Hs).

    Raises:
        InvalidMoleculeError: ``no_conformer`` if RDKit embeds none.
    """
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) & 0x7FFFFFFF
    ids = list(AllChem.EmbedMultipleConfs(work, numConfs=int(num), params=params))
    if not ids:
        raise InvalidMoleculeError("no_conformer", f"RDKit could not embed {Chem.MolToSmiles(mol)!r}")
    return torch.stack([torch.tensor(work.GetConformer(i).GetPositions(), dtype=torch.float64) for i in ids])
