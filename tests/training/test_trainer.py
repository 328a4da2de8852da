"""Trainer: learning a Gaussian target, exact kill-and-resume, checkpoints and job configs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess

import pytest
import torch
import yaml
from torch import nn
from trainer_helpers import (
    REPO,
    AffineControl,
    GaussianProblem,
    TorusGaussianProblem,
    _cli_config,
    _metrics,
    _tiny_config,
    _tiny_trainer,
    _train_cmd,
    _wait_for_tag,
    assert_same_final_state,
)

from adjoint_sampling.core.errors import CheckpointError, ConfigError, TrainingError
from adjoint_sampling.models.checkpoint import ModelCheckpoint, load_model_checkpoint, save_model_checkpoint
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.sde.integrate import sample_terminal
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.training.config import job_config_from_dict, load_job_config
from adjoint_sampling.training.jobs import build_problem, run_training_job
from adjoint_sampling.training.optim import optimizer_step
from adjoint_sampling.training.trainer import Trainer
from adjoint_sampling.training.trainer_config import TrainerConfig


@pytest.mark.parametrize("ram_target,importance_fraction,iterations",
                         [("sample", 0.0, 40), ("batch_posterior", 0.0, 40), ("sample", 0.5, 100),
                          ("batch_posterior", 0.5, 100)])
def test_short_training_reaches_gaussian_target(tmp_path, ram_target, importance_fraction, iterations):
    """Target mean m (centred) and per-coordinate variance s^2 (n-1)/n on the zero-CoM subspace.
    Tolerances: |mean error| < 0.08 per coordinate, variance within 20% (4,000 samples); with
    either RAM target (the paper's, or its posterior mean over groups of 32 samples), and with
    half of every batch drawn by importance weight (100 iterations: the weights of the untrained
    control's samples are degenerate, 1% effective sample size, which slows the start)."""
    torch.manual_seed(0)
    mean = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
    problem = GaussianProblem(mean, std=0.4)
    controller = AffineControl(3, 2)
    sched = GeometricSchedule(0.01, 1.5)
    cfg = TrainerConfig(iterations=iterations, samples_per_refresh=64, grad_steps_per_refresh=25, batch_size=128,
                        buffer_capacity=2000, initial_buffer_fill=256, sde_steps=30, lr=3e-3, grad_clip=None,
                        checkpoint_interval=iterations, seed=0, ram_target=ram_target, posterior_group_size=32,
                        importance_fraction=importance_fraction)
    trainer = Trainer(problem, controller, sched, cfg, tmp_path, progress=False)
    counters = trainer.run()
    assert counters.grad_steps == 25 * iterations and counters.energy_evals == 256 + iterations * 64
    batch = problem.make_batch([0] * 4000)
    x1 = sample_terminal(controller, batch, sched, trainer.grid, torch.Generator().manual_seed(5)).double()
    x1 = x1.view(4000, 3, 2)
    target_var = 0.4**2 * 2 / 3
    assert torch.allclose(x1.mean(0), mean, atol=0.08), x1.mean(0)
    assert float(x1.var(0).mean()) == pytest.approx(target_var, rel=0.2)
    # an untrained control is far from it (the test can fail)
    untrained = sample_terminal(AffineControl(3, 2), batch, sched, trainer.grid, torch.Generator().manual_seed(5))
    assert not torch.allclose(untrained.double().view(4000, 3, 2).mean(0), mean, atol=0.08)


def _assert_same_state(a: Trainer, b: Trainer):
    for (ka, va), (kb, vb) in zip(a.controller.state_dict().items(), b.controller.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[k][name], sb[k][name])
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    ba, bb = a.buffer.save_state(), b.buffer.save_state()
    assert ba["keys"] == bb["keys"] and ba["energy"] == bb["energy"] and ba["rows"] == bb["rows"]
    assert ba["log_weight"] == bb["log_weight"]
    assert torch.equal(ba["x1"], bb["x1"]) and torch.equal(ba["adjoint"], bb["adjoint"])
    ca, cb = dataclasses.asdict(a.counters), dataclasses.asdict(b.counters)
    for volatile in ("train_seconds", "checkpoint_index", "metrics_bytes"):
        ca.pop(volatile), cb.pop(volatile)
    assert ca == cb


@pytest.mark.parametrize("importance_fraction", [0.0, 0.5])
def test_stop_and_resume_equals_uninterrupted_run(tmp_path, importance_fraction):
    full = _tiny_trainer(tmp_path / "full", importance_fraction=importance_fraction)
    full.run()
    assert full.counters.iteration == 5 and full.counters.grad_steps == 15
    assert full.counters.energy_evals == 32 + 5 * 16
    assert len(full.buffer) == 40

    assert (full.buffer.log_weights() != 0).all() == (importance_fraction > 0)
    first = _tiny_trainer(tmp_path / "split", importance_fraction=importance_fraction)
    first.run(stop_after_iterations=2)
    assert first.counters.iteration == 2
    # a new process: fresh objects, different random init; everything must come from the checkpoint
    second = _tiny_trainer(tmp_path / "split", init_seed=123, importance_fraction=importance_fraction)
    second.run()
    _assert_same_state(full, second)
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "split")
    # the model checkpoint rebuilds the controller without the config and matches
    ckpt = load_model_checkpoint(tmp_path / "split" / "model.pt")
    assert ckpt.problem["system"] == "dw4" and ckpt.counters["grad_steps"] == 15
    rebuilt = ckpt.build_controller()
    for k, v in rebuilt.state_dict().items():
        assert torch.equal(v, full.controller.state_dict()[k])


def test_optimizer_step_drops_a_non_finite_gradient_and_changes_nothing():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3)
    assert optimizer_step(model, opt, model(x).pow(2).mean(), 1.0, ema, 0.5) is not None
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in opt.state_dict()["state"][0].items()}
    ema_before = {k: v.clone() for k, v in ema.items()}
    for bad_loss in (lambda: model(x).pow(2).mean() * float("nan"), lambda: model(x).sum() * float("inf")):
        for clip in (1.0, None):
            assert optimizer_step(model, opt, bad_loss(), clip, ema, 0.5) is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]) and torch.equal(ema[k], ema_before[k])
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(v, moments[k])
    # a finite step still moves the weights
    loss = optimizer_step(model, opt, model(x).pow(2).mean(), None, ema, 0.5)
    assert loss is not None and not torch.equal(model.weight, weights["weight"])


