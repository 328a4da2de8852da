"""Per-method summaries of per-molecule records: means and medians over molecules, pooled time and
validity (see :mod:`adjoint_sampling.benchmarks.conformers.report` for how they are written)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adjoint_sampling.benchmarks.conformers.metrics import THRESHOLDS, threshold_index
from adjoint_sampling.benchmarks.conformers.records import num_passed_checks

__all__ = ["MethodSummary", "summarize"]


@dataclass
class MethodSummary:
    """One method averaged over molecules (coverage as fractions in [0, 1], RMSD in angstrom).

    Attributes:
        thresholds: ``(T,)`` threshold sweep.
        cov_r_mean / cov_r_median / cov_p_mean / cov_p_median: ``(T,)`` over molecules.
        amr_r_mean / ... : floats over molecules.
        valid_share: draws passing the connectivity/stereo check (returned or left out valid:
            :func:`~adjoint_sampling.benchmarks.conformers.records.num_passed_checks`) / conformers drawn.
        wall_s_per_conformer / cpu_s_per_conformer: total generation time / conformers drawn.
        cpu_s_per_requested: total CPU time / conformers asked for (differs where a generator draws
            more than it returns, e.g. a relaxed selection).
    """

    method: str
    num_molecules: int
    num_failed: int
    thresholds: np.ndarray
    cov_r_mean: np.ndarray
    cov_r_median: np.ndarray
    cov_p_mean: np.ndarray
    cov_p_median: np.ndarray
    amr_r_mean: float
    amr_r_median: float
    amr_p_mean: float
    amr_p_median: float
    num_references: int
    num_generated: int
    num_valid: int
    valid_share: float
    wall_s_per_conformer: float
    cpu_s_per_conformer: float
    num_requested: int
    cpu_s_per_requested: float
    rmsd_s: float
    dropped: dict[str, int]

    def at(self, curve: np.ndarray, threshold: float) -> float:
        return float(curve[threshold_index(self.thresholds, threshold)])


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _nan_stat(fn, rows: np.ndarray) -> Any:
    """``fn`` (``np.nanmean`` / ``np.nanmedian``) over molecules (axis 0); nan where nothing is finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = fn(rows, axis=0)
    return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)


def summarize(records: Sequence[dict[str, Any]]) -> list[MethodSummary]:
    """Per-method summaries of the ``ok`` and ``failed`` records, in order of first appearance."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("status") in ("ok", "failed") and record.get("method"):
            by_method.setdefault(record["method"], []).append(record)
    summaries = []
    for method, rows in by_method.items():
        thresholds = _floats(rows[0].get("thresholds", list(THRESHOLDS)))
        cov_r = np.stack([_floats(r["cov_r"]) for r in rows])
        cov_p = np.stack([_floats(r["cov_p"]) for r in rows])
        amr_r = _floats([r.get("amr_r") for r in rows])
        amr_p = _floats([r.get("amr_p") for r in rows])
        ok_rows = [r for r in rows if r["status"] == "ok"]
        generated = sum(int(r["num_generated"]) for r in ok_rows)
        valid = sum(int(r["num_valid"]) for r in ok_rows)
        passed = sum(num_passed_checks(r) for r in ok_rows)
        requested = sum(int(r.get("num_requested") or r["num_generated"]) for r in ok_rows)
        cpu = sum(r["cpu_s"] for r in ok_rows)
        dropped: Counter[str] = Counter()
        for r in ok_rows:
            dropped.update(r.get("dropped", {}))
        summaries.append(
            MethodSummary(
                method=method,
                num_molecules=len(rows),
                num_failed=len(rows) - len(ok_rows),
                thresholds=thresholds,
                cov_r_mean=_nan_stat(np.nanmean, cov_r),
                cov_r_median=_nan_stat(np.nanmedian, cov_r),
                cov_p_mean=_nan_stat(np.nanmean, cov_p),
                cov_p_median=_nan_stat(np.nanmedian, cov_p),
                amr_r_mean=_nan_stat(np.nanmean, amr_r),
                amr_r_median=_nan_stat(np.nanmedian, amr_r),
                amr_p_mean=_nan_stat(np.nanmean, amr_p),
                amr_p_median=_nan_stat(np.nanmedian, amr_p),
                num_references=sum(int(r["num_references"]) for r in rows),
                num_generated=generated,
                num_valid=valid,
                valid_share=passed / generated if generated else float("nan"),
                wall_s_per_conformer=sum(r["wall_s"] for r in ok_rows) / generated if generated else float("nan"),
                cpu_s_per_conformer=cpu / generated if generated else float("nan"),
                num_requested=requested,
                cpu_s_per_requested=cpu / requested if requested else float("nan"),
                rmsd_s=float(sum(r.get("rmsd_s", 0.0) for r in ok_rows)),
                dropped=dict(dropped),
            )
        )
    return summaries
