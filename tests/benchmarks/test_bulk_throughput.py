"""The bulk throughput benchmark runs the real CLI on a local Ray and reports what the manifest says."""

from __future__ import annotations

import json

import pytest
from adjoint_sampling.benchmarks.bulk_throughput import main, sample_library


def test_the_library_sample_is_a_seeded_subset_in_library_order(tmp_path):
    library = tmp_path / "lib.smi"
    library.write_text("".join(f"{'C' * (i + 1)}O\n" for i in range(20)))
    first, again = tmp_path / "a.smi", tmp_path / "b.smi"
    assert sample_library(library, 5, 3, first) == 5 and sample_library(library, 5, 3, again) == 5
    chosen = first.read_text().split()
    assert chosen == again.read_text().split() and len(set(chosen)) == 5
    assert chosen == sorted(chosen, key=len)  # library order: the i-th line has i + 1 carbons
    assert sample_library(library, 50, 0, first) == 20


def test_a_run_reports_rate_failures_by_reason_and_memory(tmp_path, capsys):
    library = tmp_path / "lib.smi"
    library.write_text("CCO\nCCCC\nC[Se]C\nc1ccccc1O\n")
    out = tmp_path / "report.json"
    argv = ["--library", str(library), "--molecules", "4", "--cores", "1", "-n", "2", "--model", "etkdg",
            "--batch-size", "2", "--out-dir", str(tmp_path / "runs"), "--output", str(out)]
    assert main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["molecules"] == 4 and run["ok"] == 3 and run["failures_by_reason"] == {"unsupported_element": 1}
    assert run["conformers"] == 6 and run["shards_resumed"] == 0
    assert run["molecules_per_s"] == pytest.approx(4 / run["wall_s"], rel=0.02)
    assert 0 < run["peak_rss_largest_process_mib"] <= run["peak_rss_tree_mib"]
    assert main(argv) == 0  # a rerun in the same folder resumes every shard
    assert json.loads(out.read_text())["runs"][0]["shards_resumed"] == 2
