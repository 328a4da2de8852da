"""Shared pieces of the trainer tests: a Gaussian target problem, tiny trainers and CLI runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
import yaml
from torch import nn

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.method.posterior_target import ParticleSymmetry
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.base import TerminalEvaluation
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, TorusSpace
from adjoint_sampling.training.trainer import Trainer
from adjoint_sampling.training.trainer_config import TrainerConfig

REPO = REPO_ROOT


class GaussianProblem:
    """E(x) = ||x - m||^2 / (2 s^2) for n particles on the zero-CoM subspace (tau = 1)."""

    tau = 1.0

    def __init__(self, mean: torch.Tensor, std: float) -> None:
        self.mean, self.std = mean, std
        self.n, self.dim = mean.shape

    def draw_keys(self, n, generator):
        return [0] * n

    def make_batch(self, keys):
        b = len(keys)
        return SystemBatch(list(keys), CenteredEuclideanSpace(torch.arange(b).repeat_interleave(self.n), b, self.dim))

    def evaluate(self, batch, x1):
        diff = x1.double() - self.mean.repeat(batch.space.num_systems, 1)
        energy = 0.5 * diff.pow(2).sum(-1).view(-1, self.n).sum(-1) / self.std**2
        return TerminalEvaluation(energy, diff / self.std**2, torch.ones(batch.space.num_systems, dtype=torch.bool))

    def warm_start_samples(self, keys, generator):
        return None

    def symmetry(self):
        """The mean m breaks every symmetry: the posterior target may average over samples only."""
        return ParticleSymmetry(self.n, self.dim, permutations=False, reflection=False, planar_rotations=False)


class TorusGaussianProblem(GaussianProblem):
    """The same energy on torsion-like rows (a torus: no closed-form base density)."""

    def make_batch(self, keys):
        b = len(keys)
        return SystemBatch(list(keys), TorusSpace(torch.arange(b).repeat_interleave(self.n), b))


class AffineControl(nn.Module):
    """f(t, x) = alpha(t) x + beta(t)[row]: the family containing the optimal control of a
    Gaussian target with a memoryless base (log h(t, x) is quadratic and isotropic in x)."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.n, self.dim = n, dim
        self.net = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1 + n * dim))
        self.hparams = {"n": n, "dim": dim}

    def forward(self, t, x, batch):
        out = self.net(t.view(-1, 1))
        alpha = out[:, :1][batch.space.batch]
        beta = out[:, 1:].reshape(-1, self.n, self.dim).reshape(-1, self.dim)
        return alpha * x + beta


def _tiny_config(**overrides) -> TrainerConfig:
    base = dict(iterations=5, samples_per_refresh=16, grad_steps_per_refresh=3, batch_size=16, buffer_capacity=40,
                initial_buffer_fill=32, sample_batch_size=16, sde_steps=8, lr=1e-3, adjoint_clip=10.0,
                checkpoint_interval=1, seed=3)
    base.update(overrides)
    return TrainerConfig(**base)


def _tiny_trainer(run_dir, init_seed=0, **overrides):
    torch.manual_seed(init_seed)
    controller = build_controller("egnn", {"hidden": 16, "num_layers": 1, "length_scale": 4.0})
    return Trainer(SyntheticProblem.from_name("dw4"), controller, GeometricSchedule(0.01, 3.0), _tiny_config(**overrides),
                   run_dir, progress=False)


def _cli_config(tmp_path) -> Path:
    cfg = {
        "problem": {"kind": "synthetic", "system": "dw4"},
        "controller": {"name": "egnn", "hparams": {"hidden": 16, "num_layers": 1, "length_scale": 4.0}},
        "schedule": {"kind": "geometric", "sigma_min": 0.01, "sigma_max": 3.0},
        "trainer": dataclasses.asdict(_tiny_config(iterations=12, grad_steps_per_refresh=20, batch_size=64)),
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train_cmd(config, run_dir):
    return [sys.executable, "-m", "adjoint_sampling.cli", "train", str(config), "--run-dir", str(run_dir), "--no-progress"]


def _wait_for_tag(run_dir: Path, min_tag: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    latest = run_dir / "train_state" / "latest.json"
    end = time.time() + timeout
    while time.time() < end:
        if latest.exists():
            try:
                if int(json.loads(latest.read_text())["tag"]) >= min_tag:
                    return
            except (ValueError, KeyError):
                pass
        assert proc.poll() is None, "training finished before it could be killed"
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _final_shared(run_dir: Path) -> dict:
    tag = json.loads((run_dir / "train_state" / "latest.json").read_text())["tag"]
    return torch.load(run_dir / "train_state" / tag / "shared.pt", weights_only=False)


def assert_same_final_state(a: Path, b: Path, world_size: int = 1) -> None:
    sa, sb = _final_shared(a), _final_shared(b)
    for k in sa["controller"]:
        assert torch.equal(sa["controller"][k], sb["controller"][k]), k
    for k in ("iteration", "grad_steps", "energy_evals", "failed_evals"):
        assert sa["counters"][k] == sb["counters"][k]
    for r in range(world_size):
        ra = torch.load(a / "train_state" / json.loads((a / "train_state/latest.json").read_text())["tag"] / f"rank{r}.pt",
                        weights_only=False)
        rb = torch.load(b / "train_state" / json.loads((b / "train_state/latest.json").read_text())["tag"] / f"rank{r}.pt",
                        weights_only=False)
        assert torch.equal(ra["generator"], rb["generator"])
        assert ra["buffer"]["energy"] == rb["buffer"]["energy"]
    assert _metrics(a) == _metrics(b)


def _metrics(run_dir):
    lines = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    for rec in lines:
        rec.pop("train_seconds", None)
    return lines


def kill_process_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a launcher (torchrun) and every descendant, as a crash or ``kill -9`` of the job would,
    then reap it. torchrun starts each rank as the leader of its own session, out of reach of a
    process-group kill, and a surviving rank would keep the launcher's pipes open."""
    try:
        tree = [psutil.Process(proc.pid)]
        tree += tree[0].children(recursive=True)  # before the kill: orphans would be re-parented
    except psutil.NoSuchProcess:
        tree = []
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=60)
