"""Training jobs of the Adjoint Matching family: a torsional flow pre-trained by flow matching on RDKit
conformers, then fine-tuned with Adjoint Matching; both resumable, both sampled through the product's
``Sampler``; bad configs refused in one line."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from molecular_helpers import TINY_SMILES

from adjoint_sampling.benchmarks.control_profile import profile_checkpoint
from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.problems.molecular.torsional import torsional_batch
from adjoint_sampling.training.config import job_config_from_dict
from adjoint_sampling.training.jobs import run_training_job

CONTROLLER = {"name": "torsional", "hparams": {"scalars": 8, "vectors": 2, "num_layers": 1}}


def _job(method: dict[str, Any], schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "problem": {"kind": "molecules", "mode": "torsional", "smiles": list(TINY_SMILES), "samples_per_molecule": 4,
                    "temperature_k": 300.0, "warm_start_pool": 4, "pool_relaxation": "mmff"},
        "controller": copy.deepcopy(CONTROLLER),
        "schedule": schedule or {"kind": "memoryless", "t_start": 0.001},
        "method": method,
        "num_threads": 1,
    }


FLOW = {"kind": "flow_matching", "steps": 9, "batch_size": 8, "lr": 3e-3, "checkpoint_interval": 4,
        "sample_sde_steps": 12}


def _fine_tune(base: Path, **changes: Any) -> dict[str, Any]:
    return {"kind": "adjoint_matching", "base": str(base), "iterations": 4, "batch_size": 4, "sde_steps": 12,
            "grid": "start_refined", "times_per_iteration": 4, "grad_steps_per_batch": 2, "lr": 1e-3,
            "max_adjoint_norm": 50.0, "checkpoint_interval": 2, **changes}


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("flow")
    counters = run_training_job(job_config_from_dict(_job(FLOW)), run_dir, progress=False)
    assert counters["steps"] == 9 and math.isfinite(counters["final_loss"])
    return run_dir


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model_checkpoint(path).state_dict


def test_flow_job_writes_a_flow_checkpoint_that_the_sampler_draws_wrapped_torsions_from(flow_run):
    ckpt = load_model_checkpoint(flow_run / "model.pt")
    assert ckpt.kind == "flow" and ckpt.base is None and ckpt.schedule_kind == "memoryless"
    assert (ckpt.solver, ckpt.sde_steps, ckpt.grid_kind) == ("ode", 12, "uniform")
    assert ckpt.problem["params"]["pool_relaxation"] == "mmff" and ckpt.counters["steps"] == 9
    assert [json.loads(line)["steps"] for line in (flow_run / "metrics.jsonl").read_text().splitlines()] == [4, 8, 9]
    sampler = Sampler.from_checkpoint(flow_run / "model.pt")
    record = sampler.prepare(GenerationRequest(smiles=TINY_SMILES[0], num_conformers=6, seed=3))
    first = sampler.sample_positions(record, 6, seed=3)
    assert first.shape == (6, record.num_atoms, 3) and (first == sampler.sample_positions(record, 6, seed=3)).all()
    assert not (first == sampler.sample_positions(record, 6, seed=4)).all()
    x1 = sampler._terminal(torsional_batch([record], [0] * 16), torch.Generator().manual_seed(0))
    assert x1.abs().max() <= math.pi and x1.std() > 0.3  # torsions wrapped into [-pi, pi), and spread


def test_a_stopped_flow_job_resumes_to_the_same_weights_as_an_uninterrupted_one(flow_run, tmp_path):
    cfg = job_config_from_dict(_job(FLOW))
    stopped = run_training_job(cfg, tmp_path, stop_after_iterations=5, progress=False)
    assert stopped["steps"] == 5
    assert run_training_job(cfg, tmp_path, progress=False)["steps"] == 9
    resumed, straight = _weights(tmp_path / "model.pt"), _weights(flow_run / "model.pt")
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    # a finished run started again with other sampling settings only rewrites model.pt with them
    resampled = job_config_from_dict(_job({**FLOW, "sample_solver": "sde", "sample_sde_steps": 7,
                                           "sample_grid": "start_refined"}))
    assert run_training_job(resampled, tmp_path, progress=False)["steps"] == 9
    ckpt = load_model_checkpoint(tmp_path / "model.pt")
    assert (ckpt.solver, ckpt.sde_steps, ckpt.grid_kind) == ("sde", 7, "start_refined")
    assert all(torch.equal(ckpt.state_dict[k], straight[k]) for k in straight)
    with pytest.raises(ConfigError, match="different config"):
        run_training_job(job_config_from_dict(_job({**FLOW, "lr": 1e-2})), tmp_path, progress=False)


def test_adjoint_matching_job_fine_tunes_a_control_on_the_flow_and_samples_through_both(flow_run, tmp_path):
    cfg = job_config_from_dict(_job(_fine_tune(flow_run / "model.pt")))
    stopped = run_training_job(cfg, tmp_path, stop_after_iterations=2, progress=False)
    assert stopped["steps"] == 2
    done = run_training_job(cfg, tmp_path, progress=False)
    assert done["steps"] == 4 and math.isfinite(done["final_loss"])
    ckpt = load_model_checkpoint(tmp_path / "model.pt")
    assert ckpt.kind == "adjoint_matching" and ckpt.solver == "ode" and ckpt.sde_steps == 10  # sampling defaults
    base = _weights(flow_run / "model.pt")
    assert all(torch.equal(ckpt.base["state_dict"][k], base[k]) for k in base)  # the flow stays frozen
    fine, flow = Sampler.from_checkpoint(tmp_path / "model.pt"), Sampler.from_checkpoint(flow_run / "model.pt")
    record = fine.prepare(GenerationRequest(smiles=TINY_SMILES[1], num_conformers=4, seed=0))
    tuned, plain = fine.sample_positions(record, 4, seed=0), flow.sample_positions(record, 4, seed=0)
    assert tuned.shape == plain.shape and not (tuned == plain).all()  # the control changes the draws


def test_a_windowed_fine_tune_samples_the_flow_where_its_control_is_off(flow_run, tmp_path):
    """``control_from: 0.5`` (start_refined grid of 12: the control acts at its last 3 times, 0.56 to
    0.84): the checkpoint carries the window; sampled with it the draws differ from the flow's, and
    with a window past the sampling grid's last time (ODE, 10 uniform steps: 0.90) they are the flow's
    own draws, to the bit."""
    cfg = job_config_from_dict(_job(_fine_tune(flow_run / "model.pt", control_from=0.5, times_per_iteration=3)))
    assert run_training_job(cfg, tmp_path, progress=False)["steps"] == 4
    ckpt = load_model_checkpoint(tmp_path / "model.pt")
    assert ckpt.control_from == 0.5 and ckpt.kind == "adjoint_matching"
    fine = Sampler.from_checkpoint(tmp_path / "model.pt")
    flow = Sampler.from_checkpoint(flow_run / "model.pt", sde_steps=fine.checkpoint.sde_steps)  # the same ODE grid
    record = fine.prepare(GenerationRequest(smiles=TINY_SMILES[1], num_conformers=4, seed=0))
    plain = flow.sample_positions(record, 4, seed=0)
    assert not (fine.sample_positions(record, 4, seed=0) == plain).all()
    late = dataclasses.replace(fine, checkpoint=dataclasses.replace(fine.checkpoint, control_from=0.95))
    assert (late.sample_positions(record, 4, seed=0) == plain).all()
    with pytest.raises(CheckpointError, match="control_from"):
        dataclasses.replace(flow.checkpoint, control_from=0.5)  # a flow has no control to window
    # the profile of where it learned: along its own paths the control is zero before the window only
    rows = profile_checkpoint(tmp_path / "model.pt", molecules=2, paths=4, batches=1)
    assert [round(r.t, 3) for r in rows][-4:] == [0.445, 0.563, 0.695, 0.84]
    assert all((r.control_norm > 0) == (r.t >= 0.5) for r in rows) and all(-1 <= r.cosine <= 1 for r in rows)
    assert all(r.cosine == 0 for r in rows if r.t < 0.5) and rows[-1].adjoint_norm > 0
    everywhere = profile_checkpoint(tmp_path / "model.pt", molecules=2, paths=4, batches=1, control_from=0.0)
    assert all(r.control_norm > 0 for r in everywhere)
    with pytest.raises(CheckpointError, match="not an Adjoint Matching fine-tune"):
        profile_checkpoint(flow_run / "model.pt", molecules=2, paths=4, batches=1)
    # a finished run started again with another sampling window only rewrites model.pt's window
    resampled = _fine_tune(flow_run / "model.pt", control_from=0.5, times_per_iteration=3, sample_control_from=0.95)
    assert run_training_job(job_config_from_dict(_job(resampled)), tmp_path, progress=False)["steps"] == 4
    rewritten = load_model_checkpoint(tmp_path / "model.pt")
    assert rewritten.control_from == 0.95 and all(torch.equal(rewritten.state_dict[k], ckpt.state_dict[k])
                                                  for k in ckpt.state_dict)
    with pytest.raises(ConfigError, match="only an adjoint_matching control has a window"):
        run_training_job(job_config_from_dict(_job({**FLOW, "sample_control_from": 0.5})), tmp_path / "f", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda job: job["method"].pop("base"), "method.base"),
        (lambda job: job.update(schedule={"kind": "geometric", "sigma_min": 0.02, "sigma_max": 3.0}), "memoryless"),
        (lambda job: job.update(trainer={"iterations": 5}), "config.trainer"),
        (lambda job: job["method"].update(kind="adjoint_matchin"), "method.kind"),
        (lambda job: job["method"].update(t_start=0.01), "schedule.t_start"),
        (lambda job: job["method"].update(checkpoint_interval=3), "multiple of grad_steps_per_batch"),
        (lambda job: job["method"].update(iterations=-1), "iterations"),
        (lambda job: job["method"].update(sample_solver="heun"), "sample_solver"),
        (lambda job: job["method"].update(control_from=1.5), "control_from must be in"),
        (lambda job: job["method"].update(control_from=0.99), "leaves no grid time"),
        (lambda job: job["method"].update(control_from=0.5), "exceeds the 3 grid times"),
        (lambda job: job["method"].update(sample_control_from=-1), "control_from must be in"),
        (lambda job: job.update(init_from="/nonexistent/model.pt"), "init_from is for adjoint_sampling jobs"),
    ],
)
def test_bad_adjoint_matching_configs_are_refused_with_the_reason(flow_run, tmp_path, change, message):
    job = _job(_fine_tune(flow_run / "model.pt"))
    change(job)
    with pytest.raises(ConfigError, match=message):
        run_training_job(job_config_from_dict(job), tmp_path, progress=False)


def test_adjoint_matching_refuses_a_base_that_is_not_a_flow(flow_run, tmp_path):
    fine_tuned = tmp_path / "fine"
    run_training_job(job_config_from_dict(_job(_fine_tune(flow_run / "model.pt", iterations=2))), fine_tuned,
                     progress=False)
    with pytest.raises(CheckpointError, match="not a pre-trained flow"):
        run_training_job(job_config_from_dict(_job(_fine_tune(fine_tuned / "model.pt"))), tmp_path / "again",
                         progress=False)


def test_an_mmff_relaxed_pool_has_lower_mmff_energies_than_the_etkdg_pool():
    from adjoint_sampling.energy.registry import build_energy
    from adjoint_sampling.training.molecular_job import build_molecular_problem

    spec = _job(FLOW)["problem"]
    pools = {}
    for relaxation in (None, "mmff"):
        problem = build_molecular_problem({**spec, "pool_relaxation": relaxation, "smiles": [TINY_SMILES[1]]})
        gen = torch.Generator().manual_seed(0)
        pools[relaxation] = torch.stack([problem.pool_conformer(0, gen) for _ in range(8)])
    system = problem.records[0].system
    mmff = build_energy("mmff")
    etkdg, relaxed = (mmff.energy_and_forces(system, pools[k]).energy for k in (None, "mmff"))
    assert relaxed.max() < etkdg.min()


def test_checkpoint_kinds_are_checked_and_old_checkpoints_read_as_adjoint_sampling(flow_run, tmp_path):
    import dataclasses

    from adjoint_sampling.core.paths import REPO_ROOT
    from adjoint_sampling.models.checkpoint import ModelCheckpoint, save_model_checkpoint

    shipped = load_model_checkpoint(REPO_ROOT / "models" / "shipped" / "default.pt")
    assert shipped.kind == "adjoint_sampling" and shipped.base is None
    flow = load_model_checkpoint(flow_run / "model.pt")
    with pytest.raises(CheckpointError, match="carries its base flow"):
        dataclasses.replace(flow, kind="adjoint_matching")
    with pytest.raises(CheckpointError, match="kind 'diffusion'"):
        dataclasses.replace(flow, kind="diffusion")
    with pytest.raises(CheckpointError, match="solver 'ode' does not sample a adjoint_sampling model"):
        dataclasses.replace(shipped, solver="ode")
    with pytest.raises(CheckpointError, match="needs the memoryless schedule"):
        Sampler(dataclasses.replace(flow, schedule_kind="geometric",
                                    schedule_params={"sigma_min": 0.02, "sigma_max": 3.0}),
                flow.build_controller(), "v")
    data = {k: v for k, v in dataclasses.asdict(flow).items() if k != "base"}
    save_model_checkpoint(tmp_path / "copy.pt", ModelCheckpoint(**data))
    assert load_model_checkpoint(tmp_path / "copy.pt").kind == "flow"
    assert torch.equal(ModelCheckpoint(**data).time_grid()[:1], torch.tensor([0.001], dtype=torch.float64))


def test_sigterm_during_a_flow_job_saves_and_stops(tmp_path, monkeypatch):
    """A real SIGTERM to this process during step 3: the job saves after that step and returns; the
    same command then finishes."""
    import os
    import signal

    from adjoint_sampling.training import flow_job

    original, calls = flow_job._pool_draw, []

    def draw_then_sigterm(problem, n, gen):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(problem, n, gen)

    monkeypatch.setattr(flow_job, "_pool_draw", draw_then_sigterm)
    cfg = job_config_from_dict(_job(FLOW))
    assert run_training_job(cfg, tmp_path, progress=False)["steps"] == 3
    assert load_model_checkpoint(tmp_path / "model.pt").counters["steps"] == 3
    monkeypatch.setattr(flow_job, "_pool_draw", original)
    assert run_training_job(cfg, tmp_path, progress=False)["steps"] == 9
