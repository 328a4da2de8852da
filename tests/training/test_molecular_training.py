"""Molecular training jobs: a run stopped (or killed) and started again continues where it was,
in one process and under torchrun with 2 processes (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from molecular_helpers import tiny_job
from trainer_helpers import kill_process_tree

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job

REPO = REPO_ROOT


def _iterations(run_dir: Path) -> list[int]:
    text = (run_dir / "metrics.jsonl").read_text()
    assert "\x00" not in text, "metrics.jsonl was extended with NUL bytes on resume (metrics_bytes summed over ranks)"
    lines = text.splitlines()
    return [rec["iteration"] for rec in map(json.loads, lines) if "iteration" in rec]


@pytest.mark.parametrize("mode", ["torsional", "cartesian"])
def test_stopped_run_resumes_and_finishes(tmp_path, mode):
    cfg = job_config_from_dict(tiny_job(mode, iterations=3))
    first = run_training_job(cfg, tmp_path, stop_after_iterations=1, progress=False)
    assert first.iteration == 1
    done = run_training_job(cfg, tmp_path, progress=False)
    assert done.iteration == 3
    assert _iterations(tmp_path) == [1, 2, 3]
    # initial fill + 3 refreshes, one energy call per sample
    assert done.energy_evals == cfg.trainer.initial_buffer_fill + 3 * cfg.trainer.samples_per_refresh
    assert done.grad_steps == cfg.trainer.warm_start_steps + 3 * cfg.trainer.grad_steps_per_refresh
    sampler = Sampler.from_checkpoint(tmp_path / "model.pt")
    assert sampler.mode == mode and sampler.checkpoint.counters["iteration"] == 3


def _torchrun(config: Path, run_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "adjoint_sampling.cli", "train", str(config), "--run-dir", str(run_dir), "--no-progress"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_torchrun_two_processes_killed_and_resumed(tmp_path):
    iterations = 30
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_job("torsional", iterations=iterations)))
    run_dir = tmp_path / "run"
    proc = _torchrun(config, run_dir, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "metrics.jsonl").exists() and _iterations(run_dir) and (run_dir / "train_state" / "latest.json").exists():
                break
            time.sleep(0.05)
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_process_tree(proc)  # no clean shutdown
    killed_at = len(_iterations(run_dir))
    assert 0 < killed_at < iterations
    assert "done:" not in (tmp_path / "first.log").read_text()  # the workers died with torchrun
    latest = json.loads((run_dir / "train_state" / "latest.json").read_text())
    assert latest["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "train_state" / latest["tag"]).iterdir()) == ["rank0.pt", "rank1.pt", "shared.pt"]

    proc = _torchrun(config, run_dir, tmp_path / "second.log")
    try:
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            kill_process_tree(proc)
    log = (tmp_path / "second.log").read_text()
    assert rc == 0, log[-3000:]
    assert "resumed from" in log
    assert _iterations(run_dir) == list(range(1, iterations + 1))  # no iteration lost or repeated
    counters = Sampler.from_checkpoint(run_dir / "model.pt").checkpoint.counters
    trainer = tiny_job("torsional")["trainer"]
    assert counters["iteration"] == iterations
    assert counters["energy_evals"] == 2 * (trainer["initial_buffer_fill"] + iterations * trainer["samples_per_refresh"])