def test_non_finite_steps_are_skipped_and_a_diverged_run_stops_with_a_clear_error(tmp_path, monkeypatch):
    import adjoint_sampling.training.trainer as trainer_module

    real_loss, calls = trainer_module.ram_loss, {"n": 0}

    def every_third_nan(*args):
        calls["n"] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls["n"] % 3 == 0 else loss

    monkeypatch.setattr(trainer_module, "ram_loss", every_third_nan)
    t = _tiny_trainer(tmp_path / "some", iterations=4)
    counters = t.run()
    assert counters.iteration == 4 and counters.grad_steps == 12 and counters.skipped_steps == 4
    assert _metrics(tmp_path / "some")[-1]["skipped_steps"] == 4
    assert all(torch.isfinite(v).all() for v in t.controller.state_dict().values())

    monkeypatch.setattr(trainer_module, "ram_loss", lambda *args: real_loss(*args) * float("nan"))
    t = _tiny_trainer(tmp_path / "all")
    with pytest.raises(TrainingError, match="every gradient step of iteration 1 had a non-finite gradient"):
        t.run()
    # the last checkpoint (after the initial fill) is intact and resumes once the loss is sane again
    monkeypatch.setattr(trainer_module, "ram_loss", real_loss)
    resumed = _tiny_trainer(tmp_path / "all")
    assert resumed.run().iteration == 5 and resumed.counters.skipped_steps == 0


