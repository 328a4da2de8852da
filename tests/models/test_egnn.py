"""EGNN controller: E(n) and permutation equivariance, features, registry."""

import pytest
import torch
from torch_geometric.utils import degree

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.geometry import random_orthogonal
from adjoint_sampling.models.egnn import EGNNLayer, RadialBasis, fully_connected_edges
from adjoint_sampling.models.equivariance import equivariance_errors
from adjoint_sampling.models.registry import available_controllers, build_controller
from adjoint_sampling.sde.batch import GraphContext, SystemBatch
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace

TOL = 1e-9  # float64


def _randomised(hparams):
    torch.manual_seed(0)
    model = build_controller("egnn", hparams).double()
    with torch.no_grad():
        for p in model.parameters():  # the zero-initialised output layer would make the test trivial
            p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("dim", [2, 3])
def test_equivariance_mixed_sizes(dim):
    model = _randomised({"hidden": 16, "num_layers": 3, "length_scale": 2.0})
    batch = torch.tensor([0] * 4 + [1] * 6 + [2] * 3)
    sb = SystemBatch([0, 1, 2], CenteredEuclideanSpace(batch, 3, dim))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(13, dim, generator=gen, dtype=torch.float64) * 2
    t = torch.rand(3, generator=gen, dtype=torch.float64)
    f = model(t, x, sb)
    assert f.shape == (13, dim) and float(f.detach().abs().mean()) > 1e-2  # non-trivial output
    errors = equivariance_errors(model, t, x, sb, gen)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation"}
    assert max(errors.values()) < TOL, errors
    # output depends on t
    with torch.no_grad():
        assert float((model(t * 0 + 0.9, x, sb) - model(t * 0 + 0.1, x, sb)).abs().max()) > 1e-3


def test_equivariance_with_node_and_edge_features():
    model = _randomised({"hidden": 16, "num_layers": 2, "node_feature_dim": 3, "edge_feature_dim": 2, "max_update": 0.5})
    batch = torch.tensor([0] * 5 + [1] * 4)
    gen = torch.Generator().manual_seed(2)
    edges = fully_connected_edges(batch, 2)
    ctx = GraphContext(node_features=torch.randn(9, 3, generator=gen, dtype=torch.float64), edge_index=edges,
                       edge_features=torch.randn(edges.shape[1], 2, generator=gen, dtype=torch.float64))
    sb = SystemBatch([0, 1], CenteredEuclideanSpace(batch, 2, 3), ctx)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(2, generator=gen, dtype=torch.float64)
    errors = equivariance_errors(model, t, x, sb, gen)
    for name in ("rotation", "reflection", "translation"):
        assert errors[name] < TOL
    # permuting rows while keeping the edge features attached to their (relabelled) edges
    assert errors["permutation"] < TOL
    # features matter
    ctx2 = GraphContext(node_features=ctx.node_features.flip(0), edge_index=edges, edge_features=ctx.edge_features)
    with torch.no_grad():
        assert float((model(t, x, SystemBatch([0, 1], sb.space, ctx2)) - model(t, x, sb)).abs().max()) > 1e-3


def test_equivariance_check_detects_a_broken_controller():
    gen = torch.Generator().manual_seed(0)
    sb = SystemBatch([0], CenteredEuclideanSpace(torch.zeros(4, dtype=torch.long), 1, 3))
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(1, dtype=torch.float64)
    errors = equivariance_errors(lambda t, x, b: x**2, t, x, sb, gen)
    assert errors["rotation"] > 1e-3 and errors["translation"] > 1e-3
    q = random_orthogonal(3, gen, reflection=True)
    assert float(torch.det(q)) == pytest.approx(-1.0) and torch.allclose(q @ q.T, torch.eye(3, dtype=torch.float64))


def test_fully_connected_edges():
    edges = fully_connected_edges(torch.tensor([0, 0, 1, 1, 1, 2]), 3)
    pairs = set(map(tuple, edges.T.tolist()))
    assert pairs == {(0, 1), (1, 0), (2, 3), (2, 4), (3, 2), (3, 4), (4, 2), (4, 3)}


def test_registry():
    assert "egnn" in available_controllers()
    model = build_controller("egnn", {"hidden": 8, "num_layers": 1})
    assert model.hparams["hidden"] == 8 and model.controller_name == "egnn"
    with pytest.raises(ConfigError, match="bad hyper-parameters"):
        build_controller("egnn", {"width": 8})
    with pytest.raises(ConfigError, match="unknown controller 'transformer'"):
        build_controller("transformer", {})


def test_gradients_are_finite_for_coincident_particles():
    """At t = 0 every particle sits at the origin (X_0 = 0); a loss time drawn as exactly 0 (one
    float32 draw in 2^24, so about once per long run) must not turn the weights into NaN."""
    torch.manual_seed(0)
    model = build_controller("egnn", {"hidden": 16, "num_layers": 3, "length_scale": 4.0, "max_update": 10.0})
    space = CenteredEuclideanSpace(torch.arange(2).repeat_interleave(4), 2, 2)
    batch = SystemBatch([0, 0], space)
    x = torch.zeros(8, 2)
    x[4:] = torch.randn(4, 2)  # the second system is an ordinary one
    f = model(torch.tensor([0.0, 0.5]), x, batch)
    (f.pow(2).sum() + sum(p.sum() for p in model.parameters())).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("output_scale, max_update", [(1.0, 10.0), (10.0, 100.0)])
