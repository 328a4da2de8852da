"""The GNN potential training job through the CLI: a SIGKILL mid-run and a rerun give the same weights
as an uninterrupted run; torchrun with two processes; init_from; bad configs fail in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.energy.gnn import load_gnn_checkpoint
from adjoint_sampling.labelling.fit_job import load_energy_fit_job, run_energy_fit_job

FIT = {
    "hparams": {"num_scalars": 8, "num_vectors": 4, "radial_hidden": 8, "cutoff": 4.0},
    "steps": 40, "molecules_per_step": 1, "conformers_per_molecule": 4, "learning_rate": 1e-2,
    "ema_decay": 0.9, "checkpoint_every": 5, "log_every": 1,
}


def _config(tmp_path, data_file, **fit) -> str:
    path = tmp_path / "energy.yaml"
    path.write_text(yaml.safe_dump({"data": [str(data_file)], "fit": {**FIT, **fit}, "num_threads": 1}))
    return str(path)


def _cli(config, run_dir, *extra) -> list[str]:
    return [sys.executable, "-m", "adjoint_sampling.cli", "train", config, "--run-dir", str(run_dir), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


def _weights(path) -> dict[str, torch.Tensor]:
    return load_gnn_checkpoint(path).state_dict


def test_kill_and_rerun_gives_the_weights_of_an_uninterrupted_run(tmp_path, data_file):
    config = _config(tmp_path, data_file)
    ref = subprocess.run(_cli(config, tmp_path / "ref"), env=_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    assert "GNN potential written to" in ref.stdout

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cli(config, run_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "step-0000010.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its second checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "gnn.pt").exists()
    again = subprocess.run(_cli(config, run_dir), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the GNN fit" in again.stderr

    expected, got = _weights(tmp_path / "ref" / "gnn.pt"), _weights(run_dir / "gnn.pt")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    ref_metrics = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    got_metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in got_metrics] == list(range(1, 41))
    strip = lambda lines: [{k: v for k, v in json.loads(r).items() if k != "elapsed_s"} for r in lines]  # noqa: E731
    assert strip(got_metrics) == strip(ref_metrics)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_average_gradients_and_keep_one_generator_per_rank(tmp_path, data_file):
    config = _config(tmp_path, data_file, steps=10)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "adjoint_sampling.cli", "train", config, "--run-dir", str(tmp_path / "run")]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)
    assert len(state["generators"]) == 2 and not torch.equal(*state["generators"])
    single = tmp_path / "single"
    run_energy_fit_job(config, single, device="cpu")
    # two ranks draw other conformers than one process does, so the averaged gradients differ
    two, one = _weights(tmp_path / "run" / "gnn.pt"), _weights(single / "gnn.pt")
    assert any(not torch.equal(two[k], one[k]) for k in two if two[k].is_floating_point())
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 10


def test_init_from_starts_from_the_given_weights(tmp_path, data_file):
    config = _config(tmp_path, data_file, steps=5)
    first = run_energy_fit_job(config, tmp_path / "first", device="cpu")
    follow = _config(tmp_path, data_file, steps=1, learning_rate=1e-9, ema_decay=0.0, init_from=str(first))
    second = run_energy_fit_job(follow, tmp_path / "second", device="cpu")
    a, b = _weights(first), _weights(second)
    assert torch.equal(a["atom_reference"], b["atom_reference"])
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    other = _config(tmp_path, data_file, hparams={**FIT["hparams"], "num_scalars": 4}, init_from=str(first))
    with pytest.raises(ConfigError, match="other hyper-parameters"):
        run_energy_fit_job(other, tmp_path / "third", device="cpu")


def test_bad_configs_fail_with_one_line(tmp_path, data_file):
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"data": ["nowhere/*.extxyz.gz"], "fit": FIT}))
    with pytest.raises(ConfigError, match="matches no file"):
        load_energy_fit_job(missing).data_files()
    proc = subprocess.run(_cli(str(missing), tmp_path / "r"), env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "matches no file" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": [str(data_file)], "fit": {**FIT, "hparams": {"architecture": "schnet"}}}))
    proc = subprocess.run(_cli(str(bad), tmp_path / "r"), env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "schnet" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(_cli(_config(tmp_path, data_file), tmp_path / "r", "--device", "cuda:7"), env=_env(),
                          capture_output=True, text=True, timeout=120)
    if not torch.cuda.is_available():
        assert proc.returncode != 0 and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "energy").glob("*.yaml")), ids=lambda p: p.name)
def test_every_energy_config_parses_and_finds_its_data(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    job = load_energy_fit_job(path)
    assert job.fit.steps >= 1 and job.run_dir
    assert len(job.data_files()) >= 3  # the committed chunks of the three splits
    if job.fit.init_from:
        assert (REPO_ROOT / job.fit.init_from).is_file()
