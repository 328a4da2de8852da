"""EGNN controller (Satorras et al. 2021 style): E(3)-equivariant vector output per particle.

Works in any dimension D (2 for DW-4, 3 for LJ and molecules), on the fully connected graph of
each system unless the batch context gives ``edge_index``. Conditioned on t (Fourier features)
and optional node / edge features (:class:`adjoint_sampling.problem.GraphContext`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import degree, scatter

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.models.registry import register_controller
from adjoint_sampling.sde.batch import GraphContext, SystemBatch

__all__ = ["EGNNController", "fully_connected_edges"]


def fully_connected_edges(batch: Tensor, num_systems: int) -> Tensor:
    """All directed pairs ``i != j`` within each system: ``(2, E)`` long, rows contiguous per system."""
    counts = degree(batch, num_systems, dtype=torch.long)
    offsets = torch.cumsum(counts, 0) - counts
    src, dst = [], []
    for n in torch.unique(counts).tolist():
        if n < 2:
            continue
        systems = torch.nonzero(counts == n).flatten()
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        mask = i != j
        i, j = i[mask], j[mask]
        base = offsets[systems].view(-1, 1)
        src.append((base + i.view(1, -1)).flatten())
        dst.append((base + j.view(1, -1)).flatten())
    if not src:
        return torch.zeros(2, 0, dtype=torch.long, device=batch.device)
    return torch.stack([torch.cat(src), torch.cat(dst)]).to(batch.device)


class FourierTime(nn.Module):
    """``t (B,) -> (B, 2 * num_freq)`` sin/cos features at frequencies pi * 2^k."""

    def __init__(self, num_freq: int) -> None:
        super().__init__()
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(num_freq, dtype=torch.float32), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        arg = t.view(-1, 1).to(self.freq.dtype) * self.freq
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def _mlp(inp: int, hidden: int, out: int, final_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inp, hidden), nn.SiLU(), nn.Linear(hidden, out)]
    if final_act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class RadialBasis(nn.Module):
    """``d (E, 1) -> (E, K)`` Gaussians of the distance ``d`` (length-scaled units) centred evenly on
    ``[0, cutoff]``, width the spacing: sharp distance features for steep pair potentials (LJ)."""

    def __init__(self, num: int, cutoff: float) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num), persistent=False)
        self.inv_width = (num - 1) / cutoff

    def forward(self, d: Tensor) -> Tensor:
        return torch.exp(-((d - self.centres.to(d.dtype)) * self.inv_width).pow(2))


class EGNNLayer(nn.Module):
    """One message-passing layer: invariant features ``h`` (M, H), positions ``x`` (M, D)."""

    def __init__(self, hidden: int, time_dim: int, edge_feature_dim: int, update_features: bool = True,
                 max_update: float | None = None, radial: RadialBasis | None = None) -> None:
        super().__init__()
        self.max_update = max_update
        self.radial = radial
        radial_dim = 0 if radial is None else len(radial.centres)
        self.edge_mlp = _mlp(2 * hidden + 1 + radial_dim + edge_feature_dim, hidden, hidden, final_act=True)
        self.coord_mlp = _mlp(hidden, hidden, 1)
        # the last layer's feature update would not reach the output (and DDP needs every
        # parameter to receive a gradient), so it has none
        self.node_mlp = _mlp(2 * hidden + time_dim, hidden, hidden) if update_features else None
        nn.init.zeros_(self.coord_mlp[-1].weight)
        nn.init.zeros_(self.coord_mlp[-1].bias)

    def _first_edge_linear(self, h: Tensor, src: Tensor, dst: Tensor, pair: Tensor) -> Tensor:
        """The edge MLP's first linear map of ``[h_src, h_dst, pair]`` (E, 2H + P) -> (E, H).

        Its ``h`` columns are applied per node (M rows) and gathered, not per edge (E rows): the same
        map, with (2H + P) H multiply-adds per edge cut to P H (on a fully connected graph E = M (n - 1)).
        """
        linear = self.edge_mlp[0]
        width = h.shape[-1]
        weight = linear.weight
        by_src = h @ weight[:, :width].T
        by_dst = h @ weight[:, width:2 * width].T
        return by_src[src] + by_dst[dst] + torch.nn.functional.linear(pair, weight[:, 2 * width:], linear.bias)

    def forward(
        self, h: Tensor, x: Tensor, edges: Tensor, edge_feat: Tensor | None, inv_deg: Tensor, t_rows: Tensor,
        length_scale: float,
    ) -> tuple[Tensor, Tensor]:
        src, dst = edges
        rel = (x[src] - x[dst]) / length_scale
        d2 = rel.pow(2).sum(-1, keepdim=True)
        pair = [d2] + ([self.radial((d2 + 1e-12).sqrt())] if self.radial is not None else [])
        pair += [edge_feat] if edge_feat is not None else []
        m = self.edge_mlp[1:](self._first_edge_linear(h, src, dst, torch.cat(pair, dim=-1)))
        # normalised direction keeps updates bounded for far-apart particles; the epsilon keeps the
        # gradient finite for coincident particles (all of them sit at the origin at t = 0)
        direction = rel / ((d2 + 1e-8).sqrt() + 1.0)
        weight = self.coord_mlp(m)
        if self.max_update is not None:  # bounded updates: a bad early control cannot blow the SDE up
            weight = self.max_update * torch.tanh(weight / self.max_update)
        # sum, then times 1 / deg: reduce="mean" would divide instead (a different rounding)
        dx = scatter(direction * weight, src, dim=0, dim_size=x.shape[0], reduce="sum") * inv_deg * length_scale
        if self.node_mlp is not None:
            agg = scatter(m, src, dim=0, dim_size=h.shape[0], reduce="sum") * inv_deg
            h = h + self.node_mlp(torch.cat([h, agg, t_rows], dim=-1))
        return h, x + dx


@register_controller("egnn")
class EGNNController(nn.Module):
    """E(n)-equivariant GNN returning the scaled control ``f`` (M, D).

    Args:
        hidden: width of invariant features.
        num_layers: message-passing layers.
        node_feature_dim: width of ``GraphContext.node_features`` (0: none).
        edge_feature_dim: width of ``GraphContext.edge_features`` (0: none).
        time_frequencies: Fourier frequencies of the t embedding.
        length_scale: typical inter-particle distance (state units); distances are divided by it.
        output_scale: the output ``x_L - x_0`` is multiplied by it.
        max_update: if set, each layer's per-edge coordinate weight is ``max_update * tanh(w / max_update)``,
            so one layer moves a particle by at most ``max_update * length_scale`` (None: unbounded).
        radial_features: if > 0, that many Gaussians of the distance (:class:`RadialBasis`, centres on
            ``[0, radial_cutoff]`` in units of ``length_scale``) join every edge's input (0: only d^2).
    """

    def __init__(
        self,
        hidden: int = 64,
        num_layers: int = 4,
        node_feature_dim: int = 0,
        edge_feature_dim: int = 0,
        time_frequencies: int = 6,
        length_scale: float = 1.0,
        output_scale: float = 1.0,
        max_update: float | None = None,
        radial_features: int = 0,
        radial_cutoff: float = 3.0,
    ) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = dict(
            hidden=hidden, num_layers=num_layers, node_feature_dim=node_feature_dim,
            edge_feature_dim=edge_feature_dim, time_frequencies=time_frequencies,
            length_scale=length_scale, output_scale=output_scale, max_update=max_update,
        )
        if radial_features:  # only when used, so earlier checkpoints' hparams stay as they were
            if radial_features < 2 or radial_cutoff <= 0:
                raise ConfigError(f"radial_features must be 0 or >= 2 and radial_cutoff > 0, got "
                                 f"{radial_features}, {radial_cutoff}")
            self.hparams.update(radial_features=radial_features, radial_cutoff=radial_cutoff)
        radial = RadialBasis(radial_features, radial_cutoff) if radial_features else None
        self.length_scale = float(length_scale)
        self.output_scale = float(output_scale)
        self.node_feature_dim = int(node_feature_dim)
        self.time = FourierTime(time_frequencies)
        time_dim = 2 * time_frequencies
        self.embed = _mlp(node_feature_dim + time_dim, hidden, hidden)
        self.layers = nn.ModuleList(
            EGNNLayer(hidden, time_dim, edge_feature_dim, update_features=i < num_layers - 1, max_update=max_update,
                      radial=radial)
            for i in range(num_layers)
        )

    def output_bound(self) -> float | None:
        """Largest per-particle norm the output ``f`` can reach (state units), or None if unbounded.

        Each layer moves a particle by the mean over its neighbours of unit-bounded directions times
        weights bounded by ``max_update``, times ``length_scale``; the output is the sum over layers
        times ``output_scale``. A single close pair contributes at most this bound over the degree.
        """
        if self.hparams["max_update"] is None:
            return None
        return self.output_scale * len(self.layers) * float(self.hparams["max_update"]) * self.length_scale

    def forward(self, t: Tensor, x: Tensor, batch: SystemBatch) -> Tensor:
        """``t`` (B,), ``x`` (M, D) -> ``f`` (M, D)."""
        space = batch.space
        ctx = batch.context if isinstance(batch.context, GraphContext) else GraphContext()
        edges = ctx.edge_index if ctx.edge_index is not None else fully_connected_edges(space.batch, space.num_systems)
        t_rows = self.time(t.to(x.dtype))[space.batch]
        feats = [t_rows]
        if self.node_feature_dim:
            if ctx.node_features is None:
                raise ValueError("this EGNN expects GraphContext.node_features")
            feats.insert(0, ctx.node_features.to(x.dtype))
        h = self.embed(torch.cat(feats, dim=-1))
        deg = degree(edges[0], x.shape[0], dtype=x.dtype).clamp(min=1).unsqueeze(-1)
        x0 = x
        for layer in self.layers:
            h, x = layer(h, x, edges, ctx.edge_features, 1.0 / deg, t_rows, self.length_scale)
        return (x - x0) * self.output_scale
