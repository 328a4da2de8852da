"""Deepening an EGNN: same function, new depth, trainable new layers, checkpoint round trip."""

import pytest
import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.models.checkpoint import load_controller_weights, load_model_checkpoint
from adjoint_sampling.models.egnn_deepen import deepen_checkpoint, deepen_egnn, main
from adjoint_sampling.models.equivariance import equivariance_errors
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace

DW4_MODEL = "benchmarks/synthetic/models/dw4.pt"


def _inputs(seed=1):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    sb = SystemBatch([0, 1, 2], CenteredEuclideanSpace(batch, 3, 2))
    x = torch.randn(12, 2, generator=gen, dtype=torch.float64) * 3
    t = torch.rand(3, generator=gen, dtype=torch.float64)
    return t, x, sb, gen


def _trained_like(hparams):
    torch.manual_seed(0)
    model = build_controller("egnn", hparams).double()
    with torch.no_grad():  # a non-trivial function: the zero-initialised output layers would hide a bug
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("hparams", [
    {"hidden": 16, "num_layers": 3, "length_scale": 4.0, "max_update": 10.0},
    {"hidden": 8, "num_layers": 2, "radial_features": 4, "radial_cutoff": 2.0},
])
def test_deepened_controller_computes_the_same_function(hparams):
    model = _trained_like(hparams)
    deeper = deepen_egnn(model, 2)
    assert len(deeper.layers) == hparams["num_layers"] + 2 and deeper.hparams["num_layers"] == len(deeper.layers)
    assert len(model.layers) == hparams["num_layers"]  # the original is untouched
    t, x, sb, gen = _inputs()
    with torch.no_grad():
        f, g = model(t, x, sb), deeper(t, x, sb)
    assert float(f.abs().mean()) > 1e-2
    torch.testing.assert_close(g, f, rtol=0, atol=1e-12)
    assert max(equivariance_errors(deeper, t, x, sb, gen).values()) < 1e-9


def test_new_layers_learn():
    model = _trained_like({"hidden": 16, "num_layers": 3, "length_scale": 4.0})
    deeper = deepen_egnn(model, 1)
    t, x, sb, _ = _inputs()
    deeper(t, x, sb).pow(2).sum().backward()
    new = deeper.layers[2]
    assert float(new.coord_mlp[-1].weight.grad.abs().sum()) > 0
    assert float(new.node_mlp[-1].weight.grad.abs().sum()) > 0
    # the deepened model's own rebuild from its hparams takes its weights
    rebuilt = build_controller("egnn", deeper.hparams).double()
    rebuilt.load_state_dict(deeper.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(t, x, sb), model(t, x, sb), rtol=0, atol=1e-12)


def test_deepening_is_reproducible_and_leaves_the_global_stream_alone():
    model = _trained_like({"hidden": 8, "num_layers": 2})
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b, c = deepen_egnn(model, 1, seed=3), deepen_egnn(model, 1, seed=3), deepen_egnn(model, 1, seed=4)
    assert torch.equal(torch.rand(1), before)
    sa, sb_, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb_[k]) for k in sa)
    assert not torch.equal(sa["layers.1.edge_mlp.0.weight"], sc["layers.1.edge_mlp.0.weight"])


def test_deepen_rejects_no_new_layer():
    with pytest.raises(ConfigError, match="extra_layers"):
        deepen_egnn(_trained_like({"hidden": 8, "num_layers": 2}), 0)


def test_deepened_checkpoint_samples_like_the_original(tmp_path):
    dst = tmp_path / "deeper.pt"
    deepen_checkpoint(DW4_MODEL, dst, 2)
    src_ckpt, dst_ckpt = load_model_checkpoint(DW4_MODEL), load_model_checkpoint(dst)
    assert dst_ckpt.controller_hparams["num_layers"] == src_ckpt.controller_hparams["num_layers"] + 2
    assert (dst_ckpt.schedule_kind, dst_ckpt.schedule_params, dst_ckpt.sde_steps) == (
        src_ckpt.schedule_kind, src_ckpt.schedule_params, src_ckpt.sde_steps)
    # a training config that names the new depth can start from it (init_from)
    controller = build_controller("egnn", dict(dst_ckpt.controller_hparams))
    load_controller_weights(controller, dst, "egnn")
    original = build_controller("egnn", dict(src_ckpt.controller_hparams))
    original.load_state_dict(src_ckpt.state_dict)
    t, x, sb, _ = _inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(controller(t.float(), x.float(), sb), original(t.float(), x.float(), sb))


def test_cli_names_a_missing_checkpoint(tmp_path, capsys):
    assert main([str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint not found") and "Traceback" not in err
    assert not (tmp_path / "out.pt").exists()
