"""The engine-neutral parts of bulk generation, without Ray: the lazy library reader, sharded output
resumed after a lost shard, refused option changes, and the CLI's Ray-only flags and missing-Ray error."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from adjoint_sampling.bulk.library import LibraryEntry, iter_batches, iter_library
from adjoint_sampling.bulk.runner import BulkJob, LocalExecutor, run_bulk
from adjoint_sampling.cli import main
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.generation.types import GenerationRequest

SMILES = ["CCO", "CC(=O)O", "c1ccccc1", "CCN", "C[C](C)C", "CCCC"]


@pytest.fixture
def library(tmp_path):
    path = tmp_path / "lib.smi.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("Rotatable_Bonds\tSMILES\tRot_Hash\n# comment\n\n")
        fh.write("".join(f"0\t{s}\tid{i}\n" for i, s in enumerate(SMILES)))
    return path


def test_the_library_is_read_lazily_with_spice_columns_and_gzip(library):
    entries = iter_library(library)
    assert next(entries) == LibraryEntry(0, "CCO")
    batches = list(iter_batches(iter_library(library), 4))
    assert [b.shard for b in batches] == [0, 1]
    assert [e.smiles for b in batches for e in b.entries] == SMILES


def test_a_missing_or_wrongly_named_library_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        list(iter_library(tmp_path / "none.smi"))
    (tmp_path / "x.sdf").write_text("")
    with pytest.raises(ConfigError, match="expected"):
        list(iter_library(tmp_path / "x.sdf"))


def _job(library, out, n: int = 2) -> BulkJob:
    return BulkJob(library, out, "etkdg", GenerationRequest(smiles="", num_conformers=n), batch_size=2)


def test_local_run_writes_shards_and_a_rerun_redoes_only_lost_shards(library, tmp_path):
    out = tmp_path / "out"
    executor = LocalExecutor("etkdg", GenerationRequest(smiles="", num_conformers=2))
    summary = run_bulk(_job(library, out), executor, progress=False)
    assert (summary.molecules, summary.shards, summary.failed) == (6, 3, 1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert rows[4]["status"] == "failed" and rows[4]["reason"] == "radical"
    (out / "shard-00001.manifest.jsonl").unlink()  # as if killed between the SDF and the manifest
    (out / ".shard-00001.sdf.gz.tmp123").write_bytes(b"torn")
    again = run_bulk(_job(library, out), executor, progress=False)
    assert (again.shards_skipped, again.molecules) == (2, 6)
    rerun = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [{**r, "seconds": 0} for r in rerun] == [{**r, "seconds": 0} for r in rows]
    assert rerun[:2] == rows[:2] and rerun[4:] == rows[4:]  # finished shards are kept, not redone
    assert not list(out.glob(".*"))


def test_a_rerun_with_other_options_is_refused(library, tmp_path):
    out = tmp_path / "out"
    run_bulk(_job(library, out), LocalExecutor("etkdg", GenerationRequest(smiles="")), progress=False)
    with pytest.raises(ConfigError, match="other options"):
        run_bulk(_job(library, out, n=3), LocalExecutor("etkdg", GenerationRequest(smiles="")), progress=False)


def test_engine_ray_without_ray_is_a_one_line_error_naming_the_extra(library, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["sample", str(library), "-o", str(tmp_path / "out"), "--engine", "ray", "--model", "etkdg"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "adjoint-sampling[ray]" in err


def test_ray_flags_need_the_ray_engine(capsys):
    assert main(["sample", "CCO", "--model", "etkdg", "--address", "127.0.0.1:6379"]) == 2
    assert "--address needs --engine ray" in capsys.readouterr().err


def test_the_local_engine_does_not_import_ray(tmp_path):
    code = (
        "import sys; from adjoint_sampling.cli import main\n"
        f"rc = main(['sample', 'CCO', '-n', '2', '--model', 'etkdg', '-o', {str(tmp_path / 'o.sdf')!r}])\n"
        "assert rc == 0 and 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
