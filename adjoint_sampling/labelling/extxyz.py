"""Labelled conformers as gzip-compressed extended XYZ: the writer and a fast reader.

Why extended XYZ: it is plain text that chemists' tools read directly (ASE ``ase.io.read(path,
index=":")``, OVITO, the MACE / NequIP / fairchem data loaders), it keeps per-frame metadata as
``key=value`` pairs next to per-atom arrays, it diffs and greps, and gzip makes it about as small as a
binary format for this data. No extra dependency is needed to write or read it (this module uses
numpy only; ASE is not required).

One frame (ASE conventions: ``energy`` in eV, ``forces`` in eV/angstrom, so ``atoms.get_potential_energy()``
and ``atoms.get_forces()`` are right in ASE)::

    9
    Properties=species:S:1:pos:R:3:forces:R:3 energy=-311.4 energy_kcal_mol=-7181.2 smiles="CCO"
    charge=0 multiplicity=1 source=etkdg split=train mol_id=mol-3f2a... conf_id=0 pbc="F F F"
    C  x y z  fx fy fz
    ...

(the comment line is one line). Positions in angstrom with 6 decimals, forces in eV/angstrom with
6 decimals (1e-6 eV/A = 2.3e-5 kcal/mol/A), energies with full float precision. Optional extras:
``temperature_k`` (thermal source), ``step`` (xtb_path: optimiser evaluation index).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adjoint_sampling.core.units import EV_TO_KCAL

__all__ = ["POSITION_DECIMALS", "LabelledFrame", "frames_by_molecule", "frames_to_text", "write_frames_gz", "read_frames",
           "iter_frames_text"]

POSITION_DECIMALS = 6
"""Decimals of the stored positions (angstrom); the job labels positions rounded to these, so a
frame's energy and forces belong exactly to the positions in the file."""

_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe"
).split()
_NUMBERS = {s: z for z, s in enumerate(_SYMBOLS)}
_PROPERTIES = "species:S:1:pos:R:3:forces:R:3"
_KEY_VALUE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))')


