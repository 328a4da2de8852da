"""Paired comparison of two methods of one benchmark run, molecule by molecule.

Coverage precision is computed over the conformers that pass the structure check, so a method that
drops many draws is judged on a selected subset. This module separates that effect from the
methods' quality: for one threshold it gives

- the means over the molecules both methods have records for, and how many molecules each wins;
- precision *over conformers drawn* (a dropped draw counts as a miss: ``COV-P x valid / drawn``);
- the same means on the molecules where both methods keep at least a given share of their draws
  (no selection there) and on the rest.

``adjoint-sampling bench conformers paired RECORDS --base A --candidate B`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adjoint_sampling.benchmarks.conformers.metrics import THRESHOLDS, threshold_index
from adjoint_sampling.benchmarks.conformers.records import num_passed_checks
from adjoint_sampling.core.errors import ConfigError

__all__ = ["MetricPair", "Stratum", "PairedComparison", "paired_comparison", "format_paired"]


@dataclass(frozen=True)
class MetricPair:
    """One metric of the two methods, in percent, over the same molecules.

    Attributes:
        base / candidate: means over molecules (percent).
        candidate_better / candidate_worse / equal: molecules counted by which is higher.
    """

    base: float
    candidate: float
    candidate_better: int
    candidate_worse: int
    equal: int


@dataclass(frozen=True)
class Stratum:
    """Molecules where both methods keep at least ``min_valid`` of their draws, or the rest."""

    label: str
    num_molecules: int
    cov_r: MetricPair | None
    cov_p: MetricPair | None


@dataclass
class PairedComparison:
    """The comparison of ``candidate`` against ``base`` at ``threshold`` angstrom."""

    base: str
    candidate: str
    threshold: float
    num_molecules: int
    valid_share_base: float
    valid_share_candidate: float
    cov_r: MetricPair
    cov_p: MetricPair
    cov_p_over_drawn: MetricPair
    strata: list[Stratum] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pair(base: Sequence[float], candidate: Sequence[float]) -> MetricPair | None:
    if not base:
        return None
    better = sum(c > b for b, c in zip(base, candidate))
    worse = sum(c < b for b, c in zip(base, candidate))
    return MetricPair(base=100.0 * sum(base) / len(base), candidate=100.0 * sum(candidate) / len(candidate),
                      candidate_better=better, candidate_worse=worse, equal=len(base) - better - worse)


def _by_molecule(records: Sequence[dict[str, Any]], method: str) -> dict[str, dict[str, Any]]:
    rows = {str(r["mol_id"]): r for r in records if r.get("method") == method and r.get("status") == "ok"}
    if not rows:
        known = sorted({str(r.get("method")) for r in records if r.get("method")})
        raise ConfigError(f"no successful records of method {method!r} (methods in the file: {', '.join(known)})")
    return rows


def _valid_share(record: dict[str, Any]) -> float:
    drawn = int(record.get("num_generated") or 0)
    return num_passed_checks(record) / drawn if drawn else 0.0


def _at(record: dict[str, Any], key: str, index: int, drawn: bool = False) -> float:
    value = record[key][index]
    value = 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return value * _valid_share(record) if drawn else value


def paired_comparison(
    records: Sequence[dict[str, Any]],
    base: str,
    candidate: str,
    threshold: float = 1.0,
    min_valid: Sequence[float] = (0.9,),
) -> PairedComparison:
    """Compare ``candidate`` with ``base`` on the molecules both have successful records for.

    Args:
        records: per-molecule records of one run (``read_records``).
        base / candidate: method names as in the records (e.g. ``flow+mmff``).
        threshold: angstrom, one of the sweep's values.
        min_valid: shares in (0, 1]; each adds the strata "both keep >= share" and "the rest".

    Raises:
        ConfigError: a method without records, no molecule in common, or a threshold off the sweep.
    """
    for share in min_valid:
        if not 0.0 < share <= 1.0:
            raise ConfigError(f"min_valid share {share} must be in (0, 1]")
    a, b = _by_molecule(records, base), _by_molecule(records, candidate)
    mols = sorted(set(a) & set(b))
    if not mols:
        raise ConfigError(f"methods {base!r} and {candidate!r} have no molecule in common")
    try:
        index = threshold_index(np.asarray(a[mols[0]].get("thresholds", THRESHOLDS), dtype=np.float64), threshold)
    except ValueError:
        raise ConfigError(f"threshold {threshold} A is not on the records' sweep (0 .. 2.5 A, step 0.125)") from None

    def pair(key: str, subset: Sequence[str], drawn: bool = False) -> MetricPair | None:
        return _pair([_at(a[m], key, index, drawn) for m in subset], [_at(b[m], key, index, drawn) for m in subset])

    def pooled_valid(rows: dict[str, dict[str, Any]]) -> float:
        drawn = sum(int(rows[m].get("num_generated") or 0) for m in mols)
        return sum(num_passed_checks(rows[m]) for m in mols) / drawn if drawn else 0.0

    kept_by_both = {m: min(_valid_share(a[m]), _valid_share(b[m])) for m in mols}
    strata = []
    for share in min_valid:
        high = [m for m in mols if kept_by_both[m] >= share]
        rest = [m for m in mols if kept_by_both[m] < share]
        for label, subset in ((f"both keep >= {share:.0%}", high), (f"the rest (of {share:.0%})", rest)):
            strata.append(Stratum(label, len(subset), pair("cov_r", subset), pair("cov_p", subset)))
    cov_r, cov_p, cov_p_drawn = pair("cov_r", mols), pair("cov_p", mols), pair("cov_p", mols, drawn=True)
    assert cov_r is not None and cov_p is not None and cov_p_drawn is not None  # mols is not empty
    return PairedComparison(base=base, candidate=candidate, threshold=float(threshold), num_molecules=len(mols),
                            valid_share_base=pooled_valid(a), valid_share_candidate=pooled_valid(b),
                            cov_r=cov_r, cov_p=cov_p, cov_p_over_drawn=cov_p_drawn, strata=strata)


def format_paired(result: PairedComparison) -> str:
    """A Markdown table of the comparison (what ``bench conformers paired`` prints)."""

    def cells(p: MetricPair | None) -> str:
        if p is None:
            return "- | -"
        return f"{p.base:.1f} / {p.candidate:.1f} | {p.candidate_better} / {p.candidate_worse} / {p.equal}"

    lines = [
        f"{result.candidate} against {result.base} at {result.threshold:g} A, {result.num_molecules} molecules "
        f"(draws kept: {result.valid_share_base:.1%} / {result.valid_share_candidate:.1%})",
        "",
        "| molecules | n | COV-R base / candidate (%) | candidate better / worse / equal | "
        "COV-P base / candidate (%) | candidate better / worse / equal |",
        "|---|---|---|---|---|---|",
        f"| all | {result.num_molecules} | {cells(result.cov_r)} | {cells(result.cov_p)} |",
        f"| all, COV-P over conformers drawn | {result.num_molecules} | - | - | {cells(result.cov_p_over_drawn)} |",
    ]
    lines += [f"| {s.label} | {s.num_molecules} | {cells(s.cov_r)} | {cells(s.cov_p)} |" for s in result.strata]
    return "\n".join(lines)
