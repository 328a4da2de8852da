"""A SMILES library read lazily: ``.smi`` / ``.smiles`` / ``.txt`` files, optionally gzip-compressed.

Lines are read as SMILES files are (:func:`adjoint_sampling.problems.molecular.dataset.smiles_of_line`):
whitespace-separated columns, the SMILES is the second column of SPICE lists (``count smiles id`` with a
header) or else the first; lines starting with ``#`` are comments. Molecules are numbered from 0 in file order.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TextIO

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.problems.molecular.dataset import smiles_of_line

__all__ = ["LIBRARY_SUFFIXES", "Batch", "LibraryEntry", "count_library", "iter_batches", "iter_library"]

LIBRARY_SUFFIXES: tuple[str, ...] = (".smi", ".smiles", ".txt")


@dataclass(frozen=True)
class LibraryEntry:
    """One molecule of the library: its 0-based position and its SMILES."""

    index: int
    smiles: str


@dataclass(frozen=True)
class Batch:
    """The molecules of one output shard (consecutive library entries)."""

    shard: int
    entries: tuple[LibraryEntry, ...]


def _check_path(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"SMILES library {str(path)!r} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in LIBRARY_SUFFIXES:
        raise ConfigError(f"SMILES library {str(path)!r}: expected {'/'.join(LIBRARY_SUFFIXES)} (optionally .gz)")


def _open(path: Path) -> TextIO:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_library(path: str | Path) -> Iterator[LibraryEntry]:
    """The library's molecules one at a time (the file is streamed, never held in memory).

    Raises:
        ConfigError: the file does not exist, has another suffix, or is not valid gzip / UTF-8.
    """
    path = Path(path)
    _check_path(path)
    index = 0
    try:
        with _open(path) as fh:
            for line in fh:
                smiles = smiles_of_line(line)
                if smiles is not None:
                    yield LibraryEntry(index, smiles)
                    index += 1
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ConfigError(f"SMILES library {str(path)!r} cannot be read: {exc}") from None


def count_library(path: str | Path) -> int:
    """Molecules in the library (one streaming pass, no parsing of the SMILES)."""
    return sum(1 for _ in iter_library(path))


def iter_batches(entries: Iterator[LibraryEntry], batch_size: int) -> Iterator[Batch]:
    """Consecutive ``batch_size`` entries as numbered shards (the last one may be smaller)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    shard = 0
    while chunk := tuple(islice(entries, batch_size)):
        yield Batch(shard, chunk)
        shard += 1
