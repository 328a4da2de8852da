"""Coverage / AMR metrics on hand-made RMSD matrices, and their aggregation over molecules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adjoint_sampling.benchmarks.conformers.metrics import (
    HEADLINE_THRESHOLDS,
    THRESHOLDS,
    coverage_metrics,
    threshold_index,
)
from adjoint_sampling.benchmarks.conformers.summary import summarize

# generated x reference
MATRIX = np.array(
    [
        [0.5, 2.0, 1.1],
        [3.0, 0.9, 1.3],
    ]
)


def test_threshold_sweep() -> None:
    assert len(THRESHOLDS) == 21
    assert THRESHOLDS[0] == 0.0 and THRESHOLDS[-1] == 2.5
    np.testing.assert_allclose(np.diff(THRESHOLDS), 0.125)
    assert all(threshold_index(THRESHOLDS, t) >= 0 for t in HEADLINE_THRESHOLDS)
    with pytest.raises(ValueError, match="not in the sweep"):
        threshold_index(THRESHOLDS, 0.8)


def test_hand_made_matrix() -> None:
    m = coverage_metrics(MATRIX)
    # best generated conformer per reference: 0.5, 0.9, 1.1; best reference per generated: 0.5, 0.9
    assert m.recall_at(0.5) == 0.0  # strict <
    assert m.recall_at(0.625) == pytest.approx(1 / 3)
    assert m.recall_at(0.75) == pytest.approx(1 / 3)
    assert m.recall_at(1.0) == pytest.approx(2 / 3)
    assert m.recall_at(1.25) == pytest.approx(1.0)
    assert m.precision_at(0.75) == pytest.approx(0.5)
    assert m.precision_at(1.0) == pytest.approx(1.0)
    assert m.amr_recall == pytest.approx((0.5 + 0.9 + 1.1) / 3)
    assert m.amr_precision == pytest.approx((0.5 + 0.9) / 2)
    assert (m.num_generated, m.num_references) == (2, 3)
    assert (np.diff(m.coverage_recall) >= 0).all() and (np.diff(m.coverage_precision) >= 0).all()


def test_transposed_matrix_swaps_recall_and_precision() -> None:
    a, b = coverage_metrics(MATRIX), coverage_metrics(MATRIX.T)
    np.testing.assert_allclose(a.coverage_recall, b.coverage_precision)
    assert a.amr_recall == pytest.approx(b.amr_precision)


def test_no_generated_conformer() -> None:
    m = coverage_metrics(np.zeros((0, 4)))
    assert (m.coverage_recall == 0).all()
    assert np.isnan(m.coverage_precision).all() and math.isnan(m.amr_recall) and math.isnan(m.amr_precision)
    with pytest.raises(ValueError, match="no reference"):
        coverage_metrics(np.zeros((3, 0)))


def _record(mol_id: str, matrix: np.ndarray, *, status: str = "ok", wall: float = 1.0, generated: int = 2) -> dict:
    m = coverage_metrics(matrix)
    return {
        "mol_id": mol_id, "method": "etkdg", "status": status, "num_references": matrix.shape[1],
        "thresholds": THRESHOLDS.tolist(), "cov_r": m.coverage_recall.tolist(),
        "cov_p": [None if math.isnan(v) else v for v in m.coverage_precision],
        "amr_r": None if math.isnan(m.amr_recall) else m.amr_recall,
        "amr_p": None if math.isnan(m.amr_precision) else m.amr_precision,
        "num_generated": generated, "num_valid": generated - 1, "wall_s": wall, "cpu_s": wall / 2, "dropped": {"clash": 1},
    }


def test_summary_over_molecules() -> None:
    records = [
        _record("a", MATRIX),
        _record("b", np.array([[0.1, 0.2], [0.3, 3.0]]), wall=3.0, generated=2),
        _record("c", np.zeros((0, 3)), status="failed"),
        {"mol_id": "d", "method": None, "status": "skipped", "reason": "missing_reference", "detail": "x"},
    ]
    (s,) = summarize(records)
    assert s.method == "etkdg" and s.num_molecules == 3 and s.num_failed == 1
    # recall at 1.0: a 2/3, b 1, c 0 (failed counts as zero recall)
    assert s.at(s.cov_r_mean, 1.0) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert s.at(s.cov_r_median, 1.0) == pytest.approx(2 / 3)
    # precision and AMR are undefined for the failed molecule and left out
    assert s.at(s.cov_p_mean, 1.0) == pytest.approx((1.0 + 1.0) / 2)
    assert s.amr_r_mean == pytest.approx(((0.5 + 0.9 + 1.1) / 3 + (0.1 + 0.2) / 2) / 2)
    assert s.wall_s_per_conformer == pytest.approx(4.0 / 4)
    assert s.cpu_s_per_conformer == pytest.approx(2.0 / 4)
    assert s.valid_share == pytest.approx(2 / 4)
    assert s.dropped == {"clash": 2}
    assert s.num_requested == 4 and s.cpu_s_per_requested == pytest.approx(2.0 / 4)  # no num_requested: drawn


def test_summary_of_a_method_that_draws_more_than_it_returns() -> None:
    """A relaxed selection draws 2n, returns n: valid draws left out count as valid, and the CPU time
    per conformer asked for is twice that per conformer drawn."""
    record = _record("a", MATRIX, wall=4.0, generated=8)
    record.update(num_requested=3, num_valid=3, dropped={"clash": 1, "not_selected": 4})
    (s,) = summarize([record])
    assert s.valid_share == pytest.approx(7 / 8) and s.num_valid == 3
    assert s.cpu_s_per_conformer == pytest.approx(2.0 / 8) and s.cpu_s_per_requested == pytest.approx(2.0 / 3)
