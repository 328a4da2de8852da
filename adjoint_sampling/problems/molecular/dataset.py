"""Training molecules: SMILES lists, and per-molecule data prepared once and cached.

A :class:`MoleculeRecord` holds everything the training problems and the sampler need about one
molecule: the parsed RDKit molecule, its graph, its :class:`AtomicSystem`, a local structure
(one RDKit conformer, angstrom) and its rotatable-bond topology.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.graph import MolecularGraph, atomic_system, featurize
from adjoint_sampling.chemistry.parsing import ParsedMolecule, parse_smiles
from adjoint_sampling.chemistry.torsions import TorsionTopology, find_torsions
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import ConfigError, InvalidMoleculeError
from adjoint_sampling.core.paths import SHARED_DATA_DIR

log = logging.getLogger(__name__)

DEFAULT_TRAIN_SMILES = SHARED_DATA_DIR / "spice_train.txt"
"""``../shared/data/spice_train.txt`` next to the repository."""


@dataclass(frozen=True)
class MoleculeRecord:
    """One molecule prepared for training or sampling.

    Attributes:
        parsed: the validated molecule (explicit hydrogens).
        graph: its features and bonds.
        system: what the energy backend needs (atomic numbers, charge, multiplicity, RDKit mol).
        local_positions: ``(N, 3)`` float64 angstrom, the local structure.
        topology: rotatable bonds of the molecule.
    """

    parsed: ParsedMolecule
    graph: MolecularGraph
    system: AtomicSystem
    local_positions: Tensor
    topology: TorsionTopology

    @property
    def smiles(self) -> str:
        return self.parsed.smiles

    @property
    def num_atoms(self) -> int:
        return self.graph.num_atoms

    @property
    def num_torsions(self) -> int:
        return self.topology.num_torsions


def smiles_of_line(line: str) -> str | None:
    """The SMILES of one line of a SMILES list (``None`` for blank, comment and header lines): the second
    column of SPICE rows (``count smiles id``), else the first column."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) >= 2 and fields[0].lstrip("-").isdigit():
        return fields[1]  # count, smiles, id
    if fields[0].lower() in ("smiles", "rotatable_bonds"):
        return None
    return fields[0]


def read_smiles_file(path: str | Path) -> list[str]:
    """SMILES of a ``.smi``/``.txt`` file: whitespace-separated columns, the SMILES is the column
    of SPICE lists (``count<TAB>smiles<TAB>id`` with a header) or else the first; lines starting
    with ``#`` are comments.

    Raises:
        ConfigError: if the file does not exist or holds no SMILES.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"SMILES file {str(path)!r} does not exist")
    smiles = [s for s in map(smiles_of_line, path.read_text().splitlines()) if s is not None]
    if not smiles:
        raise ConfigError(f"SMILES file {str(path)!r} holds no SMILES")
    return smiles


def prepare_molecule(
    smiles: str,
    *,
    seed: int = 0,
    max_atoms: int | None = None,
    charge: int | None = None,
    multiplicity: int | None = None,
    supported_elements: Sequence[str] | None = None,
) -> MoleculeRecord:
    """Parse ``smiles`` and build its record (local structure embedded with ``seed``).

    Raises:
        InvalidMoleculeError: the molecule cannot be parsed, is too large, has elements outside
            ``supported_elements``, or cannot be embedded.
    """
    kwargs: dict[str, object] = {} if max_atoms is None else {"max_atoms": int(max_atoms)}
    if supported_elements is not None:
        kwargs["supported_elements"] = tuple(supported_elements)
    return molecule_record(parse_smiles(smiles, charge=charge, multiplicity=multiplicity, **kwargs), seed=seed)


def molecule_record(parsed: ParsedMolecule, *, seed: int = 0) -> MoleculeRecord:
    """The record of an already parsed molecule (local structure embedded with ``seed``).

    Raises:
        InvalidMoleculeError: ``no_conformer`` if RDKit cannot embed it.
    """
    return MoleculeRecord(
        parsed=parsed,
        graph=featurize(parsed),
        system=atomic_system(parsed),
        local_positions=local_structure(parsed, seed),
        topology=find_torsions(parsed.mol),
    )


def prepare_molecules(
    smiles: Iterable[str],
    *,
    seed: int = 0,
    max_atoms: int | None = None,
    min_torsions: int = 0,
    max_torsions: int | None = None,
    limit: int | None = None,
    accept: Callable[[AtomicSystem], None] | None = None,
) -> list[MoleculeRecord]:
    """Records of the usable molecules of ``smiles``, in input order, at most ``limit`` of them.

    Molecules that fail parsing or embedding, fall outside the atom / torsion limits, or that
    ``accept`` refuses (it raises ``InvalidMoleculeError``; for example an energy backend's
    ``check_system``) are skipped, before they count towards ``limit``; the counts per reason
    are logged.
    """
    records: list[MoleculeRecord] = []
    skipped: Counter[str] = Counter()
    for i, smi in enumerate(smiles):
        if limit is not None and len(records) >= limit:
            break
        try:
            record = prepare_molecule(smi, seed=seed + i, max_atoms=max_atoms)
        except InvalidMoleculeError as exc:
            skipped[exc.reason] += 1
            continue
        if record.num_torsions < min_torsions:
            skipped["too_few_torsions"] += 1
            continue
        if max_torsions is not None and record.num_torsions > max_torsions:
            skipped["too_many_torsions"] += 1
            continue
        if accept is not None:
            try:
                accept(record.system)
            except InvalidMoleculeError as exc:
                skipped[exc.reason] += 1
                continue
        records.append(record)
    log.info("prepared %d molecules; skipped %s", len(records), dict(skipped) or "none")
    return records


def molecule_runs(keys: Sequence[int]) -> list[tuple[int, int, int]]:
    """Runs of equal consecutive keys: ``(key, start, length)`` in order."""
    runs: list[tuple[int, int, int]] = []
    for i, key in enumerate(keys):
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((int(key), i, 1))
    return runs


def draw_molecule_keys(
    num_systems: int, num_molecules: int, samples_per_molecule: int, generator: torch.Generator | None
) -> list[int]:
    """``num_systems`` keys: random molecules (without replacement while possible), each repeated
    ``samples_per_molecule`` times consecutively (the last one may be repeated fewer times)."""
    if num_molecules < 1:
        raise ConfigError("the molecule dataset is empty")
    per = max(1, int(samples_per_molecule))
    needed = -(-int(num_systems) // per)
    picks: list[int] = []
    while len(picks) < needed:
        picks += torch.randperm(num_molecules, generator=generator)[: needed - len(picks)].tolist()
    keys = [k for k in picks for _ in range(per)]
    return keys[: int(num_systems)]
