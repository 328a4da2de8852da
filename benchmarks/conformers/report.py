"""Aggregate per-molecule records into per-method summaries: Markdown table, JSON and plot.

Averages are over molecules (mean and median). A method that failed on a molecule counts there
with zero coverage recall; its precision and AMR are undefined there and left out (the number
of failures is in the table). Time per conformer and the share of valid conformers are pooled
over all molecules (total time / total conformers drawn).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from adjoint_sampling.benchmarks.conformers.metrics import HEADLINE_THRESHOLDS
from adjoint_sampling.benchmarks.conformers.plot import plot_coverage
from adjoint_sampling.benchmarks.conformers.summary import MethodSummary, summarize

__all__ = ["write_markdown", "write_report", "write_summary_json"]

SUMMARY_MARKDOWN = "summary.md"
SUMMARY_JSON = "summary.json"
COVERAGE_PLOT = "coverage.png"


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f}"


def _ang(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def write_markdown(
    summaries: Sequence[MethodSummary],
    records: Sequence[dict[str, Any]],
    path: str | Path,
    command: str | None = None,
) -> Path:
    """Write the summary tables (headline, full sweep, skipped molecules, unmatched references)."""
    lines = ["# Conformer benchmark summary", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        "Coverage in %, AMR in angstrom, each as mean / median over molecules. COV-R: share of",
        "references with a generated conformer within the threshold (strict <); COV-P: the reverse.",
        "Valid: draws keeping connectivity and stereochemistry / conformers drawn. Time: per",
        "conformer drawn, generation only (wall clock and CPU of the worker process); CPU s/asked: per",
        "conformer asked for (more than per conformer drawn where a method draws more than it returns).",
        "",
    ]
    head = ["method", "molecules (failed)"]
    head += [f"COV-R {t:g}" for t in HEADLINE_THRESHOLDS] + [f"COV-P {t:g}" for t in HEADLINE_THRESHOLDS]
    head += ["AMR-R", "AMR-P", "valid %", "wall s/conf", "CPU s/conf", "CPU s/asked"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        row = [s.method, f"{s.num_molecules} ({s.num_failed})"]
        row += [f"{_pct(s.at(s.cov_r_mean, t))} / {_pct(s.at(s.cov_r_median, t))}" for t in HEADLINE_THRESHOLDS]
        row += [f"{_pct(s.at(s.cov_p_mean, t))} / {_pct(s.at(s.cov_p_median, t))}" for t in HEADLINE_THRESHOLDS]
        row += [f"{_ang(s.amr_r_mean)} / {_ang(s.amr_r_median)}", f"{_ang(s.amr_p_mean)} / {_ang(s.amr_p_median)}"]
        row += [_pct(s.valid_share), f"{s.wall_s_per_conformer:.4f}", f"{s.cpu_s_per_conformer:.4f}",
                f"{s.cpu_s_per_requested:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if summaries:
        lines += ["## Mean coverage over the threshold sweep (%)", ""]
        head = ["threshold (A)"] + [f"{s.method} COV-R" for s in summaries] + [f"{s.method} COV-P" for s in summaries]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for j, t in enumerate(summaries[0].thresholds):
            row = [f"{t:.3f}"] + [_pct(s.cov_r_mean[j]) for s in summaries] + [_pct(s.cov_p_mean[j]) for s in summaries]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += ["## Conformers", "", "| method | references | drawn | valid | dropped by reason | RMSD matrix s |", "|---|---|---|---|---|---|"]
        for s in summaries:
            dropped = ", ".join(f"{k}: {v}" for k, v in sorted(s.dropped.items())) or "none"
            lines.append(f"| {s.method} | {s.num_references} | {s.num_generated} | {s.num_valid} | {dropped} | {s.rmsd_s:.1f} |")
        lines.append("")
    skipped = [r for r in records if r.get("status") == "skipped"]
    if skipped:
        lines += [f"## Skipped molecules ({len(skipped)})", "", "| molecule | reason | detail |", "|---|---|---|"]
        for r in sorted(skipped, key=lambda r: r["mol_id"]):
            lines.append(f"| {r['mol_id']} | {r['reason']} | {r['detail']} |")
        lines.append("")
    unmatched: dict[str, dict[str, int]] = {}
    for r in records:
        if r.get("reference_unmatched"):
            unmatched[r["mol_id"]] = r["reference_unmatched"]
    if unmatched:
        lines += ["## Reference conformers that could not be matched to the SMILES", "", "| molecule | unmatched by reason |", "|---|---|"]
        for mol_id, counts in sorted(unmatched.items()):
            lines.append(f"| {mol_id} | {', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))} |")
        lines.append("")
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["## Failures", "", "| molecule | method | reason | detail |", "|---|---|---|---|"]
        for r in sorted(failed, key=lambda r: (r["mol_id"], r["method"])):
            lines.append(f"| {r['mol_id']} | {r['method']} | {r['reason']} | {r['detail']} |")
        lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def write_summary_json(summaries: Sequence[MethodSummary], path: str | Path) -> Path:
    """Write the summaries as JSON (arrays as lists, nan as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [clean(v) for v in value.tolist()]
        if isinstance(value, float):
            return value if np.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([clean(asdict(s)) for s in summaries], indent=1))
    return path


def write_report(records: Sequence[dict[str, Any]], out_dir: str | Path, command: str | None = None) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.json`` and ``coverage.png`` for ``records`` into ``out_dir``."""

    out_dir = Path(out_dir)
    summaries = summarize(records)
    paths = {
        "markdown": write_markdown(summaries, records, out_dir / SUMMARY_MARKDOWN, command),
        "json": write_summary_json(summaries, out_dir / SUMMARY_JSON),
    }
    if summaries:
        paths["plot"] = plot_coverage(summaries, out_dir / COVERAGE_PLOT)
    return paths
