"""SMILES -> validated RDKit molecule with explicit hydrogens, total charge and multiplicity.

Everything a model cannot handle is refused here with :class:`InvalidMoleculeError`, whose
``reason`` names the problem. Charge and multiplicity are always derived from the molecule (or
checked against the caller's values), never silently set to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rdkit import Chem, RDLogger
from rdkit.Chem.MolStandardize import rdMolStandardize

from adjoint_sampling.core.errors import InvalidMoleculeError

__all__ = ["SUPPORTED_ELEMENTS", "ParsedMolecule", "canonical_smiles", "parse_mol", "parse_smiles", "require_elements"]

SUPPORTED_ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
"""Elements of the SPICE training set (every element of ``spice_train.txt``)."""

MAX_SMILES_LENGTH: int = 1000
DEFAULT_MAX_ATOMS: int = 200


@dataclass(frozen=True)
class ParsedMolecule:
    """A validated molecule.

    Attributes:
        smiles: the input SMILES.
        canonical_smiles: RDKit canonical SMILES (heavy atoms, with stereo).
        mol: RDKit molecule with explicit hydrogens, sanitized, stereo assigned, no conformers.
        charge: total charge (sum of formal charges).
        multiplicity: spin multiplicity 2S+1 from radical electrons.
        removed_fragments: SMILES of the fragments stripped from the input (counter-ions, solvents),
            empty unless parsed with ``strip_fragments``.
    """

    smiles: str
    canonical_smiles: str
    mol: Chem.Mol
    charge: int
    multiplicity: int
    removed_fragments: tuple[str, ...] = ()

    @property
    def num_atoms(self) -> int:
        return int(self.mol.GetNumAtoms())


def canonical_smiles(smiles: str) -> str:
    """RDKit canonical SMILES of ``smiles`` as written (no hydrogens added, no fragment stripped;
    ``smiles`` itself if RDKit cannot parse it): a key to compare molecule lists by."""
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return smiles if mol is None else Chem.MolToSmiles(mol)


def parse_smiles(smiles: str, **options: Any) -> ParsedMolecule:
    """Parse and validate ``smiles``.

    Args:
        smiles: input SMILES.
        options: the checks of :func:`parse_mol` (``charge``, ``multiplicity``, ``max_atoms``,
            ``allow_fragments``, ``strip_fragments``, ``allow_radicals``, ``supported_elements``).

    Raises:
        InvalidMoleculeError: with ``reason`` in ``InvalidMoleculeError.REASONS``.
    """
    if not isinstance(smiles, str):
        raise InvalidMoleculeError("invalid_input", f"SMILES must be a string, got {type(smiles).__name__}")
    text = smiles.strip()
    if not text:
        raise InvalidMoleculeError("empty", "SMILES is empty")
    if len(text) > MAX_SMILES_LENGTH:
        raise InvalidMoleculeError(
            "invalid_input", f"SMILES is {len(text)} characters long; the limit is {MAX_SMILES_LENGTH}"
        )
    if not text.isascii() or any(ch.isspace() for ch in text):
        raise InvalidMoleculeError("invalid_smiles", "SMILES contains whitespace or non-ASCII characters")
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(text)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise InvalidMoleculeError("invalid_smiles", f"RDKit cannot parse SMILES {text!r}")
    return parse_mol(mol, smiles=smiles, **options)


def parse_mol(
    mol: Chem.Mol,
    *,
    smiles: str | None = None,
    charge: int | None = None,
    multiplicity: int | None = None,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    allow_fragments: bool = False,
    strip_fragments: bool = False,
    allow_radicals: bool = False,
    supported_elements: tuple[str, ...] = SUPPORTED_ELEMENTS,
) -> ParsedMolecule:
    """Validate an RDKit molecule.

    Hydrogens the molecule carries keep their place; missing ones are added after the heavy atoms,
    so the atom order is that of ``mol`` (as RDKit's ``EmbedMultipleConfs`` users expect). Stripped
    fragments change the atom order to that of the kept fragment.

    Args:
        mol: the molecule (RDKit).
        smiles: the input as the caller gave it (default: RDKit's SMILES of ``mol``).
        charge: expected total charge; must equal the sum of formal charges if given (after any
            fragments are stripped: the parent's charge).
        multiplicity: expected multiplicity; must match the radical electrons if given.
        max_atoms: limit on the number of atoms including hydrogens.
        allow_fragments: accept several disconnected fragments (salts, mixtures) as one system.
        strip_fragments: keep the largest organic fragment and strip the others (counter-ions,
            solvents), reporting them in ``removed_fragments``.
        allow_radicals: accept open-shell molecules (multiplicity > 1).
        supported_elements: element symbols the model was trained on.

    Raises:
        InvalidMoleculeError: with ``reason`` in ``InvalidMoleculeError.REASONS``.
    """
    if mol is None or mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError("empty", "the molecule has no atoms")
    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    removed: tuple[str, ...] = ()
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(fragments) > 1 and strip_fragments:
        RDLogger.DisableLog("rdApp.*")
        try:
            kept = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
        finally:
            RDLogger.EnableLog("rdApp.*")
        if not any(atom.GetAtomicNum() == 6 for atom in kept.GetAtoms()):
            raise InvalidMoleculeError(
                "multiple_fragments", f"SMILES has {len(fragments)} disconnected fragments and none is organic"
            )
        kept_smiles = Chem.MolToSmiles(Chem.RemoveHs(kept, sanitize=False))
        others = [Chem.MolToSmiles(Chem.RemoveHs(f, sanitize=False)) for f in fragments]
        others.remove(kept_smiles) if kept_smiles in others else others.pop(0)
        removed, mol = tuple(others), Chem.Mol(kept)
    elif len(fragments) > 1 and not allow_fragments:
        raise InvalidMoleculeError(
            "multiple_fragments",
            f"SMILES has {len(fragments)} disconnected fragments; send one molecule, or strip counter-ions and "
            "solvents (strip_fragments)",
        )
    require_elements(mol, supported_elements)
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals and not allow_radicals:
        raise InvalidMoleculeError(
            "radical", f"molecule has {radicals} unpaired electron(s); only closed-shell molecules are supported"
        )
    formal_charge = int(Chem.GetFormalCharge(mol))
    if charge is not None and int(charge) != formal_charge:
        raise InvalidMoleculeError(
            "charge_mismatch", f"charge {charge} disagrees with the SMILES formal charges (total {formal_charge})"
        )
    derived_multiplicity = radicals + 1
    if multiplicity is not None and int(multiplicity) != derived_multiplicity:
        raise InvalidMoleculeError(
            "multiplicity_mismatch",
            f"multiplicity {multiplicity} disagrees with the SMILES ({radicals} unpaired electrons, "
            f"multiplicity {derived_multiplicity})",
        )
    mol_h = Chem.AddHs(mol)
    if mol_h.GetNumAtoms() > max_atoms:
        raise InvalidMoleculeError(
            "too_many_atoms", f"molecule has {mol_h.GetNumAtoms()} atoms with hydrogens; the limit is {max_atoms}"
        )
    Chem.AssignStereochemistry(mol_h, cleanIt=True, force=True)
    heavy = Chem.RemoveHs(mol_h)
    return ParsedMolecule(
        smiles=smiles if smiles is not None else Chem.MolToSmiles(heavy),
        canonical_smiles=Chem.MolToSmiles(heavy),
        mol=mol_h,
        charge=formal_charge,
        multiplicity=derived_multiplicity,
        removed_fragments=removed,
    )


def require_elements(mol: Chem.Mol, supported_elements: tuple[str, ...]) -> None:
    """``InvalidMoleculeError`` (reason ``unsupported_element``) naming the elements of ``mol`` that
    are not in ``supported_elements``."""
    unsupported = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(supported_elements))
    if unsupported:
        raise InvalidMoleculeError(
            "unsupported_element",
            f"unsupported element(s) {', '.join(unsupported)}; supported: {', '.join(supported_elements)}",
        )
