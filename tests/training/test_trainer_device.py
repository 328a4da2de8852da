"""Sampler training on an accelerator: device choice, batches that move, and (with CUDA) a run that
matches the CPU run's random stream and resumes on the CPU."""

from __future__ import annotations

import pytest
import torch
import yaml
from trainer_helpers import _cli_config, _tiny_trainer

from adjoint_sampling.cli.entry import main
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.synthetic import SyntheticProblem
from adjoint_sampling.sde.batch import GraphContext, SystemBatch, batch_to
from adjoint_sampling.sde.schedules import GeometricSchedule
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace
from adjoint_sampling.core.devices import resolve_device
from adjoint_sampling.training.trainer import Trainer

HAS_CUDA = torch.cuda.is_available()


def test_resolve_device_names() -> None:
    assert resolve_device(None) == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(None, default="auto") == resolve_device("auto")
    assert resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    for bad in ("tpu", "gpu0", "mps"):
        with pytest.raises(ConfigError, match="device"):
            resolve_device(bad)
    if not HAS_CUDA:
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


def test_batch_to_moves_space_and_graph_context_and_refuses_other_contexts() -> None:
    space = CenteredEuclideanSpace(torch.arange(2).repeat_interleave(3), 2, 3)
    context = GraphContext(node_features=torch.ones(6, 2), edge_index=torch.zeros(2, 4, dtype=torch.long))
    batch = SystemBatch([0, 0], space, context)
    assert batch_to(batch, "cpu") is batch  # already there
    moved = batch_to(batch, "meta")  # a device without data: shapes and placement only
    assert moved.space.batch.device.type == "meta" and moved.space.num_systems == 2 and moved.space.dim == 3
    assert moved.context.node_features.device.type == "meta" and moved.context.edge_features is None
    assert batch.space.batch.device.type == "cpu"  # the original is untouched
    assert type(moved.space) is CenteredEuclideanSpace
    with pytest.raises(TypeError, match="cannot move"):
        batch_to(SystemBatch([0], space, context=object()), "meta")


class _PinnedContextProblem:
    """A problem whose batches carry a context that cannot leave the CPU."""

    tau = 1.0

    def draw_keys(self, n, generator):
        return [0] * n

    def make_batch(self, keys):
        b = len(keys)
        return SystemBatch(list(keys), CenteredEuclideanSpace(torch.arange(b).repeat_interleave(4), b, 2), object())


def test_problem_that_cannot_move_is_refused_before_training(tmp_path) -> None:
    controller = build_controller("egnn", {"hidden": 8, "num_layers": 1})
    from trainer_helpers import _tiny_config

    with pytest.raises(ConfigError, match="_PinnedContextProblem cannot train on meta"):
        Trainer(_PinnedContextProblem(), controller, GeometricSchedule(0.01, 3.0), _tiny_config(), tmp_path,
                progress=False, device="meta")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error on a machine without CUDA")
def test_train_cli_without_cuda_says_so_in_one_line(tmp_path, capsys) -> None:
    config = _cli_config(tmp_path)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run"), "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]
    assert not (tmp_path / "run" / "train_state").exists()
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"method": {"kind": "flow_matching"}, "problem": {"kind": "synthetic"}}))
    assert main(["train", str(flow), "--device", "tpu"]) == 2


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (runs on a lent GPU machine)")
@pytest.mark.parametrize("importance_fraction", [0.0, 0.5])
def test_cuda_run_follows_the_cpu_random_stream_and_resumes_on_the_cpu(tmp_path, importance_fraction) -> None:
    cpu = _tiny_trainer(tmp_path / "cpu", importance_fraction=importance_fraction)
    cpu.run()

    def trainer(device: str) -> Trainer:
        torch.manual_seed(0)  # the same initial weights as _tiny_trainer's
        controller = build_controller("egnn", {"hidden": 16, "num_layers": 1, "length_scale": 4.0})
        return Trainer(SyntheticProblem.from_name("dw4"), controller, GeometricSchedule(0.01, 3.0), cpu.config,
                       tmp_path / "gpu", progress=False, device=device)

    gpu = trainer("cuda")
    gpu.run(stop_after_iterations=3)
    assert next(gpu.controller.parameters()).device.type == "cuda"
    state = gpu.buffer.save_state()
    assert state["x1"].device.type == "cpu"  # the buffer and the saved states stay on the CPU
    resumed = trainer("cpu")  # resumed on another device from the CUDA run's state
    resumed.run()
    assert resumed.counters.iteration == cpu.counters.iteration
    assert resumed.counters.energy_evals == cpu.counters.energy_evals
    # the same random stream (every draw is on the CPU); only float rounding differs between devices
    assert torch.allclose(cpu.buffer.energies(), resumed.buffer.energies(), atol=1e-2, rtol=1e-3)
    for k, v in cpu.controller.state_dict().items():
        assert torch.allclose(v, resumed.controller.state_dict()[k], atol=1e-2), k
