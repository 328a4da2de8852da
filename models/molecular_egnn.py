"""Cartesian molecular controller: the generic EGNN (:mod:`models.egnn`) with atom and bond features.

The molecule is fully connected; every atom pair carries the bond features (zero for non-bonded
pairs) and its graph distance class (1, 2, 3, >= 4 bonds). The output is an E(3)-equivariant
vector per atom (the scaled control, kcal/mol-free units of 1/angstrom as the state space asks).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from adjoint_sampling.models.egnn import EGNNController
from adjoint_sampling.models.registry import register_controller
from adjoint_sampling.sde.batch import GraphContext, SystemBatch


@register_controller("molecular_egnn")
class MolecularEGNNController(nn.Module):
    """Control ``(A, 3)`` on the atoms of a Cartesian molecular batch.

    ``batch.context`` must be a :class:`adjoint_sampling.molecular.context.CartesianContext`.

    Args:
        num_atom_features: width of the atom features.
        num_pair_features: width of the pair features (bond features + graph-distance classes).
        hidden / num_layers / time_frequencies / length_scale / output_scale: see
            :class:`models.egnn.EGNNController`.
    """

    def __init__(
        self,
        num_atom_features: int,
        num_pair_features: int,
        hidden: int = 64,
        num_layers: int = 4,
        time_frequencies: int = 6,
        length_scale: float = 1.5,
        output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = dict(
            num_atom_features=num_atom_features, num_pair_features=num_pair_features, hidden=hidden,
            num_layers=num_layers, time_frequencies=time_frequencies, length_scale=length_scale,
            output_scale=output_scale,
        )
        self.egnn = EGNNController(
            hidden=hidden, num_layers=num_layers, node_feature_dim=num_atom_features,
            edge_feature_dim=num_pair_features, time_frequencies=time_frequencies,
            length_scale=length_scale, output_scale=output_scale,
        )

    def forward(self, t: Tensor, x: Tensor, batch: SystemBatch) -> Tensor:
        """``t`` (B,), atom positions ``x`` (A, 3) angstrom -> scaled control (A, 3)."""
        ctx = batch.context
        graph_ctx = GraphContext(
            node_features=ctx.graph.atom_features, edge_index=ctx.pair_index, edge_features=ctx.pair_features.to(x.dtype)
        )
        return self.egnn(t, x, dataclasses.replace(batch, context=graph_ctx))
