"""The mixture check's base is right: its exact velocity, integrated on the memoryless SDE, draws the
two modes half and half at their means (what the fine-tune is then measured against)."""

from __future__ import annotations

import pytest

from adjoint_sampling.benchmarks.synthetic.adjoint_matching_mixture import (
    TILTED_MEANS,
    TILTED_RIGHT_SHARE,
    adjoint_check,
    run,
    run_exact,
)
from adjoint_sampling.training.adjoint_matching import AdjointMatchingSettings


def test_the_base_flow_draws_both_modes_evenly_at_their_means():
    base = run(AdjointMatchingSettings(iterations=0, sde_steps=100, grid="start_refined", seed=1))
    assert base["right_share"] == pytest.approx(0.5, abs=0.015)  # 20,000 draws: 4 standard errors is 0.014
    assert base["left_mean"] == pytest.approx(-2.0, abs=0.02) and base["right_mean"] == pytest.approx(2.0, abs=0.02)
    assert TILTED_RIGHT_SHARE == pytest.approx(0.982, abs=1e-3)


def test_the_exact_optimal_control_reaches_the_tilted_share_and_means():
    """The closed-form control, on the same SDE and grid the fine-tune uses, draws the tilted mixture:
    what the fine-tune misses is not the sampler's or the schedule's."""
    exact = run_exact(AdjointMatchingSettings(iterations=0, sde_steps=100, grid="start_refined", seed=1))
    assert exact["right_share"] == pytest.approx(TILTED_RIGHT_SHARE, abs=0.006)  # 4 standard errors: 0.004
    assert exact["left_mean"] == pytest.approx(TILTED_MEANS[0], abs=0.05)
    assert exact["right_mean"] == pytest.approx(TILTED_MEANS[1], abs=0.02)


def test_the_lean_adjoint_is_exact_after_the_mode_decision_and_heavy_tailed_before():
    """On base paths: at t = 0.81 every path has chosen its mode and -a averages to the exact
    d E[X_1 | X_t] / dx; at t = 0.09 the typical path's -a is far below that mean (the heavy tail)."""
    rows = {round(r["t"], 2): r for r in adjoint_check(
        AdjointMatchingSettings(sde_steps=100, grid="start_refined", seed=1), num_paths=2000, times=(0.09, 0.81))}
    late, early = rows[0.81], rows[0.09]
    assert late["lean_adjoint_mean"] == pytest.approx(late["exact_mean"], rel=0.03)
    assert early["lean_adjoint_median"] < 0.2 * early["exact_mean"]
