"""The DW-4 Adjoint Matching check runs end to end on its committed biased sample (a few steps) and
writes what it claims: lambda = 1 - 1 / tau_base, the energy evaluations, before / after figures and
networks that load back."""

from __future__ import annotations

import json
import math

import torch

from adjoint_sampling.benchmarks.synthetic.adjoint_matching_dw4 import EGNN, HERE, main
from adjoint_sampling.models.egnn import EGNNController


def test_a_short_run_reports_and_saves_both_networks(tmp_path):
    biased = torch.load(HERE / "references" / "dw4_tau2.pt", weights_only=False)
    assert biased["tau"] == 2.0 and biased["samples"].shape == (2000, 4, 2)
    out = tmp_path / "report.json"
    argv = ["--flow-steps", "20", "--iterations", "4", "--grad-steps-per-batch", "2", "--batch-size", "8",
            "--times-per-iteration", "4",
            "--sde-steps", "8", "--eval-sde-steps", "8", "--num-samples", "40", "--model-dir", str(tmp_path / "m"),
            "--output", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["reward_scale"] == 0.5
    assert report["adjoint_matching"]["energy_evaluations"] == 2 * 8  # 4 steps, 2 on each batch of 8 paths
    for key in ("reference", "before", "after", "base_flow_vs_its_data"):
        assert all(math.isfinite(report[key][metric]) for metric in ("w2", "energy_w2", "mean_energy"))
    # the tau = 2 sample is hotter than the tau = 1 reference
    assert report["reference"]["mean_energy"] > -22.0
    saved = torch.load(tmp_path / "m" / "dw4_adjoint_matching.pt", weights_only=False)
    for name in ("velocity", "control"):
        EGNNController(**EGNN).load_state_dict(saved[name], strict=True)
