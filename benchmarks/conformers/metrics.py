"""Coverage and AMR metrics of a generated ensemble against a reference ensemble.

Given the RMSD matrix ``D`` ``(K, L)`` (generated x reference, angstrom):
    COV-R(d) = share of references l with ``min_k D[k, l] < d``   (recall)
    COV-P(d) = share of generated k with ``min_l D[k, l] < d``    (precision)
    AMR-R    = mean over references of ``min_k D[k, l]``
    AMR-P    = mean over generated conformers of ``min_l D[k, l]``
(strict ``<`` as in GeoMol / torsional diffusion). With no generated conformer, COV-R is 0 at
every threshold and COV-P, AMR-R and AMR-P are undefined (``nan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HEADLINE_THRESHOLDS",
    "THRESHOLDS",
    "CoverageMetrics",
    "coverage_metrics",
    "threshold_index",
]

THRESHOLDS: np.ndarray = np.round(np.arange(0.0, 2.5 + 1e-9, 0.125), 6)
"""The threshold sweep 0 .. 2.5 angstrom, step 0.125 (21 values)."""

HEADLINE_THRESHOLDS: tuple[float, ...] = (0.75, 1.0, 1.25)


@dataclass(frozen=True)
class CoverageMetrics:
    """Metrics of one generated ensemble against one reference ensemble.

    Attributes:
        thresholds: ``(T,)`` angstrom.
        coverage_recall: ``(T,)`` share of references covered, in [0, 1].
        coverage_precision: ``(T,)`` share of generated conformers that are near a reference.
        amr_recall: mean over references of the minimum RMSD to a generated conformer, angstrom.
        amr_precision: mean over generated conformers of the minimum RMSD to a reference, angstrom.
        num_generated: K.
        num_references: L.
    """

    thresholds: np.ndarray
    coverage_recall: np.ndarray
    coverage_precision: np.ndarray
    amr_recall: float
    amr_precision: float
    num_generated: int
    num_references: int

    def recall_at(self, threshold: float) -> float:
        return float(self.coverage_recall[threshold_index(self.thresholds, threshold)])

    def precision_at(self, threshold: float) -> float:
        return float(self.coverage_precision[threshold_index(self.thresholds, threshold)])


def threshold_index(thresholds: np.ndarray, threshold: float) -> int:
    """Index of ``threshold`` in ``thresholds`` (ValueError if it is not one of them)."""
    hits = np.flatnonzero(np.isclose(np.asarray(thresholds, dtype=np.float64), threshold, atol=1e-9))
    if hits.size == 0:
        raise ValueError(f"threshold {threshold} is not in the sweep {list(np.asarray(thresholds))}")
    return int(hits[0])


def coverage_metrics(rmsd: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> CoverageMetrics:
    """Coverage recall/precision over ``thresholds`` and AMR recall/precision of ``rmsd`` ``(K, L)``."""
    rmsd = np.asarray(rmsd, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if rmsd.ndim != 2:
        raise ValueError(f"rmsd must be a (K, L) matrix, got shape {rmsd.shape}")
    num_generated, num_references = rmsd.shape
    if num_references == 0:
        raise ValueError("no reference conformers: coverage is undefined")
    if num_generated == 0:
        nan_curve = np.full(thresholds.shape, np.nan)
        return CoverageMetrics(
            thresholds, np.zeros(thresholds.shape), nan_curve, float("nan"), float("nan"), 0, num_references
        )
    best_for_reference = rmsd.min(axis=0)  # (L,)
    best_for_generated = rmsd.min(axis=1)  # (K,)
    recall = (best_for_reference[None, :] < thresholds[:, None]).mean(axis=1)
    precision = (best_for_generated[None, :] < thresholds[:, None]).mean(axis=1)
    return CoverageMetrics(
        thresholds=thresholds,
        coverage_recall=recall,
        coverage_precision=precision,
        amr_recall=float(best_for_reference.mean()),
        amr_precision=float(best_for_generated.mean()),
        num_generated=num_generated,
        num_references=num_references,
    )