@dataclass
class LabelledFrame:
    """One labelled conformer.

    Attributes:
        atomic_numbers: ``(N,)`` int.
        positions: ``(N, 3)`` float64 angstrom.
        energy_kcal_mol: GFN2-xTB total energy, kcal/mol.
        forces_kcal_mol_a: ``(N, 3)`` float64 kcal/mol/angstrom (minus the energy gradient).
        smiles: canonical SMILES of the molecule (heavy atoms, stereo).
        charge / multiplicity: total charge and spin multiplicity used in the calculation.
        source: one of :data:`adjoint_sampling.labelling.config.SOURCES`.
        split: ``train``, ``validation`` or ``test``.
        mol_id: stable molecule id (``mol-`` + hash of the canonical SMILES).
        conf_id: index of the frame within its molecule.
        extras: optional numbers (``temperature_k`` float, ``step`` int).
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy_kcal_mol: float
    forces_kcal_mol_a: np.ndarray
    smiles: str
    charge: int
    multiplicity: int
    source: str
    split: str
    mol_id: str
    conf_id: int
    extras: dict[str, float | int] = field(default_factory=dict)

    @property
    def energy_ev(self) -> float:
        return self.energy_kcal_mol / EV_TO_KCAL

    @property
    def forces_ev_a(self) -> np.ndarray:
        """``(N, 3)`` eV/angstrom."""
        return self.forces_kcal_mol_a / EV_TO_KCAL

    @property
    def num_atoms(self) -> int:
        return int(len(self.atomic_numbers))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _format_number(value: float | int) -> str:
    return str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))


def _comment(frame: LabelledFrame) -> str:
    parts = [
        f"Properties={_PROPERTIES}",
        f"energy={frame.energy_ev!r}",
        f"energy_kcal_mol={float(frame.energy_kcal_mol)!r}",
        f"smiles={_quote(frame.smiles)}",
        f"charge={int(frame.charge)}",
        f"multiplicity={int(frame.multiplicity)}",
        f"source={frame.source}",
        f"split={frame.split}",
        f"mol_id={frame.mol_id}",
        f"conf_id={int(frame.conf_id)}",
    ]
    parts += [f"{key}={_format_number(value)}" for key, value in sorted(frame.extras.items())]
    parts.append('pbc="F F F"')
    return " ".join(parts)


def frames_to_text(frames: Iterable[LabelledFrame]) -> str:
    """Extended XYZ text of ``frames`` (deterministic: the same frames give the same text)."""
    lines: list[str] = []
    for frame in frames:
        forces = np.asarray(frame.forces_ev_a, dtype=np.float64)
        pos = np.asarray(frame.positions, dtype=np.float64)
        lines.append(str(frame.num_atoms))
        lines.append(_comment(frame))
        for z, xyz, f in zip(frame.atomic_numbers, pos, forces):
            lines.append(
                f"{_SYMBOLS[int(z)]:<2} {xyz[0]:.6f} {xyz[1]:.6f} {xyz[2]:.6f} {f[0]:.6f} {f[1]:.6f} {f[2]:.6f}"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def write_frames_gz(frames: Iterable[LabelledFrame]) -> bytes:
    """gzip-compressed extended XYZ bytes (``mtime=0``: identical frames give identical bytes)."""
    return gzip.compress(frames_to_text(frames).encode("utf-8"), compresslevel=9, mtime=0)


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def iter_frames_text(text: str) -> Iterator[LabelledFrame]:
    """Frames of extended XYZ ``text`` written by :func:`frames_to_text`."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        info: dict[str, str] = {}
        for match in _KEY_VALUE.finditer(lines[i + 1]):
            key, quoted, bare = match.groups()
            info[key] = _unquote(quoted) if quoted is not None else bare
        rows = [line.split() for line in lines[i + 2 : i + 2 + n]]
        data = np.array([row[1:7] for row in rows], dtype=np.float64).reshape(n, 6)
        known = {"Properties", "energy", "energy_kcal_mol", "smiles", "charge", "multiplicity", "source", "split",
                 "mol_id", "conf_id", "pbc"}
        yield LabelledFrame(
            atomic_numbers=np.array([_NUMBERS[row[0]] for row in rows], dtype=np.int64),
            positions=data[:, :3],
            energy_kcal_mol=float(info["energy_kcal_mol"]),
            forces_kcal_mol_a=data[:, 3:] * EV_TO_KCAL,
            smiles=info["smiles"],
            charge=int(info["charge"]),
            multiplicity=int(info["multiplicity"]),
            source=info["source"],
            split=info["split"],
            mol_id=info["mol_id"],
            conf_id=int(info["conf_id"]),
            extras={k: _number(v) for k, v in info.items() if k not in known},
        )
        i += 2 + n


def read_frames(path: str | Path) -> list[LabelledFrame]:
    """All frames of a ``.extxyz`` or ``.extxyz.gz`` file written by this module."""
    path = Path(path)
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    return list(iter_frames_text(text))


def frames_by_molecule(paths: Iterable[str | Path], splits: Collection[str]) -> list[list[LabelledFrame]]:
    """The frames of ``paths`` whose split is in ``splits``, one group per molecule, groups in ``mol_id``
    order, frames in file order. A group shares ``mol_id``, atom order, charge and multiplicity (frames
    of one ``mol_id`` that disagree on those form groups of their own)."""
    groups: dict[tuple[str, bytes, int, int], list[LabelledFrame]] = {}
    for path in paths:
        for frame in read_frames(path):
            if frame.split in splits:
                key = (frame.mol_id, np.asarray(frame.atomic_numbers, dtype=np.int64).tobytes(), frame.charge,
                       frame.multiplicity)
                groups.setdefault(key, []).append(frame)
    return [frames for _, frames in sorted(groups.items(), key=lambda item: item[0][0])]
