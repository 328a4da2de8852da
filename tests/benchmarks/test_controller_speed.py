"""Controller sizing benchmark: one row per size (the shipped controller first), bad sizes named."""

from __future__ import annotations

import json

from adjoint_sampling.benchmarks.controller_speed import main
from adjoint_sampling.models.checkpoint import load_model_checkpoint

from adjoint_sampling.core.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "models" / "shipped" / "default.pt"


def test_rows_for_the_shipped_controller_and_each_size(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--smiles", "CCCCOCC", "-n", "4", "--size", '{"num_layers": 2, "heavy_atoms_only": true}',
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    shipped = load_model_checkpoint(SHIPPED).controller_hparams
    assert len(rows) == 2
    assert rows[0]["hparams"]["num_layers"] == shipped["num_layers"] and rows[1]["hparams"]["num_layers"] == 2
    assert rows[1]["hparams"]["heavy_atoms_only"] is True
    assert rows[1]["parameters"] > rows[0]["parameters"]
    assert all(r["cpu_s_per_conformer"] > 0 for r in rows)
    assert capsys.readouterr().out.count("CPU ms / conformer") == 2


def test_bad_sizes_give_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--size", "{not json", "--out", str(out)]) == 2
    assert "not a JSON object" in capsys.readouterr().err
    assert main(["--size", '{"no_such_option": 1}', "--smiles", "CCCCOCC", "-n", "4", "--out", str(out)]) == 2
    assert "no_such_option" in capsys.readouterr().err and not out.exists()
