"""Reading the benchmark's test list and the CREST reference ensembles.

A CREST ensemble (``crest_conformers.xyz``) is a concatenation of XYZ blocks (atom count line,
comment line holding the energy, one ``symbol x y z`` line per atom, angstrom). Its atom order is
CREST's own; :func:`match_reference_blocks` maps it onto the SMILES molecule (with hydrogens) by
graph isomorphism of the connectivity perceived from the 3D coordinates, then checks every
reordered conformer against the SMILES (connectivity, stereochemistry, clashes). Conformers that
cannot be matched are kept out and reported with their reason, never dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import AdjointSamplingError, InvalidMoleculeError

__all__ = [
    "MAX_REFERENCES",
    "REFERENCE_FILE_NAME",
    "MissingReferenceError",
    "ReferenceEnsemble",
    "ReferenceFormatError",
    "BenchmarkMolecule",
    "UnmatchedConformer",
    "XyzBlock",
    "load_reference_ensemble",
    "match_reference_blocks",
    "read_test_list",
    "read_xyz_blocks",
    "reference_path",
]

log = logging.getLogger(__name__)

MAX_REFERENCES: int = 512
"""References used per molecule (the protocol's cap; CREST lists them by increasing energy)."""

REFERENCE_FILE_NAME: str = "crest_conformers.xyz"

_MAX_MAPPINGS_TRIED: int = 1000
"""Heavy-atom graph isomorphisms enumerated per search (alternatives matter only for stereo)."""


class ReferenceFormatError(AdjointSamplingError):
    """A test list or XYZ file is malformed (the message names the file, line and problem)."""


class MissingReferenceError(AdjointSamplingError):
    """A molecule of the test list has no reference ensemble file."""


@dataclass(frozen=True)
class BenchmarkMolecule:
    """One line of the test list: ``rotatable_bonds <TAB> smiles <TAB> mol_id``."""

    mol_id: str
    smiles: str
    rotatable_bonds: int


@dataclass(frozen=True)
class XyzBlock:
    """One XYZ block.

    Attributes:
        symbols: element symbols, length N.
        positions: ``(N, 3)`` float64, angstrom.
        comment: the comment line, stripped.
        energy: first number on the comment line (CREST's energy, its own unit), ``nan`` if none.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    comment: str
    energy: float


@dataclass(frozen=True)
class UnmatchedConformer:
    """A reference conformer that could not be mapped onto the SMILES molecule.

    Attributes:
        index: its block index in the XYZ file (0-based).
        reason: ``formula_mismatch``, ``connectivity_mismatch``, ``stereo_mismatch`` or ``clash``.
    """

    index: int
    reason: str


@dataclass
class ReferenceEnsemble:
    """The matched reference conformers of one test molecule.

    Attributes:
        molecule: the test-list entry.
        mol: the SMILES molecule with hydrogens (atom order of ``positions``), no conformers.
        positions: ``(L, N, 3)`` float64 angstrom, ``L <= max_references``, in file order.
        energies: ``(L,)`` energies from the comment lines.
        source_indices: ``(L,)`` block index of each reference in the XYZ file.
        num_blocks: blocks in the file.
        unmatched: conformers that could not be matched (all blocks of the file are examined).
    """

    molecule: BenchmarkMolecule
    mol: Chem.Mol
    positions: np.ndarray
    energies: np.ndarray
    source_indices: np.ndarray
    num_blocks: int
    unmatched: list[UnmatchedConformer] = field(default_factory=list)

    @property
    def num_references(self) -> int:
        return int(self.positions.shape[0])

    def unmatched_counts(self) -> dict[str, int]:
        """Unmatched conformers by reason."""
        return dict(Counter(u.reason for u in self.unmatched))


def read_test_list(path: str | Path) -> list[BenchmarkMolecule]:
    """Read ``spice_test.txt``-style lists (header line, then ``count<TAB>SMILES<TAB>id``)."""
    path = Path(path)
    molecules: list[BenchmarkMolecule] = []
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or (line_no == 1 and not fields[0].lstrip("-").isdigit()):
                continue
            if len(fields) != 3:
                raise ReferenceFormatError(f"{path}:{line_no}: expected 3 columns (rotatable bonds, SMILES, id), got {len(fields)}")
            count, smiles, mol_id = fields
            try:
                rotatable = int(count)
            except ValueError:
                raise ReferenceFormatError(f"{path}:{line_no}: rotatable-bond count {count!r} is not an integer") from None
            molecules.append(BenchmarkMolecule(mol_id=mol_id, smiles=smiles, rotatable_bonds=rotatable))
    ids = [m.mol_id for m in molecules]
    duplicates = sorted(k for k, v in Counter(ids).items() if v > 1)
    if duplicates:
        raise ReferenceFormatError(f"{path}: duplicate molecule ids {', '.join(duplicates)}")
    return molecules


def _parse_energy(comment: str) -> float:
    for token in comment.split():
        try:
            return float(token)
        except ValueError:
            continue
    return float("nan")


def read_xyz_blocks(path: str | Path) -> list[XyzBlock]:
    """Read all blocks of a (multi-)XYZ file.

    Raises:
        ReferenceFormatError: naming the file, line number and problem, for a bad atom count,
            a truncated block, a short atom line, a non-numeric coordinate or an unknown element.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    table = Chem.GetPeriodicTable()
    blocks: list[XyzBlock] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        header = lines[i].strip()
        try:
            num_atoms = int(header)
        except ValueError:
            raise ReferenceFormatError(f"{path}:{i + 1}: expected an atom count, got {header!r}") from None
        if num_atoms < 1:
            raise ReferenceFormatError(f"{path}:{i + 1}: atom count must be positive, got {num_atoms}")
        if i + 2 + num_atoms > len(lines):
            raise ReferenceFormatError(
                f"{path}:{i + 1}: block {len(blocks)} declares {num_atoms} atoms but the file ends "
                f"after {max(0, len(lines) - i - 2)} atom lines"
            )
        comment = lines[i + 1].strip()
        symbols: list[str] = []
        positions = np.empty((num_atoms, 3), dtype=np.float64)
        for a in range(num_atoms):
            line_no = i + 3 + a
            fields = lines[line_no - 1].split()
            if len(fields) < 4:
                raise ReferenceFormatError(f"{path}:{line_no}: expected 'symbol x y z', got {lines[line_no - 1].strip()!r}")
            symbol = fields[0].capitalize()
            try:
                if table.GetAtomicNumber(symbol) < 1:
                    raise ValueError
            except (RuntimeError, ValueError):
                raise ReferenceFormatError(f"{path}:{line_no}: unknown element symbol {fields[0]!r}") from None
            try:
                positions[a] = [float(v) for v in fields[1:4]]
            except ValueError:
                raise ReferenceFormatError(f"{path}:{line_no}: non-numeric coordinate in {lines[line_no - 1].strip()!r}") from None
            if not np.isfinite(positions[a]).all():
                raise ReferenceFormatError(f"{path}:{line_no}: non-finite coordinate")
            symbols.append(symbol)
        blocks.append(XyzBlock(tuple(symbols), positions, comment, _parse_energy(comment)))
        i += 2 + num_atoms
    if not blocks:
        raise ReferenceFormatError(f"{path}: no XYZ block found")
    return blocks


def _skeleton(atomic_numbers: list[int], bonds: list[tuple[int, int]]) -> Chem.Mol:
    """Graph with element-labelled atoms and plain single bonds (bond orders and charges ignored)."""
    rw = Chem.RWMol()
    for z in atomic_numbers:
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    for i, j in bonds:
        rw.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    mol = rw.GetMol()
    mol.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(mol)
    return mol


def _perceived_bonds(symbols: tuple[str, ...], positions: np.ndarray) -> list[tuple[int, int]]:
    """Bonds from 3D coordinates (RDKit ``DetermineConnectivity``, covalent radii)."""
    rw = Chem.RWMol()
    for symbol in symbols:
        rw.AddAtom(Chem.Atom(symbol))
    conf = Chem.Conformer(len(symbols))
    conf.SetPositions(np.asarray(positions, dtype=np.float64))
    rw.AddConformer(conf, assignId=True)
    mol = rw.GetMol()
    RDLogger.DisableLog("rdApp.*")
    try:
        rdDetermineBonds.DetermineConnectivity(mol, useHueckel=False)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]


