"""The data card of a labelling output folder: ``DATA_CARD.md`` and ``data_card.json``.

Counts come from the finished chunks (``chunks/*.json``) and are cross-checked against the frames
read back from ``data/``; energy and force statistics are computed from those frames. Relative
energies are ``E - min E`` over the molecule's frames (all sources), in kcal/mol.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.labelling.config import SOURCES, SPLITS
from adjoint_sampling.labelling.extxyz import read_frames

__all__ = ["build_data_card", "write_data_card"]


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max()), "min": float(v.min())}


def build_data_card(out_dir: str | Path) -> dict[str, Any]:
    """Statistics of the finished chunks of ``out_dir`` (see the module docstring).

    Raises:
        ConfigError: ``out_dir`` holds no finished chunk.
    """
    out = Path(out_dir)
    chunk_files = sorted((out / "chunks").glob("chunk-*.json"))
    if not chunk_files:
        raise ConfigError(f"{out}: no finished chunk to describe (chunks/*.json)")
    records: list[dict[str, Any]] = []
    data_bytes = 0
    for path in chunk_files:
        chunk = json.loads(path.read_text())
        records += chunk["molecules"]
        data_bytes += sum(f["bytes"] for f in chunk["files"].values())
    per_source: dict[str, Counter[str]] = {name: Counter() for name in SOURCES}
    broken_reasons: Counter[str] = Counter()
    skipped_sources: Counter[str] = Counter()
    for rec in records:
        for name, stats in rec["sources"].items():
            for key in ("drawn", "broken", "duplicates", "xtb_calls", "failed_scf", "kept"):
                per_source[name][key] += stats[key]
            per_source[name]["cpu_ms"] += int(round(1000 * stats["cpu_s"]))
            broken_reasons.update(stats["broken_reasons"])
            if stats["skipped"]:
                skipped_sources[f"{name}: {stats['skipped']}"] += 1
    labelled = [r for r in records if r["status"] == "ok"]
    frames = [f for path in sorted((out / "data").glob("*/chunk-*.extxyz.gz")) for f in read_frames(path)]
    table: dict[str, dict[str, int]] = {name: dict.fromkeys(SPLITS, 0) for name in SOURCES}
    energies: dict[str, list[float]] = defaultdict(list)
    force_rms: dict[str, list[float]] = defaultdict(list)
    force_max: dict[str, list[float]] = defaultdict(list)
    by_molecule: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for f in frames:
        table[f.source][f.split] += 1
        by_molecule[f.mol_id].append((f.source, f.energy_kcal_mol))
        norms = np.linalg.norm(f.forces_kcal_mol_a, axis=1)
        force_rms[f.source].append(float(np.sqrt((f.forces_kcal_mol_a**2).mean())))
        force_max[f.source].append(float(norms.max()))
    for items in by_molecule.values():
        low = min(e for _, e in items)
        for source, e in items:
            energies[source].append(e - low)
    molecules_per_split = Counter(r["split"] for r in labelled)
    frames_per_split = Counter(f.split for f in frames)
    counts_consistent = all(per_source[name]["kept"] == sum(table[name].values()) for name in SOURCES)
    cpu_s = float(sum(r["cpu_s"] for r in records))
    return {
        "molecules": {"listed": len(records), "labelled": len(labelled), "skipped": len(records) - len(labelled),
                      "skip_reasons": dict(Counter(str(r["reason"]).split(":")[0] for r in records if r["status"] != "ok")),
                      "per_split": {s: molecules_per_split.get(s, 0) for s in SPLITS}},
        "frames": {"total": len(frames), "per_split": {s: frames_per_split.get(s, 0) for s in SPLITS},
                   "per_source_and_split": table, "counts_match_records": counts_consistent},
        "sources": {name: {k: v for k, v in sorted(c.items()) if k != "cpu_ms"} | {"cpu_s": c["cpu_ms"] / 1000}
                    for name, c in per_source.items()},
        "broken_structures": dict(broken_reasons),
        "skipped_sources": dict(skipped_sources),
        "failed_scf": int(sum(c["failed_scf"] for c in per_source.values())),
        "xtb_calls": int(sum(c["xtb_calls"] for c in per_source.values())),
        "relative_energy_kcal_mol": {name: _stats(energies[name]) for name in SOURCES},
        "force_rms_kcal_mol_a": {name: _stats(force_rms[name]) for name in SOURCES},
        "force_max_atom_kcal_mol_a": {name: _stats(force_max[name]) for name in SOURCES},
        "atoms_per_molecule": _stats([float(r["num_atoms"]) for r in labelled]),
        "cpu_s": {"total": cpu_s, "per_labelled_molecule": cpu_s / max(1, len(labelled))},
        "bytes": {"data": data_bytes, "per_frame": data_bytes / max(1, len(frames))},
    }


def _fmt(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "| - | - | - | - |"
    return f"| {stats['median']:.2f} | {stats['mean']:.2f} | {stats['p95']:.2f} | {stats['max']:.2f} |"


def render_data_card(card: dict[str, Any]) -> str:
    """Markdown of a card from :func:`build_data_card`."""
    mol, fr = card["molecules"], card["frames"]
    lines = [
        "# Data card: GFN2-xTB labelled conformers of SPICE training molecules",
        "",
        "Energies and forces: GFN2-xTB (tblite), charge and multiplicity from the SMILES. Format: gzip extended",
        "XYZ (`ase.io.read(path, index=':')`; `energy` eV, `forces` eV/A, `energy_kcal_mol` in the frame info);",
        "reader: `adjoint_sampling.labelling.extxyz.read_frames`. Splits by molecule (hash of the canonical SMILES).",
        "",
        f"- molecules: {mol['listed']} listed, {mol['labelled']} labelled, {mol['skipped']} skipped "
        f"{mol['skip_reasons'] or ''}",
        "- molecules per split: " + ", ".join(f"{s} {n}" for s, n in mol["per_split"].items()),
        f"- frames: {fr['total']} (" + ", ".join(f"{s} {n}" for s, n in fr["per_split"].items()) + ")",
        f"- GFN2-xTB calculations: {card['xtb_calls']}, failed SCF (skipped): {card['failed_scf']}",
        f"- broken structures dropped: {sum(card['broken_structures'].values())} {card['broken_structures'] or ''}",
        f"- CPU seconds: {card['cpu_s']['total']:.1f} ({card['cpu_s']['per_labelled_molecule']:.2f} per molecule)",
        f"- compressed data: {card['bytes']['data']} bytes ({card['bytes']['per_frame']:.0f} per frame)",
        "",
        "## Frames per source and split",
        "",
        "| source | " + " | ".join(SPLITS) + " | drawn | broken | duplicates | failed SCF | CPU s |",
        "|---|" + "---|" * (len(SPLITS) + 5),
    ]
    for name in SOURCES:
        s = card["sources"][name]
        lines.append(f"| {name} | " + " | ".join(str(fr["per_source_and_split"][name][sp]) for sp in SPLITS)
                     + f" | {s.get('drawn', 0)} | {s.get('broken', 0)} | {s.get('duplicates', 0)} "
                     f"| {s.get('failed_scf', 0)} | {s['cpu_s']:.1f} |")
    for title, key in (("Relative energy E - min E per molecule (kcal/mol)", "relative_energy_kcal_mol"),
                       ("RMS force component per frame (kcal/mol/A)", "force_rms_kcal_mol_a"),
                       ("Largest atomic force per frame (kcal/mol/A)", "force_max_atom_kcal_mol_a")):
        lines += ["", f"## {title}", "", "| source | median | mean | p95 | max |", "|---|---|---|---|---|"]
        lines += [f"| {name} {_fmt(card[key][name])}" for name in SOURCES]
    if card["skipped_sources"]:
        lines += ["", "## Sources skipped for some molecules", ""]
        lines += [f"- {reason}: {n}" for reason, n in sorted(card["skipped_sources"].items())]
    return "\n".join(lines) + "\n"


def write_data_card(out_dir: str | Path) -> dict[str, Any]:
    """Write ``DATA_CARD.md`` and ``data_card.json`` into ``out_dir``; returns the card."""
    out = Path(out_dir)
    card = build_data_card(out)
    atomic_write_text(out / "data_card.json", json.dumps(card, indent=1, sort_keys=True) + "\n")
    atomic_write_text(out / "DATA_CARD.md", render_data_card(card))
    return card
