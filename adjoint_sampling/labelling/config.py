"""The labelling job's YAML config, read into typed dataclasses (unknown keys raise ``ConfigError``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.training.config import parse_dataclass, read_yaml

__all__ = [
    "SOURCES", "SPLITS", "SourceCounts", "SplitFractions", "ThermalParams", "XtbPathParams", "LabelConfig",
    "load_label_config", "label_config_from_dict",
]

SOURCES: tuple[str, ...] = ("etkdg", "mmff", "torsions", "sampler", "thermal", "xtb_path")
"""Conformer sources, in the order a molecule's frames are written."""

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass
class SourceCounts:
    """Conformers drawn per molecule and source (before structure checks, duplicates and failed SCFs).

    ``xtb_path`` counts snapshots kept along the GFN2-xTB relaxations (see :class:`XtbPathParams`).
    """

    etkdg: int = 16
    mmff: int = 16
    torsions: int = 16
    sampler: int = 24
    thermal: int = 16
    xtb_path: int = 12

    def __post_init__(self) -> None:
        for name in SOURCES:
            if getattr(self, name) < 0:
                raise ConfigError(f"config.sources.{name} must be >= 0, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in SOURCES}


@dataclass
class SplitFractions:
    """Fractions of molecules per split (must sum to 1); assignment hashes the canonical SMILES."""

    train: float = 0.9
    validation: float = 0.05
    test: float = 0.05

    def __post_init__(self) -> None:
        values = [self.train, self.validation, self.test]
        if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-9:
            raise ConfigError(f"config.split: fractions must be >= 0 and sum to 1, got {values}")


@dataclass
class ThermalParams:
    """Thermal source: classical harmonic (normal-mode) displacements about MMFF94 minima.

    Attributes:
        min_temperature_k / max_temperature_k: each frame draws T uniformly in this range (kelvin).
        min_curvature: floor on the Hessian eigenvalues, kcal/mol/angstrom^2 (keeps soft torsional
            modes from being extrapolated far beyond where the harmonic picture holds).
    """

    min_temperature_k: float = 300.0
    max_temperature_k: float = 1000.0
    min_curvature: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.min_temperature_k <= self.max_temperature_k:
            raise ConfigError("config.thermal: need 0 < min_temperature_k <= max_temperature_k")
        if not self.min_curvature > 0:
            raise ConfigError("config.thermal.min_curvature must be > 0")


@dataclass
class XtbPathParams:
    """xTB-path source: L-BFGS relaxations on GFN2-xTB from ETKDG starts; snapshots spread evenly
    over the points each relaxation evaluates (their energies and forces are the relaxation's own).

    Attributes:
        trajectories: relaxations per molecule (the snapshots are shared evenly among them).
        max_steps: optimiser steps per relaxation (each costs one xTB energy+forces call).
        fmax: convergence threshold, kcal/mol/angstrom.
    """

    trajectories: int = 2
    max_steps: int = 12
    fmax: float = 0.5

    def __post_init__(self) -> None:
        if self.trajectories < 1 or self.max_steps < 1:
            raise ConfigError("config.xtb_path: trajectories and max_steps must be >= 1")


@dataclass
class LabelConfig:
    """A labelling job.

    Attributes:
        smiles_file: SMILES list; default ``../shared/data/spice_train.txt`` (test lists are refused).
        smiles: an inline list instead of a file (tests).
        max_molecules: label only the first this many distinct molecules (``None``: all).
        order: ``"hash"`` (a random but fixed order: any prefix is a sample of the whole list) or
            ``"file"`` (the list's order).
        max_atoms: skip molecules with more atoms (hydrogens included).
        seed: base seed; each molecule's seed hashes it with the canonical SMILES.
        out_dir: output folder (``--out`` overrides).
        molecules_per_file: consecutive molecules of the list packed into one chunk file per split.
        sources: :class:`SourceCounts`.
        split: :class:`SplitFractions`.
        thermal: :class:`ThermalParams`.
        xtb_path: :class:`XtbPathParams`.
        sampler_checkpoint: model of the ``sampler`` source (``None``: the shipped model).
        energy_options: keyword arguments of the ``xtb`` backend (``num_workers`` is forced to 1:
            parallelism comes from ``--workers`` processes).
    """

    smiles_file: str | None = None
    smiles: list[str] | None = None
    max_molecules: int | None = None
    order: str = "hash"
    max_atoms: int = 80
    seed: int = 0
    out_dir: str = "out/labels/spice_xtb"
    molecules_per_file: int = 64
    sources: SourceCounts = field(default_factory=SourceCounts)
    split: SplitFractions = field(default_factory=SplitFractions)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    xtb_path: XtbPathParams = field(default_factory=XtbPathParams)
    sampler_checkpoint: str | None = None
    energy_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.smiles_file is not None and "spice_test" in Path(self.smiles_file).name:
            raise ConfigError(f"config.smiles_file: {self.smiles_file!r} is a test list; label training molecules only")
        if self.order not in ("hash", "file"):
            raise ConfigError(f"config.order must be 'hash' or 'file', got {self.order!r}")
        if self.max_molecules is not None and self.max_molecules < 1:
            raise ConfigError("config.max_molecules must be >= 1")
        if self.molecules_per_file < 1:
            raise ConfigError("config.molecules_per_file must be >= 1")
        if self.max_atoms < 1:
            raise ConfigError("config.max_atoms must be >= 1")


def label_config_from_dict(data: Any) -> LabelConfig:
    """A :class:`LabelConfig` from a mapping (``ConfigError`` for unknown keys or bad values)."""
    return parse_dataclass(LabelConfig, data, "config")


def load_label_config(path: str | Path) -> LabelConfig:
    """Read a YAML labelling config (``ConfigError`` if missing, not YAML, or invalid)."""
    return label_config_from_dict(read_yaml(path))