def _graph_mappings(mol: Chem.Mol, block: XyzBlock, max_mappings: int) -> list[np.ndarray]:
    """Isomorphisms (SMILES atom i -> XYZ atom ``m[i]``) onto the graph perceived from ``block``.

    Heavy-atom isomorphisms are enumerated (at most ``max_mappings``); each one is extended to the
    hydrogens by pairing the hydrogens of corresponding heavy atoms (which hydrogen goes where
    does not matter for a heavy-atom comparison). Returns ``[]`` when the graphs differ.
    """
    xyz_bonds = _perceived_bonds(block.symbols, block.positions)
    if len(xyz_bonds) != mol.GetNumBonds():
        return []
    table = Chem.GetPeriodicTable()
    xyz_numbers = [table.GetAtomicNumber(s) for s in block.symbols]
    xyz_neighbours: list[list[int]] = [[] for _ in xyz_numbers]
    for i, j in xyz_bonds:
        xyz_neighbours[i].append(j)
        xyz_neighbours[j].append(i)

    def heavy_graph(numbers: list[int], bonds: list[tuple[int, int]]) -> tuple[Chem.Mol, list[int]]:
        heavy = [i for i, z in enumerate(numbers) if z > 1]
        local = {atom: k for k, atom in enumerate(heavy)}
        heavy_bonds = [(local[i], local[j]) for i, j in bonds if i in local and j in local]
        return _skeleton([numbers[i] for i in heavy], heavy_bonds), heavy

    smiles_bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    smiles_numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    smiles_heavy_graph, smiles_heavy = heavy_graph(smiles_numbers, smiles_bonds)
    xyz_heavy_graph, xyz_heavy = heavy_graph(xyz_numbers, xyz_bonds)
    if smiles_heavy_graph.GetNumBonds() != xyz_heavy_graph.GetNumBonds():
        return []
    heavy_matches = xyz_heavy_graph.GetSubstructMatches(
        smiles_heavy_graph, uniquify=False, useChirality=False, maxMatches=max_mappings
    )
    smiles_hydrogens = {
        i: sorted(n.GetIdx() for n in mol.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() == 1)
        for i in smiles_heavy
    }
    mappings: list[np.ndarray] = []
    for match in heavy_matches:
        mapping = np.full(len(smiles_numbers), -1, dtype=np.int64)
        consistent = True
        for k, atom in enumerate(smiles_heavy):
            target = xyz_heavy[match[k]]
            mapping[atom] = target
            xyz_h = sorted(n for n in xyz_neighbours[target] if xyz_numbers[n] == 1 and len(xyz_neighbours[n]) == 1)
            if len(xyz_h) != len(smiles_hydrogens[atom]):
                consistent = False
                break
            mapping[smiles_hydrogens[atom]] = xyz_h
        if consistent and (mapping >= 0).all():
            mappings.append(mapping)
    return mappings


