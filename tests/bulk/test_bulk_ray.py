"""Bulk generation on a real two-node Ray cluster on this machine: a run killed half-way (SIGKILL of
the driver) and rerun gives every molecule exactly once in the manifest, shards whose SDF holds exactly
the conformers the manifest names, and no half-written shard; bad molecules get ``failed`` rows.

The cluster (``ray start --head`` + ``ray start --address``, one CPU each) runs with its own temporary
folder and is stopped with ``ray stop --force`` at the end, whatever happens.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from rdkit import Chem

from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.core.paths import SHARED_DATA_DIR

pytest.importorskip("ray")

RAY = Path(sys.executable).with_name("ray")
SPICE = SHARED_DATA_DIR / "spice_train.txt"
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(RAY), *args], env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A two-node local Ray cluster (head + one worker node, one CPU each); its address."""
    if not SPICE.is_file():
        pytest.skip(f"{SPICE} is missing")
    temp_dir = tempfile.mkdtemp(prefix="asray")  # short: Ray's socket paths must stay under 108 characters
    address = f"127.0.0.1:{_free_port()}"
    try:
        head = _ray(
            "start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=1", "--disable-usage-stats",
            "--include-dashboard=false", f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1",
        )
        assert head.returncode == 0, head.stdout + head.stderr
        node = _ray(
            "start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"
        )
        assert node.returncode == 0, node.stdout + node.stderr
        yield address
    finally:
        _ray("stop", "--force")
        shutil.rmtree(temp_dir, ignore_errors=True)


def _library(path: Path, count: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The first ``count`` SPICE training SMILES (plus ``extra``) as a gzip SMILES file; the SMILES."""
    smiles = [line.split()[1] for line in SPICE.read_text().splitlines()[1:count + 1]] + list(extra)
    with gzip.open(path, "wt") as fh:
        fh.write("# a test library\n" + "".join(f"{s}\tmol{i}\n" for i, s in enumerate(smiles)))
    return smiles


def _command(library: Path, out: Path, address: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "adjoint_sampling.cli", "sample", str(library), "-n", "3", "--model", "etkdg",
        "-o", str(out), "--engine", "ray", "--address", address, "--no-progress", *extra,
    ]


def _check_shards(out: Path, smiles: list[str]) -> list[dict]:
    """Every molecule once in the manifest; every shard's SDF holds exactly the conformers its rows name."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(len(smiles)))
    assert [row["smiles"] for row in rows] == smiles
    by_shard: dict[int, list[dict]] = {}
    for row in rows:
        by_shard.setdefault(row["shard"], []).append(row)
    assert sorted(p.name for p in out.glob("shard-*.sdf.gz")) == [f"shard-{k:05d}.sdf.gz" for k in sorted(by_shard)]
    for shard, shard_rows in by_shard.items():
        assert json.loads((out / f"shard-{shard:05d}.manifest.jsonl").read_text().splitlines()[0])["shard"] == shard
        data = gzip.decompress((out / f"shard-{shard:05d}.sdf.gz").read_bytes())  # a torn gzip raises
        records = [m for m in Chem.ForwardSDMolSupplier(io.BytesIO(data), removeHs=False)]
        assert all(m is not None for m in records)
        counted = Counter(m.GetIntProp("library_index") for m in records)
        expected = {row["index"]: row["conformers"] for row in shard_rows if row["conformers"]}
        assert counted == expected
        for m in records:
            assert m.GetProp("smiles") == smiles[m.GetIntProp("library_index")]
    assert not list(out.glob(".*")), "temporary files left behind"
    return rows


def test_a_killed_run_resumes_and_lists_every_molecule_once(ray_address, tmp_path):
    library, out = tmp_path / "library.smi.gz", tmp_path / "out"
    smiles = _library(library, 50)
    command = _command(library, out, ray_address, "--batch-size", "2", "--relax", "mmff")

    first = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("shard-*.manifest.jsonl")):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "no shard within 90 s"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate(timeout=30)
    finished = sorted(out.glob("shard-*.manifest.jsonl"))
    assert 1 <= len(finished) < 25, "the run was not killed half-way"
    assert not (out / "manifest.jsonl").exists()
    for sdf in out.glob("shard-*.sdf.gz"):  # whatever the kill hit: complete files only
        gzip.decompress(sdf.read_bytes())

    second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    assert second.returncode in (0, 1), second.stderr
    skipped = re.search(r"\((\d+) already done\)", second.stderr)
    assert skipped and int(skipped.group(1)) == len(finished), second.stderr
    rows = _check_shards(out, smiles)
    assert sum(row["status"] == "ok" for row in rows) >= 45
    for row in rows:
        assert row["status"] in ("ok", "failed")
        assert (row["reason"] is None) == (row["status"] == "ok")
        assert row["seconds"] >= 0


def test_bad_molecules_get_failed_rows_with_their_reason(ray_address, tmp_path):
    library, out = tmp_path / "library.smi.gz", tmp_path / "out"
    smiles = _library(library, 4, extra=("C[C](C)C", "C1CC(", "CCO"))
    result = subprocess.run(_command(library, out, ray_address, "--batch-size", "3"),
                            env=ENV, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr  # some molecules failed
    rows = _check_shards(out, smiles)
    failed = {row["smiles"]: row for row in rows if row["status"] == "failed"}
    assert {s: r["reason"] for s, r in failed.items()} == {"C[C](C)C": "radical", "C1CC(": "invalid_smiles"}
    assert all(r["reason"] in InvalidMoleculeError.REASONS and r["detail"] and r["conformers"] == 0
               for r in failed.values())
    assert all(row["conformers"] == 3 for row in rows if row["status"] == "ok")
