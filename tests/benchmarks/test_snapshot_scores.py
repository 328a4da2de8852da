"""Reference-free snapshot scores: the trained DW-4 model beats the base process, and the tool's output."""

from __future__ import annotations

import json
import math

import torch
from trainer_helpers import REPO

from adjoint_sampling.benchmarks.synthetic.snapshot_scores import closest_pair_quantiles, main, snapshot_score
from adjoint_sampling.models.checkpoint import load_model_checkpoint, save_model_checkpoint
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.synthetic import SyntheticProblem

DW4 = REPO / "benchmarks" / "synthetic" / "models" / "dw4.pt"


def _base_process_checkpoint(tmp_path):
    """The committed DW-4 model with a fresh controller: zero output, i.e. the uncontrolled base process."""
    ckpt = load_model_checkpoint(DW4)
    ckpt.state_dict = build_controller(ckpt.controller_name, ckpt.controller_hparams).state_dict()
    path = tmp_path / "base.pt"
    save_model_checkpoint(path, ckpt)
    with torch.no_grad():
        batch = SyntheticProblem.from_name("dw4").make_batch([0] * 3)
        out = ckpt.build_controller()(torch.rand(3), torch.randn(12, 2), batch)
    assert float(out.abs().max()) == 0.0
    return path


def test_trained_model_scores_higher_than_the_base_process(tmp_path):
    trained = snapshot_score(DW4, 300, seed=1)
    base = snapshot_score(_base_process_checkpoint(tmp_path), 300, seed=1)
    # mean log weight = log Z - KL(P_u || P*): the trained control is closer to the target's path measure
    assert trained["mean_log_weight"] > base["mean_log_weight"] + 1.0
    assert trained["effective_fraction"] > base["effective_fraction"]
    assert trained["energy_mean"] < base["energy_mean"]
    # the uncontrolled base process spreads the particles far out, on the double wells' steep quartic walls
    assert 0.8 < trained["configurational_temperature"] < 1.5 < 10.0 < base["configurational_temperature"]
    assert 0.0 < base["effective_fraction"] <= trained["effective_fraction"] <= 1.0
    assert trained["iteration"] == load_model_checkpoint(DW4).counters["iteration"]
    # tail statistics: the base process's far-flung particles reach the quartic walls and each other (its
    # highest energy is in the tens of thousands); DW-4's trained samples keep their particles apart
    # (reference closest pair 1.73)
    assert trained["energy_max"] < 0.0 < 1000.0 < base["energy_max"]
    assert base["closest_pair_min"] < 1.0
    assert 1.0 < trained["closest_pair_min"] <= trained["closest_pair_q01"] <= trained["closest_pair_q05"] \
        <= trained["closest_pair_median"] < 5.0
    again = snapshot_score(DW4, 300, seed=1)  # the same seed gives the same samples and scores
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in trained.items() if k != "seconds"}


def test_command_writes_one_line_per_checkpoint_and_names_the_lowest_energy_one(tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    base = _base_process_checkpoint(tmp_path)
    args = [str(out), str(base), str(DW4), str(DW4), "--num-samples", "50", "--seed", "2", "--sde-steps", "40"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == [str(base), str(DW4), str(DW4)]
    assert all(r["sde_steps"] == 40 and r["num_samples"] == 50 and r["seed"] == 2 for r in rows)
    assert rows[1]["mean_log_weight"] == rows[2]["mean_log_weight"] and math.isfinite(rows[1]["mean_log_weight"])
    assert rows[1]["energy_mean"] < rows[0]["energy_mean"]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"lowest mean energy: {DW4} (")


def test_command_names_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    missing = tmp_path / "missing.pt"
    assert main([str(out), str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: checkpoint not found: {missing}"
    molecular = REPO / "models" / "shipped" / "default.pt"
    assert main([str(out), str(molecular), "--num-samples", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {molecular}: ") and "not a synthetic-system model" in err and "\n" not in err
    assert main([str(out), str(DW4), "--num-samples", "1"]) == 2
    assert "--num-samples" in capsys.readouterr().err
    assert not out.exists()


def test_closest_pair_quantiles_of_known_configurations():
    # 101 three-particle samples on a line; sample k has its closest pair at distance 1 + k / 100
    gaps = 1.0 + torch.arange(101, dtype=torch.float64) / 100
    x = torch.zeros(101, 3, 2, dtype=torch.float64)
    x[:, 1, 0] = gaps
    x[:, 2, 0] = gaps + 5.0  # the other pairs are farther apart
    q = closest_pair_quantiles(x[torch.randperm(101)])
    expected = {"closest_pair_min": 1.0, "closest_pair_q01": 1.01, "closest_pair_q05": 1.05, "closest_pair_median": 1.5}
    assert q.keys() == expected.keys()
    assert all(abs(q[k] - v) < 1e-12 for k, v in expected.items()), q