def test_output_bound_is_reached_and_never_exceeded(output_scale, max_update):
    """Two far-apart particles with every per-edge weight saturated at +max_update move by the bound
    (the direction's norm d / (d + 1) is then close to 1); random inputs stay below it."""
    hp = {"hidden": 8, "num_layers": 3, "length_scale": 1.5, "output_scale": output_scale, "max_update": max_update}
    model = build_controller("egnn", hp).double()
    bound = model.output_bound()
    assert bound == pytest.approx(output_scale * 3 * max_update * 1.5)
    with torch.no_grad():
        for layer in model.layers:
            layer.coord_mlp[-1].bias.fill_(1e6)  # tanh saturates: weight = max_update
    sb = SystemBatch([0], CenteredEuclideanSpace(torch.zeros(2, dtype=torch.long), 1, 3))
    x = torch.tensor([[-500.0, 0.0, 0.0], [500.0, 0.0, 0.0]], dtype=torch.float64)
    f = model(torch.tensor([0.5], dtype=torch.float64), x, sb).detach()
    assert float(f.norm(dim=-1).max()) == pytest.approx(bound, rel=0.02)
    random_model = _randomised(hp)
    gen = torch.Generator().manual_seed(3)
    batch = torch.tensor([0] * 13 + [1] * 13)
    sb13 = SystemBatch([0, 1], CenteredEuclideanSpace(batch, 2, 3))
    for _ in range(5):
        xr = torch.randn(26, 3, generator=gen, dtype=torch.float64) * 3
        fr = random_model(torch.rand(2, generator=gen, dtype=torch.float64), xr, sb13).detach()
        assert float(fr.norm(dim=-1).max()) <= bound


def test_unbounded_updates_have_no_output_bound():
    assert build_controller("egnn", {"hidden": 8, "num_layers": 2}).output_bound() is None


def test_radial_features_keep_equivariance_and_old_hparams():
    model = _randomised({"hidden": 16, "num_layers": 3, "length_scale": 1.0, "radial_features": 8,
                         "radial_cutoff": 3.0})
    batch = torch.tensor([0] * 5 + [1] * 7)
    sb = SystemBatch([0, 1], CenteredEuclideanSpace(batch, 2, 3))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(2, generator=gen, dtype=torch.float64)
    errors = equivariance_errors(model, t, x, sb, gen)
    assert max(errors.values()) < TOL, errors
    assert model.layers[0].edge_mlp[0].in_features == 2 * 16 + 1 + 8
    # without radial features the hparams are exactly the earlier ones (checkpoints written before load)
    assert "radial_features" not in build_controller("egnn", {"hidden": 8, "num_layers": 2}).hparams
    with pytest.raises(ConfigError, match="radial_features"):
        build_controller("egnn", {"hidden": 8, "num_layers": 2, "radial_features": 1})


@pytest.mark.parametrize("edge_feature_dim, radial", [(0, None), (3, 4)])
def test_layer_matches_the_edge_mlp_on_concatenated_edge_inputs(edge_feature_dim, radial):
    """The layer applies its first edge linear map per node and gathers; the messages must equal the
    textbook ``edge_mlp([h_src, h_dst, d^2, radial(d), edge features])`` on every edge."""
    torch.manual_seed(2)
    basis = RadialBasis(radial, 3.0) if radial else None
    layer = EGNNLayer(8, 4, edge_feature_dim, radial=basis).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    batch = torch.tensor([0] * 4 + [1] * 5)
    edges = fully_connected_edges(batch, 2)
    gen = torch.Generator().manual_seed(5)
    h = torch.randn(9, 8, generator=gen, dtype=torch.float64)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    edge_feat = torch.randn(edges.shape[1], 3, generator=gen, dtype=torch.float64) if edge_feature_dim else None
    t_rows = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    inv_deg = 1.0 / degree(edges[0], 9, dtype=torch.float64).unsqueeze(-1)
    h_out, x_out = layer(h, x, edges, edge_feat, inv_deg, t_rows, 1.5)

    src, dst = edges
    rel = (x[src] - x[dst]) / 1.5
    d2 = rel.pow(2).sum(-1, keepdim=True)
    parts = [h[src], h[dst], d2] + ([basis((d2 + 1e-12).sqrt())] if basis is not None else [])
    parts += [edge_feat] if edge_feat is not None else []
    m = layer.edge_mlp(torch.cat(parts, dim=-1))
    dx = torch.zeros_like(x).index_add_(0, src, rel / ((d2 + 1e-8).sqrt() + 1.0) * layer.coord_mlp(m))
    agg = torch.zeros_like(h).index_add_(0, src, m)
    assert torch.allclose(x_out, x + dx * inv_deg * 1.5, atol=1e-12)
    assert torch.allclose(h_out, h + layer.node_mlp(torch.cat([h, agg * inv_deg, t_rows], dim=-1)), atol=1e-12)
    assert float((x_out - x).abs().max()) > 1e-3  # the check is not on a zero update