def test_resume_with_other_world_size_or_corrupt_state_is_refused(tmp_path):
    t = _tiny_trainer(tmp_path)
    t.run(stop_after_iterations=1)
    latest = tmp_path / "train_state" / "latest.json"
    latest.write_text(json.dumps({"tag": json.loads(latest.read_text())["tag"], "world_size": 2}))
    with pytest.raises(CheckpointError, match="2 processes"):
        _tiny_trainer(tmp_path).run()
    latest.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        _tiny_trainer(tmp_path).run()


def test_model_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model_checkpoint(tmp_path / "junk.pt")
    torch.save({"format_version": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="lacks fields"):
        load_model_checkpoint(tmp_path / "partial.pt")


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        job_config_from_dict({"trainer": {"bogus": 1}})
    with pytest.raises(ConfigError, match="config.trainer.iterations: expected an integer"):
        job_config_from_dict({"trainer": {"iterations": "many"}})
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        build_problem({"kind": "nope"})
    with pytest.raises(ConfigError, match="unknown key 'atoms'"):
        build_problem({"kind": "synthetic", "system": "dw4", "atoms": 3})
    with pytest.raises(ConfigError, match="unknown synthetic system 'lj7'"):
        build_problem({"kind": "synthetic", "system": "lj7"})
    with pytest.raises(ConfigError, match="unknown controller"):
        run_training_job(job_config_from_dict({"controller": {"name": "mlp"}}), tmp_path / "r")
    with pytest.raises(ConfigError, match="loss_time_noise_fraction must be in"):
        _tiny_config(loss_time_noise_fraction=1.5)
    with pytest.raises(ConfigError, match="importance_fraction must be in"):
        _tiny_config(importance_fraction=1.5)
    with pytest.raises(ConfigError, match="loss_time_window_fraction must be in"):
        _tiny_config(loss_time_window=[0.2, 0.5], loss_time_window_fraction=-0.1)
    for window in (None, [0.5, 0.2], [0.1], [0.0, 1.5]):
        with pytest.raises(ConfigError, match="loss_time_window must be"):
            _tiny_config(loss_time_window=window, loss_time_window_fraction=0.5)
    torus = TorusGaussianProblem(torch.zeros(3, 1, dtype=torch.float64), std=0.5)
    trainer = Trainer(torus, AffineControl(3, 1), GeometricSchedule(0.05, 1.0), _tiny_config(importance_fraction=0.5),
                      tmp_path / "torus", progress=False)
    with pytest.raises(ConfigError, match="importance_fraction > 0 needs a closed-form base density"):
        trainer.run()
    with pytest.raises(ConfigError, match="ram_target must be one of"):
        _tiny_config(ram_target="mean")
    with pytest.raises(ConfigError, match="posterior_group_size must be >= 1"):
        _tiny_config(posterior_group_size=0)
    no_symmetry = GaussianProblem(torch.zeros(3, 2), 1.0)
    no_symmetry.symmetry = None
    with pytest.raises(ConfigError, match="needs a problem with symmetry"):
        Trainer(no_symmetry, AffineControl(3, 2), GeometricSchedule(0.01, 1.0), _tiny_config(ram_target="batch_posterior"),
                tmp_path / "nosym", progress=False)
    cfg = load_job_config(REPO / "configs" / "dw4.yaml")
    assert cfg.problem == {"kind": "synthetic", "system": "dw4"} and cfg.trainer.iterations > 0


def test_sigkill_and_rerun_same_command_matches_uninterrupted(tmp_path):
    config = _cli_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(_train_cmd(config, tmp_path / "ref"), env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    assert "gradient steps per energy evaluation" in ref.stdout

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(config, run_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_tag(run_dir, 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run_dir / "train_state/latest.json").read_text())["tag"] < "00000014"  # really interrupted
    again = subprocess.run(_train_cmd(config, run_dir), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert_same_final_state(tmp_path / "ref", run_dir)


def test_ema_weights_are_checkpointed_and_resumed(tmp_path):
    full = _tiny_trainer(tmp_path / "full", ema_decay=0.5)
    full.run()
    split = _tiny_trainer(tmp_path / "split", ema_decay=0.5)
    split.run(stop_after_iterations=3)
    split = _tiny_trainer(tmp_path / "split", init_seed=7, ema_decay=0.5)
    split.run()
    _assert_same_state(full, split)
    ckpt = load_model_checkpoint(tmp_path / "split" / "model.pt")
    live = full.controller.state_dict()
    for k, v in ckpt.state_dict.items():
        assert torch.equal(v, full.ema[k]) and torch.equal(v, split.ema[k])
    # the average differs from the live weights (at least for the layers that moved)
    assert any(not torch.equal(ckpt.state_dict[k], live[k]) for k in live)
    with pytest.raises(ConfigError, match="ema_decay"):
        _tiny_config(ema_decay=1.5)


def test_snapshots_keep_the_model_and_live_weights_at_every_interval(tmp_path):
    """snapshot_interval 2 of 5 iterations: iterations 2 and 4, the EMA model and the live weights of
    that moment, the same whether or not the run was stopped and resumed in between."""
    stopped = _tiny_trainer(tmp_path / "stopped", ema_decay=0.5, snapshot_interval=2)
    stopped.run(stop_after_iterations=3)
    at_three = {k: v.clone() for k, v in stopped.controller.state_dict().items()}
    stopped = _tiny_trainer(tmp_path / "stopped", init_seed=7, ema_decay=0.5, snapshot_interval=2)
    stopped.run()
    full = _tiny_trainer(tmp_path / "full", ema_decay=0.5, snapshot_interval=2)
    full.run(stop_after_iterations=4)
    ema_at_four = {k: v.clone() for k, v in full.ema.items()}
    live_at_four = {k: v.clone() for k, v in full.controller.state_dict().items()}
    snaps = sorted(p.name for p in (tmp_path / "stopped" / "snapshots").iterdir())
    assert snaps == ["iteration_000002.pt", "iteration_000002_live.pt", "iteration_000004.pt",
                     "iteration_000004_live.pt"]
    model = load_model_checkpoint(tmp_path / "stopped" / "snapshots" / "iteration_000004.pt")
    live = load_model_checkpoint(tmp_path / "stopped" / "snapshots" / "iteration_000004_live.pt")
    assert model.counters["iteration"] == 4 and model.controller_name == "egnn"
    for k in live_at_four:
        assert torch.equal(model.state_dict[k], ema_at_four[k])
        assert torch.equal(live.state_dict[k], live_at_four[k])
    two = load_model_checkpoint(tmp_path / "stopped" / "snapshots" / "iteration_000002_live.pt")
    assert any(not torch.equal(two.state_dict[k], at_three[k]) for k in at_three)  # an earlier moment
    # without an EMA only the model is kept; 0 keeps nothing
    plain = _tiny_trainer(tmp_path / "plain", snapshot_interval=5)
    plain.run()
    assert sorted(p.name for p in (tmp_path / "plain" / "snapshots").iterdir()) == ["iteration_000005.pt"]
    none = _tiny_trainer(tmp_path / "none")
    none.run()
    assert not (tmp_path / "none" / "snapshots").exists()
    with pytest.raises(ConfigError, match="snapshot_interval"):
        _tiny_config(snapshot_interval=-1)


def _save_random_egnn(path, hparams: dict, seed: int):
    """An EGNN controller with seeded random weights, saved as a model checkpoint at ``path``; returned."""
    torch.manual_seed(seed)
    source = build_controller("egnn", hparams)
    save_model_checkpoint(path, ModelCheckpoint(
        controller_name="egnn", controller_hparams=source.hparams, state_dict=source.state_dict(),
        schedule_kind="geometric", schedule_params={"sigma_min": 0.01, "sigma_max": 3.0},
        sde_steps=10, grid_kind="uniform", tau=1.0))
    return source


def test_init_from_starts_a_run_from_checkpoint_weights(tmp_path):
    """``init_from`` copies a model checkpoint's weights into a new run (fine-tuning)."""
    base = yaml.safe_load(_cli_config(tmp_path).read_text())
    base["trainer"].update(iterations=1, lr=1e-12, lr_final=None, ema_decay=None)
    hparams = base["controller"]["hparams"]
    source = _save_random_egnn(tmp_path / "source.pt", hparams, seed=123)

    run_training_job(job_config_from_dict({**base, "init_from": str(tmp_path / "source.pt")}), tmp_path / "tuned")
    run_training_job(job_config_from_dict(base), tmp_path / "fresh")
    tuned = load_model_checkpoint(tmp_path / "tuned" / "model.pt").state_dict
    fresh = load_model_checkpoint(tmp_path / "fresh" / "model.pt").state_dict
    for name, value in source.state_dict().items():
        assert torch.allclose(tuned[name], value, atol=1e-8), name
    assert any(not torch.allclose(fresh[n], v, atol=1e-3) for n, v in source.state_dict().items())

    other = {**base, "controller": {"name": "egnn", "hparams": {**hparams, "hidden": 8}},
             "init_from": str(tmp_path / "source.pt")}
    with pytest.raises(CheckpointError, match="holds controller 'egnn'"):
        run_training_job(job_config_from_dict(other), tmp_path / "other")
    with pytest.raises(CheckpointError, match="not found"):
        run_training_job(job_config_from_dict({**base, "init_from": str(tmp_path / "nope.pt")}), tmp_path / "x")

    # resuming continues from the run's own state: the init_from file is no longer needed
    (tmp_path / "source.pt").unlink()
    longer = {**base, "trainer": {**base["trainer"], "iterations": 2}, "init_from": str(tmp_path / "source.pt")}
    assert run_training_job(job_config_from_dict(longer), tmp_path / "tuned").iteration == 2


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO / "configs").rglob("*.yaml") if not {"labelling", "energy"} & set(p.parts)),
    ids=lambda p: p.name,
)
def test_every_shipped_config_parses(path):
    cfg = load_job_config(path)
    assert cfg.trainer.iterations >= 1 and cfg.problem["kind"] in ("synthetic", "molecules")
    if cfg.init_from:  # fine-tuning configs start from a file the repository or an earlier stage makes
        assert cfg.init_from.endswith(".pt")


