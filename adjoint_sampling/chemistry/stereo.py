"""Stereoisomers of a molecule whose SMILES leaves stereocentres or double bonds unspecified."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions

__all__ = ["unspecified_stereoisomers"]


def unspecified_stereoisomers(mol: Chem.Mol, max_isomers: int = 16) -> list[Chem.Mol]:
    """Every assignment of the unspecified stereo elements of ``mol`` (at most ``max_isomers``).

    Specified stereo is kept; the atom order (hydrogens included) is that of ``mol``. A molecule
    without unspecified stereo gives ``[mol]``. Assignments that cannot exist in 3D (for example
    an inverted bridgehead nitrogen) are not filtered here, as RDKit's embedding test costs
    seconds for each: callers skip the isomers that fail to embed.
    """
    options = StereoEnumerationOptions(onlyUnassigned=True, unique=True, maxIsomers=int(max_isomers), tryEmbedding=False)
    isomers = list(EnumerateStereoisomers(Chem.Mol(mol), options=options))
    return isomers or [Chem.Mol(mol)]
