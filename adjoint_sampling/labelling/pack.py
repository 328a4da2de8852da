"""A compact pack of labelled frames for training where bytes are scarce (a device call sends 64 MiB).

The gzip extended XYZ files stay the data of record; a pack is derived from them and holds what the
potential fit reads, in about half their bytes: per molecule its id, split, charge and atomic
numbers, per frame the energy (float64, kcal/mol, exact), positions rounded to 1e-5 angstrom and forces
rounded to 1e-3 kcal/mol/angstrom (int32, byte planes split, LZMA). The rounding is far below what a
potential resolves (the forces' own SCF noise is larger). One ``.pack.npz`` file (numpy's uncompressed
container; no pickled objects). Splits are kept per frame, as in the extxyz files:

    python -m adjoint_sampling.labelling.pack OUT.pack.npz "data/labels/spice_xtb/data/*/chunk-*.extxyz.gz"

:func:`adjoint_sampling.labelling.fit.load_molecule_frames` reads packs wherever it reads extxyz files.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import logging
import lzma
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adjoint_sampling.core.atomic_io import atomic_write_bytes
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.labelling.config import SPLITS
from adjoint_sampling.labelling.extxyz import frames_by_molecule

__all__ = ["PACK_SUFFIX", "PackedMolecule", "is_pack", "read_pack", "write_pack"]

logger = logging.getLogger(__name__)

PACK_SUFFIX = ".pack.npz"
PACK_VERSION = 1
POSITION_STEP = 1e-5
"""Angstrom per integer step of the stored positions."""
FORCE_STEP = 1e-3
"""kcal/mol/angstrom per integer step of the stored forces."""


@dataclass(frozen=True)
class PackedMolecule:
    """The frames of one molecule: ``positions`` ``(K, N, 3)`` angstrom, ``energy`` ``(K,)`` kcal/mol,
    ``forces`` ``(K, N, 3)`` kcal/mol/angstrom (float64), ``atomic_numbers`` ``(N,)``."""

    mol_id: str
    charge: int
    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray


def is_pack(path: str | Path) -> bool:
    """Whether ``path`` names a pack (by its suffix)."""
    return str(path).endswith(PACK_SUFFIX)


def _compress(values: np.ndarray, step: float) -> np.ndarray:
    quantised = np.round(np.asarray(values, dtype=np.float64) / step)
    if np.abs(quantised).max(initial=0) >= 2**31:
        raise ValueError(f"values beyond the pack's int32 range at step {step}")
    planes = quantised.astype("<i4").view(np.uint8).reshape(-1, 4).T  # byte planes compress far better
    return np.frombuffer(lzma.compress(np.ascontiguousarray(planes).tobytes(), preset=6), dtype=np.uint8)


def _decompress(blob: np.ndarray, count: int, step: float) -> np.ndarray:
    planes = np.frombuffer(lzma.decompress(blob.tobytes()), dtype=np.uint8).reshape(4, count)
    return np.ascontiguousarray(planes.T).view("<i4").reshape(-1).astype(np.float64) * step


def write_pack(files: Iterable[str | Path], out: str | Path, splits: Collection[str] = SPLITS) -> dict[str, int]:
    """Pack the frames of ``files`` in ``splits`` into ``out`` (written atomically); returns counts."""
    groups = frames_by_molecule(files, splits)
    if not groups:
        raise ConfigError(f"no frames of splits {sorted(splits)} to pack")
    molecules, numbers, energies, split_codes, positions, forces = [], [], [], [], [], []
    for frames in groups:
        first = frames[0]
        molecules.append({"mol_id": first.mol_id, "charge": int(first.charge),
                          "num_atoms": len(first.atomic_numbers), "num_frames": len(frames)})
        numbers.append(np.asarray(first.atomic_numbers, dtype=np.uint8))
        energies.extend(f.energy_kcal_mol for f in frames)
        split_codes.extend(SPLITS.index(f.split) for f in frames)
        positions.extend(np.asarray(f.positions).reshape(-1) for f in frames)
        forces.extend(np.asarray(f.forces_kcal_mol_a).reshape(-1) for f in frames)
    pos, frc = np.concatenate(positions), np.concatenate(forces)
    meta = {"version": PACK_VERSION, "position_step": POSITION_STEP, "force_step": FORCE_STEP,
            "values": int(pos.size), "splits": list(SPLITS), "molecules": molecules}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        atomic_numbers=np.concatenate(numbers),
        energy=np.asarray(energies, dtype=np.float64),
        split=np.asarray(split_codes, dtype=np.uint8),
        positions=_compress(pos, POSITION_STEP),
        forces=_compress(frc, FORCE_STEP),
    )
    atomic_write_bytes(out, buffer.getvalue())
    counts = {"molecules": len(molecules), "frames": len(energies), "atoms": int(pos.size // 3),
              "bytes": len(buffer.getvalue())}
    logger.info("packed %s into %s", counts, out)
    return counts


def read_pack(path: str | Path, splits: Collection[str]) -> list[PackedMolecule]:
    """The frames of the pack at ``path`` whose split is in ``splits``, grouped by molecule in the pack's
    (``mol_id``) order; molecules without such frames are left out.

    Raises:
        ConfigError: not a pack of a version this code reads.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            if meta.get("version") != PACK_VERSION:
                raise ConfigError(f"{path}: pack version {meta.get('version')!r}, this code reads {PACK_VERSION}")
            numbers, energy = data["atomic_numbers"], data["energy"]
            wanted = np.isin(np.asarray(meta["splits"])[data["split"]], list(splits))
            pos = _decompress(data["positions"], meta["values"], meta["position_step"])
            frc = _decompress(data["forces"], meta["values"], meta["force_step"])
    except (OSError, ValueError, KeyError, lzma.LZMAError) as exc:
        raise ConfigError(f"{path} is not a readable label pack: {exc}") from exc
    out: list[PackedMolecule] = []
    atom0 = frame0 = value0 = 0
    for mol in meta["molecules"]:
        n, k = mol["num_atoms"], mol["num_frames"]
        keep = wanted[frame0 : frame0 + k]
        if keep.any():
            shape = (k, n, 3)
            out.append(PackedMolecule(
                mol_id=mol["mol_id"], charge=int(mol["charge"]),
                atomic_numbers=numbers[atom0 : atom0 + n].astype(np.int64),
                positions=pos[value0 : value0 + k * n * 3].reshape(shape)[keep],
                energy=energy[frame0 : frame0 + k][keep],
                forces=frc[value0 : value0 + k * n * 3].reshape(shape)[keep],
            ))
        atom0, frame0, value0 = atom0 + n, frame0 + k, value0 + k * n * 3
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack labelled extxyz files for training (see the module docstring).")
    parser.add_argument("out", help=f"the pack to write (name ending in {PACK_SUFFIX})")
    parser.add_argument("patterns", nargs="+", help="glob patterns of labelled .extxyz.gz files")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not is_pack(args.out):
        parser.error(f"the pack's name must end in {PACK_SUFFIX}")
    files = sorted({f for pattern in args.patterns for f in glob.glob(pattern, recursive=True)})
    if not files:
        parser.error(f"no file matches {' '.join(args.patterns)}")
    try:
        counts = write_pack(files, args.out, args.splits)
    except ConfigError as exc:
        parser.error(str(exc))
    print(f"{args.out}: {counts['molecules']} molecules, {counts['frames']} frames, "
          f"{counts['bytes'] / 2**20:.1f} MiB from {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
