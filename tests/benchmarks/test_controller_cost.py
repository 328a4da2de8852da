"""Controller cost benchmark: both EGNN edge maps timed on the same weights, their outputs equal."""

from __future__ import annotations

import json

from trainer_helpers import REPO

from adjoint_sampling.benchmarks.synthetic.controller_cost import main


def test_times_both_edge_maps_of_the_same_controller(tmp_path, capsys):
    out = tmp_path / "cost" / "dw4.json"
    assert main([str(REPO / "configs" / "dw4.yaml"), "--batch", "3", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result == json.loads(capsys.readouterr().out)
    assert result["batch_size"] == 3 and result["rows"] == 12 and result["controller"] == "egnn"
    for row in ("split", "concatenated"):
        assert result[row]["gradient_step_seconds"] > result[row]["forward_seconds"] > 0
    assert result["max_output_difference"] < 1e-4


def test_bad_arguments_get_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: config file not found: {tmp_path / 'missing.yaml'}"
    assert main([str(REPO / "configs" / "dw4.yaml"), "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().err
