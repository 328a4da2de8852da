"""RDKit ETKDGv3 conformers of a molecule, used as warm-start targets (bridge matching)."""

from __future__ import annotations

import torch
from rdkit import Chem
from torch import Tensor

from adjoint_sampling.errors import InvalidMoleculeError
from adjoint_sampling.etkdg import embed_etkdg


def rdkit_conformers(mol: Chem.Mol, num: int, seed: int) -> Tensor:
    """``(K, N, 3)`` float64 angstrom, ``1 <= K <= num`` ETKDGv3 conformers of ``mol`` (with Hs).

    Raises:
        InvalidMoleculeError: ``no_conformer`` if RDKit embeds none.
    """
    positions = embed_etkdg(mol, int(num), int(seed))
    if positions.shape[0] == 0:
        raise InvalidMoleculeError("no_conformer", f"RDKit could not embed {Chem.MolToSmiles(mol)!r}")
    return torch.from_numpy(positions)