def test_sigterm_saves_at_the_next_step_and_stops_then_the_run_resumes(tmp_path, monkeypatch):
    """A real SIGTERM to this process during the 3rd iteration's gradient steps: the trainer finishes the
    step, checkpoints, returns, and puts the previous handler back; the same run then finishes."""
    before = signal.getsignal(signal.SIGTERM)
    trainer = _tiny_trainer(tmp_path)
    original, calls = Trainer._ram_step, []

    def ram_step_then_sigterm(self):
        calls.append(1)
        if len(calls) == 7:  # iteration 3 (3 gradient steps per iteration)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(Trainer, "_ram_step", ram_step_then_sigterm)
    trainer.run()
    assert trainer.counters.iteration == 3 and trainer.stop_signal.requested
    assert signal.getsignal(signal.SIGTERM) == before
    monkeypatch.setattr(Trainer, "_ram_step", original)
    resumed = _tiny_trainer(tmp_path)
    resumed.run()
    assert resumed.counters.iteration == 5


def test_train_seed_option_replaces_the_configs_seed(tmp_path, capsys):
    """``train --seed N`` runs the same config under another training seed; the checkpoint says which."""
    from adjoint_sampling.cli.entry import main

    base = yaml.safe_load(_cli_config(tmp_path).read_text())
    base["trainer"].update(iterations=1, grad_steps_per_refresh=2)
    config = tmp_path / "one.yaml"
    config.write_text(yaml.safe_dump(base))
    for seed in (0, 5):
        assert main(["train", str(config), "--run-dir", str(tmp_path / f"s{seed}"), "--seed", str(seed),
                     "--no-progress"]) == 0
    a, b = (load_model_checkpoint(tmp_path / f"s{seed}" / "model.pt") for seed in (0, 5))
    assert a.config["trainer"]["seed"] == 0 and b.config["trainer"]["seed"] == 5
    assert any(not torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"method": {"kind": "flow_matching"}, "problem": {"kind": "synthetic"}}))
    capsys.readouterr()
    assert main(["train", str(flow), "--seed", "1"]) == 2
    assert "--seed applies to sampler jobs" in capsys.readouterr().err


