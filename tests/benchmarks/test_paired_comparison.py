"""`bench conformers paired`: per-molecule wins, precision over draws, strata by the share of draws kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adjoint_sampling.benchmarks.conformers.metrics import THRESHOLDS, threshold_index
from adjoint_sampling.benchmarks.conformers.paired import paired_comparison
from adjoint_sampling.benchmarks.conformers.records import append_records
from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.errors import ConfigError

AT_1 = threshold_index(THRESHOLDS, 1.0)


def _record(mol_id: str, method: str, cov_r: float, cov_p: float, drawn: int, valid: int) -> dict:
    curve = lambda v: [v if i == AT_1 else 0.5 for i in range(len(THRESHOLDS))]  # noqa: E731
    return {"mol_id": mol_id, "method": method, "status": "ok", "cov_r": curve(cov_r), "cov_p": curve(cov_p),
            "num_generated": drawn, "num_valid": valid, "thresholds": [float(t) for t in THRESHOLDS]}


def _records() -> list[dict]:
    # m1: both keep everything, the candidate less precise; m2: the base keeps half its draws
    # (precise on those), the candidate keeps all; m3: only the base has a record.
    return [
        _record("m1", "base", 0.6, 0.8, 10, 10), _record("m1", "cand", 0.8, 0.6, 10, 10),
        _record("m2", "base", 0.4, 0.6, 10, 5), _record("m2", "cand", 0.4, 0.5, 10, 10),
        _record("m3", "base", 0.1, 0.1, 10, 10),
        {"mol_id": "m4", "method": None, "status": "skipped"},
    ]


def test_means_wins_and_precision_over_draws() -> None:
    result = paired_comparison(_records(), "base", "cand", 1.0, (0.9,))
    assert result.num_molecules == 2  # m3 has no candidate record
    assert result.cov_r.base == pytest.approx(50.0) and result.cov_r.candidate == pytest.approx(60.0)
    assert (result.cov_r.candidate_better, result.cov_r.candidate_worse, result.cov_r.equal) == (1, 0, 1)
    assert result.cov_p.base == pytest.approx(70.0) and result.cov_p.candidate == pytest.approx(55.0)
    # over draws: the base's m2 precision 0.6 counts on 5 of 10 draws -> 0.3
    assert result.cov_p_over_drawn.base == pytest.approx(100 * (0.8 + 0.3) / 2)
    assert result.cov_p_over_drawn.candidate == pytest.approx(55.0)
    assert result.valid_share_base == pytest.approx(15 / 20) and result.valid_share_candidate == pytest.approx(1.0)
    high, rest = result.strata
    assert (high.num_molecules, rest.num_molecules) == (1, 1)  # m1 | m2
    assert high.cov_p is not None and high.cov_p.base == pytest.approx(80.0) and high.cov_p.candidate == pytest.approx(60.0)
    assert rest.cov_r is not None and rest.cov_r.equal == 1


def test_valid_draws_a_selection_left_out_count_as_kept() -> None:
    """A relaxed selection that draws 20 and returns 10 valid conformers keeps all its valid draws."""
    records = _records()
    records[3].update(num_generated=20, dropped={"not_selected": 10})
    result = paired_comparison(records, "base", "cand", 1.0, ())
    assert result.valid_share_candidate == pytest.approx(1.0)
    assert result.cov_p_over_drawn.candidate == pytest.approx(55.0)


def test_other_threshold_reads_its_own_column() -> None:
    result = paired_comparison(_records(), "base", "cand", 0.75, ())
    assert result.cov_p.base == pytest.approx(50.0) and result.strata == []


@pytest.mark.parametrize("kwargs, message", [
    ({"candidate": "nope"}, "no successful records of method 'nope'"),
    ({"threshold": 1.1}, "not on the records' sweep"),
    ({"min_valid": (1.5,)}, "must be in (0, 1]"),
])
def test_bad_requests_are_named(kwargs: dict, message: str) -> None:
    args = {"base": "base", "candidate": "cand", "threshold": 1.0, "min_valid": (0.9,), **kwargs}
    with pytest.raises(ConfigError, match=re.escape(message)):
        paired_comparison(_records(), **args)


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append_records(tmp_path / "per_molecule.jsonl", _records())
    out = tmp_path / "paired.json"
    assert main(["bench", "conformers", "paired", str(tmp_path), "--base", "base", "--candidate", "cand",
                 "--min-valid", "0.9,1.0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| all | 2 | 50.0 / 60.0 | 1 / 0 / 1 | 70.0 / 55.0 | 0 / 2 / 0 |" in printed
    saved = json.loads(out.read_text())
    assert saved["cov_p_over_drawn"]["base"] == pytest.approx(55.0) and len(saved["strata"]) == 4
    assert main(["bench", "conformers", "paired", str(tmp_path / "missing"), "--base", "a", "--candidate", "b"]) == 2
    assert "no records file" in capsys.readouterr().err
