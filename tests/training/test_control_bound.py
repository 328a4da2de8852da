"""The training job warns when the controller's output cannot reach the adjoint clip."""

from __future__ import annotations

import logging

import yaml

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.training import jobs
from adjoint_sampling.training.config import load_job_config
from adjoint_sampling.training.jobs import control_bound_warning


def _controller_and_clip(config: str):
    cfg = load_job_config(REPO_ROOT / config)
    return build_controller(cfg.controller.name, cfg.controller.hparams), cfg.trainer.adjoint_clip


def test_the_old_lj13_control_is_flagged_and_the_fixed_one_is_not():
    old, clip = _controller_and_clip("configs/experiments/lj13_bound30.yaml")
    message = control_bound_warning(old, clip)
    assert message is not None and "30" in message and "100" in message
    for config in ("configs/lj13.yaml", "configs/experiments/lj13_output_scale.yaml"):
        fixed, clip = _controller_and_clip(config)
        assert control_bound_warning(fixed, clip) is None
    dw4, clip = _controller_and_clip("configs/dw4.yaml")  # bound 120 against a clip of 30
    assert control_bound_warning(dw4, clip) is None


def test_one_pairs_push_is_checked_for_many_particles():
    """LJ-55 with the LJ-13 control: the total bound (3,000) is far above the clip, but one close
    pair, averaged with 53 other neighbours, moves a particle by at most 56; configs/lj55.yaml's
    output scale lifts that to 167. LJ-13 (12 neighbours: 250) and DW-4 (3: 40 against 30) pass."""
    lj13, clip = _controller_and_clip("configs/lj13.yaml")
    message = control_bound_warning(lj13, clip, n_particles=55)
    assert message is not None and "one close pair" in message and "55.5" in message
    assert control_bound_warning(lj13, clip, n_particles=13) is None
    lj55, clip = _controller_and_clip("configs/lj55.yaml")
    assert control_bound_warning(lj55, clip, n_particles=55) is None
    dw4, clip = _controller_and_clip("configs/dw4.yaml")
    assert control_bound_warning(dw4, clip, n_particles=4) is None


def test_no_clip_or_no_bound_gives_no_warning():
    bounded = build_controller("egnn", {"hidden": 8, "num_layers": 2, "max_update": 1.0})
    assert control_bound_warning(bounded, None) is None
    assert control_bound_warning(build_controller("egnn", {"hidden": 8, "num_layers": 2}), 1e9) is None


def _tiny_job_warnings(tmp_path, caplog, config: str, **problem) -> list[str]:
    cfg = yaml.safe_load((REPO_ROOT / config).read_text())
    cfg["problem"].update(problem)
    cfg["trainer"].update(iterations=1, initial_buffer_fill=2, samples_per_refresh=2, sample_batch_size=2,
                          grad_steps_per_refresh=1, batch_size=2, sde_steps=3)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING, logger=jobs.__name__):
        jobs.run_training_job(path, run_dir=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model.pt").exists()
    return [r.getMessage() for r in caplog.records]


def test_the_job_logs_the_warning(tmp_path, caplog):
    messages = _tiny_job_warnings(tmp_path, caplog, "configs/experiments/lj13_bound30.yaml")
    assert any("cannot fit the largest adjoint targets" in m for m in messages)


def test_the_job_checks_one_pairs_push_with_its_problems_particle_count(tmp_path, caplog):
    messages = _tiny_job_warnings(tmp_path, caplog, "configs/lj13.yaml", system="lj55")
    assert any("one close pair" in m and "54 neighbours" in m for m in messages)


def test_committed_lj13_model_is_colder_than_the_bounded_one():
    """The committed LJ-13 controller (bound lifted, radial features) samples far lower energies than
    the archived bounded one (median -39 against -10 on 2,000 samples; reference -43.6)."""
    import torch

    from adjoint_sampling.benchmarks.synthetic.sampling import sample_checkpoint
    from adjoint_sampling.models.checkpoint import load_model_checkpoint

    models = REPO_ROOT / "benchmarks" / "synthetic" / "models"
    new = load_model_checkpoint(models / "lj13.pt")
    old = load_model_checkpoint(models / "archive" / "lj13_bound30_seed0.pt")
    assert new.controller_hparams["radial_features"] == 16 and new.controller_hparams["output_scale"] == 10.0
    _, e_new = sample_checkpoint(new, 64, seed=0)
    _, e_old = sample_checkpoint(old, 64, seed=0)
    assert float(torch.median(e_new)) < -30.0 < float(torch.median(e_old))