def test_train_init_from_option_replaces_the_configs_init_from(tmp_path, capsys):
    """``train --init-from MODEL.pt`` starts the config's run from that checkpoint's weights (one late-stage
    config serves every seed); the run's checkpoint records it; other job kinds refuse the flag."""
    from adjoint_sampling.cli.entry import main

    base = yaml.safe_load(_cli_config(tmp_path).read_text())
    base["trainer"].update(iterations=1, lr=1e-12, lr_final=None, ema_decay=None)
    source = _save_random_egnn(tmp_path / "source.pt", base["controller"]["hparams"], seed=7)
    config = tmp_path / "stage.yaml"
    config.write_text(yaml.safe_dump({**base, "init_from": str(tmp_path / "missing.pt")}))
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run"), "--init-from", str(tmp_path / "source.pt"),
                 "--no-progress"]) == 0
    tuned = load_model_checkpoint(tmp_path / "run" / "model.pt")
    assert tuned.config["init_from"] == str(tmp_path / "source.pt")
    for name, value in source.state_dict().items():
        assert torch.allclose(tuned.state_dict[name], value, atol=1e-8), name
    capsys.readouterr()
    assert main(["train", str(config), "--run-dir", str(tmp_path / "other"), "--no-progress"]) == 2
    assert "missing.pt" in capsys.readouterr().err  # without the flag, the config's own init_from
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"method": {"kind": "flow_matching"}, "problem": {"kind": "synthetic"}}))
    assert main(["train", str(flow), "--init-from", str(tmp_path / "source.pt")]) == 2
    assert "--init-from applies to sampler jobs" in capsys.readouterr().err


