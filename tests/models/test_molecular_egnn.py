"""The Cartesian molecular controller: E(3) equivariance and atom-permutation equivariance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adjoint_sampling.chemistry.graph import ATOM_FEATURE_DIM, BOND_FEATURE_DIM
from adjoint_sampling.models.equivariance import equivariance_errors
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.molecular.cartesian import cartesian_batch
from adjoint_sampling.problems.molecular.collate import HOP_CLASSES, pair_feature_table
from adjoint_sampling.problems.molecular.context import CartesianContext
from adjoint_sampling.problems.molecular.dataset import prepare_molecules
from adjoint_sampling.sde.batch import SystemBatch

SMILES = ["N[C@@H](Cc1ccccc1)C(=O)O", "CCOC(=O)C"]


@pytest.fixture(scope="module")
def records():
    return prepare_molecules(SMILES)


def _controller() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_controller(
        "molecular_egnn",
        {"num_atom_features": ATOM_FEATURE_DIM, "num_pair_features": BOND_FEATURE_DIM + HOP_CLASSES,
         "hidden": 32, "num_layers": 3},
    )
    # the generic EGNN starts with zero coordinate outputs; give it non-trivial weights
    with torch.no_grad():
        for layer in net.egnn.layers:
            layer.coord_mlp[-1].weight.normal_(0.0, 0.5)
    return net.double()


def permute_cartesian_batch(batch: SystemBatch, perm: torch.Tensor) -> SystemBatch:
    """The same molecules with atom rows reordered (new row i = old row ``perm[i]``)."""
    ctx: CartesianContext = batch.context
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.shape[0])
    graph = dataclasses.replace(
        ctx.graph, atom_features=ctx.graph.atom_features[perm], atomic_numbers=ctx.graph.atomic_numbers[perm]
    )
    new_ctx = CartesianContext(graph=graph, pair_index=inverse[ctx.pair_index], pair_features=ctx.pair_features)
    return dataclasses.replace(batch, context=new_ctx)


def test_equivariant_under_rotation_reflection_translation_permutation(records):
    batch = cartesian_batch(records, [0, 1, 1, 0])
    g = torch.Generator().manual_seed(0)
    x = batch.space.project_state(torch.randn(batch.space.num_rows, 3, generator=g, dtype=torch.float64) * 1.5)
    t = torch.rand(batch.space.num_systems, generator=g, dtype=torch.float64)
    net = _controller()
    with torch.no_grad():
        out = net(t, x, batch)
    scale = float(out.abs().max())
    assert out.shape == x.shape and scale > 1e-3
    errors = equivariance_errors(net, t, x, batch, g, permute_batch=permute_cartesian_batch)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation"}
    for name, err in errors.items():
        assert err < 1e-9 * scale, (name, err)


def test_output_depends_on_atom_and_pair_features(records):
    batch = cartesian_batch(records, [0, 0])
    g = torch.Generator().manual_seed(1)
    x = batch.space.project_state(torch.randn(batch.space.num_rows, 3, generator=g, dtype=torch.float64))
    t = torch.full((2,), 0.5, dtype=torch.float64)
    net = _controller()
    ctx = batch.context
    no_pairs = dataclasses.replace(batch, context=dataclasses.replace(ctx, pair_features=torch.zeros_like(ctx.pair_features)))
    with torch.no_grad():
        assert (net(t, x, batch) - net(t, x, no_pairs)).abs().max() > 1e-6


def test_pair_features_mark_bonds_and_graph_distance(records):
    rec = records[1]  # CCOC(=O)C
    table = pair_feature_table(rec)
    src, dst = rec.graph.edge_index
    hops = table[..., BOND_FEATURE_DIM:].argmax(-1) + 1
    assert torch.equal(table[src, dst, :BOND_FEATURE_DIM], rec.graph.bond_features)
    assert (hops[src, dst] == 1).all()
    # heavy atoms C0-C1-O2-C3(=O4)-C5: O4 is 4 bonds from C0, O2 two, C3 three
    assert int(hops[0, 4]) == HOP_CLASSES  # 4 bonds apart -> class ">= 4"
    assert int(hops[0, 2]) == 2 and int(hops[0, 3]) == 3
    assert table[0, 2, :BOND_FEATURE_DIM].abs().sum() == 0
