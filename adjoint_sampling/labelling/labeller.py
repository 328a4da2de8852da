"""Label one molecule: draw every source, check the structures, drop duplicates, GFN2-xTB energy and forces.

Per source: candidates -> non-finite or broken structures dropped (``check_conformers``: clash,
connectivity, stereo) -> positions rounded to the stored precision -> exact duplicates dropped (max atomic deviation below 1e-3 angstrom, e.g.
a torsion-free molecule's sampler draws) -> one batched xTB call (the ``xtb_path`` source brings its
own labels) -> failed SCFs recorded and skipped. Charge and multiplicity come from the SMILES.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.errors import AdjointSamplingError, InvalidMoleculeError
from adjoint_sampling.labelling.config import SOURCES
from adjoint_sampling.labelling.extxyz import POSITION_DECIMALS, LabelledFrame
from adjoint_sampling.labelling.molecules import MoleculeEntry
from adjoint_sampling.labelling.sources import SOURCE_FUNCTIONS, Candidates, MoleculeContext, Resources

__all__ = ["label_molecule", "DUPLICATE_TOLERANCE"]

log = logging.getLogger(__name__)

DUPLICATE_TOLERANCE: float = 1e-3
"""Conformers of one source closer than this (largest atomic deviation, angstrom) count as duplicates."""


def _distinct(positions: np.ndarray) -> np.ndarray:
    """Bool mask ``(B,)``: True for the first of each group of (near-)identical conformers."""
    keep = np.ones(len(positions), dtype=bool)
    for i in range(1, len(positions)):
        earlier = positions[:i][keep[:i]]
        if len(earlier) and (np.abs(earlier - positions[i]).max(axis=(1, 2)) < DUPLICATE_TOLERANCE).any():
            keep[i] = False
    return keep


def _source_stats() -> dict[str, Any]:
    return {"drawn": 0, "broken": 0, "broken_reasons": {}, "duplicates": 0, "xtb_calls": 0, "failed_scf": 0,
            "kept": 0, "cpu_s": 0.0, "skipped": None}


def label_molecule(entry: MoleculeEntry, resources: Resources) -> tuple[list[LabelledFrame], dict[str, Any]]:
    """Frames of one molecule (in source order) and its record (counts per source, failures, CPU seconds)."""
    config = resources.config
    start = time.process_time()
    record: dict[str, Any] = {
        "index": entry.index, "smiles": entry.smiles, "canonical": entry.canonical, "mol_id": entry.mol_id,
        "split": entry.split, "seed": entry.seed, "status": "ok", "reason": None, "num_atoms": 0,
        "charge": 0, "multiplicity": 1, "sources": {}, "failure_reasons": [], "num_frames": 0, "cpu_s": 0.0,
    }
    try:
        parsed = parse_smiles(entry.smiles, max_atoms=config.max_atoms)
    except InvalidMoleculeError as exc:
        record.update(status="skipped", reason=f"{exc.reason}: {exc.detail}", cpu_s=time.process_time() - start)
        return [], record
    system = atomic_system(parsed)
    record.update(num_atoms=parsed.num_atoms, charge=parsed.charge, multiplicity=parsed.multiplicity)
    ctx = MoleculeContext(parsed, system, entry.seed, config, resources)
    numbers = system.atomic_numbers.numpy().astype(np.int64)
    frames: list[LabelledFrame] = []
    for name in SOURCES:
        num = getattr(config.sources, name)
        if num == 0:
            continue
        stats = record["sources"][name] = _source_stats()
        t0 = time.process_time()
        try:
            cand = SOURCE_FUNCTIONS[name](ctx, num)
        except AdjointSamplingError as exc:
            stats["skipped"] = str(exc)
            stats["cpu_s"] = time.process_time() - t0
            log.info("%s: source %s skipped: %s", entry.canonical, name, exc)
            continue
        frames += _label_source(ctx, name, cand, stats, numbers, entry, len(frames))
        record["failure_reasons"] += stats.pop("_reasons")
        stats["cpu_s"] = time.process_time() - t0
    record["num_frames"] = len(frames)
    record["cpu_s"] = time.process_time() - start
    return frames, record


def _label_source(
    ctx: MoleculeContext, name: str, cand: Candidates, stats: dict[str, Any], numbers: np.ndarray,
    entry: MoleculeEntry, first_id: int,
) -> list[LabelledFrame]:
    positions = np.round(np.asarray(cand.positions, dtype=np.float64), POSITION_DECIMALS)
    stats["drawn"] = len(positions)
    stats["xtb_calls"] = cand.xtb_calls
    stats["failed_scf"] = cand.failed_scf
    reasons = list(cand.failure_reasons)
    keep = np.isfinite(positions).reshape(len(positions), -1).all(axis=1)
    broken: Counter[str] = Counter({"non_finite": int((~keep).sum())} if (~keep).any() else {})
    if keep.any():
        checks = check_conformers(ctx.parsed.mol, np.where(keep[:, None, None], positions, 0.0))
        for b, check in enumerate(checks):
            if keep[b] and not check.ok:
                keep[b] = False
                broken[check.reason or "broken"] += 1
    stats["broken"] = sum(broken.values())
    stats["broken_reasons"] = dict(sorted(broken.items()))
    idx = np.flatnonzero(keep)
    distinct = _distinct(positions[idx])
    stats["duplicates"] = int((~distinct).sum())
    idx = idx[distinct]
    if cand.energy is not None and cand.forces is not None:
        energy, forces, ok = cand.energy[idx], cand.forces[idx], np.ones(len(idx), dtype=bool)
    elif len(idx):
        result = ctx.resources.energy.energy_and_forces(ctx.system, torch.from_numpy(positions[idx]))
        energy, forces, ok = result.energy.numpy(), result.forces.numpy(), result.ok.numpy().astype(bool)
        stats["xtb_calls"] += len(idx)
        stats["failed_scf"] += int((~ok).sum())
        reasons += list(result.failure_reasons)
    else:
        energy, forces, ok = np.zeros(0), np.zeros((0, len(numbers), 3)), np.zeros(0, dtype=bool)
    stats["_reasons"] = reasons
    frames = []
    for j, b in enumerate(idx.tolist()):
        if not ok[j]:
            continue
        frames.append(LabelledFrame(
            atomic_numbers=numbers, positions=positions[b], energy_kcal_mol=float(energy[j]),
            forces_kcal_mol_a=np.asarray(forces[j], dtype=np.float64), smiles=entry.canonical,
            charge=ctx.system.charge, multiplicity=ctx.system.multiplicity, source=name, split=entry.split,
            mol_id=entry.mol_id, conf_id=first_id + len(frames), extras=dict(cand.extras[b]),
        ))
    stats["kept"] = len(frames)
    return frames