def test_loss_time_window_reaches_the_ram_steps_and_survives_the_run_config(tmp_path, recorded_loss_times):
    """A YAML job with a loss-time window trains, its config round-trips through the run directory
    (a resume accepts it), and the RAM steps draw that share of their times inside the window."""
    drawn = recorded_loss_times
    cfg = {"problem": {"kind": "synthetic", "system": "dw4"},
           "controller": {"name": "egnn", "hparams": {"hidden": 8, "num_layers": 1}},
           "trainer": {"iterations": 2, "samples_per_refresh": 8, "grad_steps_per_refresh": 20, "batch_size": 64,
                       "buffer_capacity": 32, "initial_buffer_fill": 16, "sample_batch_size": 16, "sde_steps": 5,
                       "loss_time_window": [0.6, 0.7], "loss_time_window_fraction": 0.8}}
    path = tmp_path / "window.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run_training_job(path, tmp_path / "run", progress=False).iteration == 2
    times = torch.cat(drawn)
    inside = float(((times >= 0.6) & (times <= 0.7)).double().mean())
    assert inside == pytest.approx(0.8 + 0.2 * 0.1, abs=0.03)
    cfg["trainer"]["iterations"] = 3
    path.write_text(yaml.safe_dump(cfg))
    assert run_training_job(path, tmp_path / "run", progress=False).iteration == 3
