"""Multi-process training with torchrun (2 processes, gloo): runs, and kill + rerun resumes exactly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
from trainer_helpers import _cli_config, _wait_for_tag, assert_same_final_state, kill_process_tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(config, run_dir):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
            "-m", "adjoint_sampling.cli", "train", str(config), "--run-dir", str(run_dir), "--no-progress"]


def _run(cmd, timeout=400) -> subprocess.CompletedProcess:
    """Run in its own process group; on timeout kill the launcher AND its ranks."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_process_tree(proc)
        _, err = proc.communicate()
        # keep what the launcher and ranks printed: a hang is otherwise undiagnosable
        raise AssertionError(f"torchrun did not finish in {timeout} s; its stderr ends with:\n{err[-3000:]}") from exc
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


def test_torchrun_two_processes_kill_and_resume(tmp_path):
    config = _cli_config(tmp_path)
    ref = _run(_torchrun(config, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    tag = json.loads((tmp_path / "ref/train_state/latest.json").read_text())
    assert tag["world_size"] == 2
    shard0 = torch.load(tmp_path / "ref/train_state" / tag["tag"] / "rank0.pt", weights_only=False)
    shard1 = torch.load(tmp_path / "ref/train_state" / tag["tag"] / "rank1.pt", weights_only=False)
    assert shard0["buffer"]["energy"] != shard1["buffer"]["energy"]  # each rank has its own buffer / RNG
    shared = torch.load(tmp_path / "ref/train_state" / tag["tag"] / "shared.pt", weights_only=False)
    # energy evaluations are summed over both ranks: initial fill 32 + 12 refreshes of 16, per rank
    assert shared["counters"]["energy_evals"] == 2 * (32 + 12 * 16)
    assert shared["counters"]["grad_steps"] == 12 * 20

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_torchrun(config, run_dir), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_tag(run_dir, 5, proc, timeout=300)
    finally:
        kill_process_tree(proc)  # the launcher and both ranks
    assert json.loads((run_dir / "train_state/latest.json").read_text())["tag"] < "00000014"
    again = _run(_torchrun(config, run_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_final_state(tmp_path / "ref", run_dir, world_size=2)
