"""The molecules of a labelling job: which, in what order, in which chunk, shard and split, with what seed.

Everything here is a pure function of the SMILES list and the config, so every shard and every rerun
agrees on it:

* molecules: the list's SMILES canonicalised (RDKit, heavy atoms, stereo), first occurrence kept,
  in the config's ``order`` (``hash``: by a hash of the canonical SMILES, so that any first
  ``max_molecules`` or first chunks are a random sample of the list, which SPICE sorts by rotatable
  bonds; ``file``: file order), at most ``max_molecules``; a SMILES RDKit cannot read keeps its text
  as key (the job records it as skipped).
* chunk ``c`` holds molecules ``c * molecules_per_file ... (c + 1) * molecules_per_file - 1``;
  shard ``i`` of ``n`` owns the chunks with ``c % n == i``.
* split: from a hash of the canonical SMILES alone (independent of seed, order and sharding).
* seed of a molecule: hash of the config seed and the canonical SMILES.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adjoint_sampling.chemistry.parsing import canonical_smiles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.paths import SHARED_DATA_DIR
from adjoint_sampling.labelling.config import SPLITS, LabelConfig, SplitFractions
from adjoint_sampling.problems.molecular.dataset import read_smiles_file

__all__ = [
    "MoleculeEntry", "DEFAULT_SMILES_FILE", "canonical_smiles", "molecule_id", "molecule_entries", "split_of", "parse_shard",
]

DEFAULT_SMILES_FILE = SHARED_DATA_DIR / "spice_train.txt"


@dataclass(frozen=True)
class MoleculeEntry:
    """One molecule of the job.

    Attributes:
        index: position in the job's molecule list.
        smiles: the input SMILES.
        canonical: canonical SMILES (the input if RDKit cannot parse it).
        mol_id: ``mol-`` + 16 hex digits of the canonical SMILES' SHA-256.
        chunk: the chunk (output file) it belongs to.
        split: ``train``, ``validation`` or ``test``.
        seed: its seed (31 bits).
    """

    index: int
    smiles: str
    canonical: str
    mol_id: str
    chunk: int
    split: str
    seed: int


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def molecule_id(canonical: str) -> str:
    """The stable id of a molecule: ``mol-`` + 16 hex digits of its canonical SMILES' SHA-256."""
    return f"mol-{_digest(canonical):016x}"


def split_of(canonical: str, fractions: SplitFractions) -> str:
    """The split of a molecule: a uniform number from the SHA-256 of its canonical SMILES, cut at
    the cumulative fractions (train, validation, test)."""
    u = _digest(f"split:{canonical}") / 2.0**64
    edge = 0.0
    for name in SPLITS:
        edge += getattr(fractions, name)
        if u < edge:
            return name
    return next(name for name in reversed(SPLITS) if getattr(fractions, name) > 0)


def molecule_entries(config: LabelConfig) -> list[MoleculeEntry]:
    """The job's molecules in order (see the module docstring)."""
    if config.smiles:
        smiles = list(config.smiles)
    else:
        smiles = read_smiles_file(config.smiles_file or DEFAULT_SMILES_FILE)
    unique: dict[str, str] = {}
    for text in smiles:
        unique.setdefault(canonical_smiles(text), text)
    order = sorted(unique, key=_digest) if config.order == "hash" else list(unique)
    entries: list[MoleculeEntry] = []
    for canonical in order:
        text = unique[canonical]
        index = len(entries)
        entries.append(MoleculeEntry(
            index=index, smiles=text, canonical=canonical, mol_id=molecule_id(canonical),
            chunk=index // config.molecules_per_file, split=split_of(canonical, config.split),
            seed=_digest(f"seed:{config.seed}:{canonical}") & 0x7FFFFFFF,
        ))
        if config.max_molecules is not None and len(entries) >= config.max_molecules:
            break
    return entries


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) as ``(i, n)``; ``None`` is ``(0, 1)``.

    Raises:
        ConfigError: anything else.
    """
    if text is None:
        return 0, 1
    parts = text.split("/")
    try:
        index, count = int(parts[0]), int(parts[1])
        if len(parts) != 2:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"--shard must be i/n with integers 0 <= i < n, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard must be i/n with integers 0 <= i < n, got {text!r}")
    return index, count
