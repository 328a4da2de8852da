"""Coverage-versus-threshold plot: mean COV-R and COV-P over molecules, one curve per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from adjoint_sampling.benchmarks.conformers.metrics import HEADLINE_THRESHOLDS  # noqa: E402
from adjoint_sampling.benchmarks.conformers.summary import MethodSummary  # noqa: E402

__all__ = ["plot_coverage"]


def plot_coverage(summaries: Sequence[MethodSummary], path: str | Path) -> Path:
    """Save a two-panel PNG (recall, precision; % vs threshold in angstrom) to ``path``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, attribute, title in ((axes[0], "cov_r_mean", "coverage recall"), (axes[1], "cov_p_mean", "coverage precision")):
        for summary in summaries:
            axis.plot(
                summary.thresholds, 100 * getattr(summary, attribute), marker="o", markersize=3,
                label=f"{summary.method} (n={summary.num_molecules})",
            )
        for threshold in HEADLINE_THRESHOLDS:
            axis.axvline(threshold, color="grey", linestyle=":", linewidth=0.8)
        axis.set_title(f"mean {title}")
        axis.set_xlabel("RMSD threshold (angstrom, heavy atoms)")
        axis.set_xlim(0, 2.5)
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("coverage (%)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