def match_reference_blocks(
    mol: Chem.Mol, blocks: list[XyzBlock]
) -> tuple[np.ndarray, np.ndarray, list[UnmatchedConformer]]:
    """Map XYZ blocks onto ``mol`` (with hydrogens) and check each against the SMILES' stereo.

    Mappings found for one block are tried on all blocks still unplaced (CREST keeps its atom
    order, so one search usually places the whole ensemble); a block none of the known mappings
    places gets its own search, and is unmatched if that finds nothing new.

    Returns:
        ``(positions (M, N, 3) in mol atom order, indices (M,) of the matched blocks, unmatched)``.
    """
    n = mol.GetNumAtoms()
    formula = sorted(a.GetSymbol() for a in mol.GetAtoms())
    placed: dict[int, np.ndarray] = {}
    unmatched: dict[int, str] = {}
    pending: list[int] = []
    for index, block in enumerate(blocks):
        if len(block.symbols) != n or sorted(block.symbols) != formula:
            unmatched[index] = "formula_mismatch"
        else:
            pending.append(index)

    known: list[np.ndarray] = []
    failure: dict[int, str] = {}
    while pending:
        first = pending[0]
        found = _graph_mappings(mol, blocks[first], _MAX_MAPPINGS_TRIED)
        new = [m for m in found if not any(np.array_equal(m, old) for old in known)]
        if not new:
            unmatched[first] = failure.get(first, "stereo_changed") if found else "connectivity_changed"
            pending = pending[1:]
            continue
        known.extend(new)
        for mapping in new:
            if not pending:
                break
            stack = np.stack([blocks[i].positions[mapping] for i in pending])
            still: list[int] = []
            for index, check in zip(pending, check_conformers(mol, stack)):
                if check.ok:
                    placed[index] = blocks[index].positions[mapping]
                else:
                    failure[index] = _merge_reason(failure.get(index), check.reason)
                    still.append(index)
            pending = still

    order = sorted(placed)
    positions = np.stack([placed[i] for i in order]) if order else np.zeros((0, n, 3))
    unmatched_list = [UnmatchedConformer(index=i, reason=_REASON_NAMES.get(r, r)) for i, r in sorted(unmatched.items())]
    return positions, np.asarray(order, dtype=np.int64), unmatched_list


_REASON_NAMES = {"stereo_changed": "stereo_mismatch", "connectivity_changed": "connectivity_mismatch"}
_REASON_RANK = {"stereo_changed": 0, "clash": 1, "connectivity_changed": 2}


def _merge_reason(old: str | None, new: str | None) -> str:
    """Keep the most specific failure across mappings (stereo beats clash beats connectivity)."""
    if new is None:
        return old or "stereo_changed"
    if old is None:
        return new
    return old if _REASON_RANK.get(old, 3) <= _REASON_RANK.get(new, 3) else new


def reference_path(conformer_dir: str | Path, mol_id: str) -> Path:
    """Where the ensemble of ``mol_id`` lives: ``<conformer_dir>/<mol_id>/crest_conformers.xyz``."""
    return Path(conformer_dir) / mol_id / REFERENCE_FILE_NAME


def load_reference_ensemble(
    molecule: BenchmarkMolecule, conformer_dir: str | Path, max_references: int = MAX_REFERENCES
) -> ReferenceEnsemble:
    """Read, match and cap the reference ensemble of ``molecule``.

    Raises:
        MissingReferenceError: no ensemble file for the molecule.
        ReferenceFormatError: the file is malformed.
        InvalidMoleculeError: the test-list SMILES is refused by :func:`parse_smiles`.
    """
    path = reference_path(conformer_dir, molecule.mol_id)
    if not path.is_file():
        raise MissingReferenceError(f"no reference ensemble for {molecule.mol_id}: {path} does not exist")
    blocks = read_xyz_blocks(path)
    try:
        parsed = parse_smiles(molecule.smiles)
    except InvalidMoleculeError as exc:
        raise InvalidMoleculeError(exc.reason, f"{molecule.mol_id}: {exc.detail}") from None
    positions, indices, unmatched = match_reference_blocks(parsed.mol, blocks)
    if unmatched:
        log.info("%s: %d of %d reference conformers unmatched: %s", molecule.mol_id, len(unmatched), len(blocks),
                 dict(Counter(u.reason for u in unmatched)))
    positions, indices = positions[:max_references], indices[:max_references]
    energies = np.array([blocks[i].energy for i in indices], dtype=np.float64)
    mol = Chem.Mol(parsed.mol)
    mol.RemoveAllConformers()
    return ReferenceEnsemble(
        molecule=molecule,
        mol=mol,
        positions=positions,
        energies=energies,
        source_indices=indices,
        num_blocks=len(blocks),
        unmatched=unmatched,
    )
