"""Torsional controller: an e3nn tensor-product network emitting one scalar per rotatable bond.

The network reads the 3D structure of each sample (the local structure with the current
torsions set), runs a few tensor-product convolutions over a radius graph plus the bonds, and
reads out one value per rotatable bond b-c from a bond-centred tensor product (the bond axis as
an l=2 harmonic, so the direction b->c vs c->b does not matter), in the style of torsional
diffusion.

Symmetry: the output is invariant under rotations, translations and atom permutations. Under a
reflection every dihedral angle changes sign, so the control on a torsion (a velocity in the
dihedral angle) changes sign too: the output is a pseudoscalar (irrep ``0o``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.utils import degree, scatter

from adjoint_sampling.models.molecular_edges import pairs_within_systems
from adjoint_sampling.models.registry import register_controller


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``(B, dim)`` of times ``t`` ``(B,)`` in [0, 1] (``dim`` even)."""
    freqs = torch.exp(torch.linspace(0.0, math.log(100.0), dim // 2, dtype=t.dtype, device=t.device))
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def gaussian_rbf(distance: Tensor, cutoff: float, num: int) -> Tensor:
    """Gaussian radial basis ``(E, num)`` of distances ``(E,)`` angstrom, centres on [0, cutoff]."""
    centres = torch.linspace(0.0, cutoff, num, dtype=distance.dtype, device=distance.device)
    width = cutoff / (num - 1)
    return torch.exp(-0.5 * ((distance[:, None] - centres[None, :]) / width) ** 2)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


@dataclass(frozen=True)
class AtomView:
    """The atoms a controller's graph is built on: all atoms, or the heavy atoms only.

    Attributes:
        positions: ``(A', 3)`` angstrom.
        atom_features: ``(A', F)``.
        atom_system: ``(A',)`` long, system of every atom (atoms of a system contiguous).
        bond_index: ``(2, E')`` long, bonds between kept atoms, indices into the view.
        bond_features: ``(E', Fb)``.
        torsion_bonds: ``(M, 2)`` long, the rotatable bonds (b, c), indices into the view.
        torsion_system: ``(M,)`` long.
        num_systems: B.
    """

    positions: Tensor
    atom_features: Tensor
    atom_system: Tensor
    bond_index: Tensor
    bond_features: Tensor
    torsion_bonds: Tensor
    torsion_system: Tensor
    num_systems: int

    @property
    def num_atoms(self) -> int:
        return int(self.atom_system.shape[0])


def atom_view(ctx: Any, pos: Tensor, heavy_atoms_only: bool) -> AtomView:
    """The :class:`AtomView` of a torsional context at positions ``pos`` ``(A, 3)``.

    With ``heavy_atoms_only`` hydrogens are left out (their count stays in the atom features),
    which makes the radius graph several times smaller. Rotatable bonds join heavy atoms.
    """
    graph = ctx.graph
    if not heavy_atoms_only:
        return AtomView(
            pos, graph.atom_features, graph.atom_system, graph.bond_index, graph.bond_features,
            ctx.torsion_bonds, ctx.torsion_system, graph.num_systems,
        )
    keep = graph.atomic_numbers > 1
    kept = keep.nonzero().flatten()
    index = torch.full_like(graph.atomic_numbers, -1)
    index[kept] = torch.arange(kept.shape[0], device=kept.device)
    bonds = keep[graph.bond_index[0]] & keep[graph.bond_index[1]]
    torsion_bonds = index[ctx.torsion_bonds]
    if bool((torsion_bonds < 0).any()):
        raise ValueError("a rotatable bond ends on a hydrogen; use heavy_atoms_only=False")
    return AtomView(
        pos[kept], graph.atom_features[kept], graph.atom_system[kept], index[graph.bond_index[:, bonds]],
        graph.bond_features[bonds], torsion_bonds, ctx.torsion_system, graph.num_systems,
    )


class TensorProductConv(nn.Module):
    """One message-passing layer: ``h_dst += Linear(mean_src TP(h_src, Y(r_src->dst); w(edge_attr)))``.

    The tensor product is channel-wise ("uvu", per-edge weights from ``edge_attr``, NequIP style),
    the channel mixing is one shared ``o3.Linear`` after aggregation: cheap on a CPU. The input
    irreps must be a prefix of the output irreps (residual connection by padding) unless
    ``residual`` is False.
    """

    def __init__(
        self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps, edge_dim: int, hidden: int,
        residual: bool = True,
    ):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.residual = residual
        wanted = {ir for _, ir in self.irreps_out}
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(self.irreps_in):
            for i2, (_, ir2) in enumerate(o3.Irreps(irreps_sh)):
                for ir in ir1 * ir2:
                    if ir in wanted:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, o3.Irreps(mid), instructions, shared_weights=False, internal_weights=False
        )
        self.linear = o3.Linear(self.tp.irreps_out, self.irreps_out)
        self.weights = _mlp(edge_dim, hidden, self.tp.weight_numel)

    def forward(self, h: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_attr: Tensor, num_out: int) -> Tensor:
        """Messages from rows ``h[src]`` ``(E, irreps_in.dim)`` to ``num_out`` targets ``dst`` ``(E,)``;
        ``edge_sh`` ``(E, sh)``, ``edge_attr`` ``(E, edge_dim)``. Returns ``(num_out, irreps_out.dim)``."""
        messages = self.tp(h[src], edge_sh, self.weights(edge_attr))
        out = self.linear(scatter(messages, dst, dim=0, dim_size=num_out, reduce="mean"))
        if self.residual:
            out = out + nn.functional.pad(h, (0, self.irreps_out.dim - self.irreps_in.dim))
        return out


@register_controller("torsional")
class TorsionalController(nn.Module):
    """Control ``(M, 1)`` on the M torsions of a batch, from ``t`` ``(B,)`` and torsions ``x`` ``(M, 1)``.

    ``batch.context`` must be a :class:`adjoint_sampling.molecular.context.TorsionalContext`.

    Args:
        num_atom_features / num_bond_features: widths of the graph features.
        scalars / vectors: channels per scalar irrep and per l>0 irrep.
        num_layers: tensor-product convolutions (1 to 4).
        cutoff: radius graph and bond readout cutoff (angstrom).
        num_rbf: Gaussians in the distance expansion.
        time_dim: width of the time embedding (even).
        heavy_atoms_only: build the graph on heavy atoms only (hydrogens enter as the H-count
            feature of their heavy atom): several times cheaper, hydrogens unseen.
    """

    def __init__(
        self,
        num_atom_features: int,
        num_bond_features: int,
        scalars: int = 16,
        vectors: int = 4,
        num_layers: int = 2,
        cutoff: float = 4.0,
        num_rbf: int = 12,
        time_dim: int = 16,
        hidden: int = 32,
        heavy_atoms_only: bool = False,
    ):
        super().__init__()
        if not 1 <= num_layers <= 4:
            raise ValueError(f"num_layers must be 1..4, got {num_layers}")
        self.hparams: dict[str, Any] = dict(
            num_atom_features=num_atom_features, num_bond_features=num_bond_features, scalars=scalars,
            vectors=vectors, num_layers=num_layers, cutoff=cutoff, num_rbf=num_rbf, time_dim=time_dim, hidden=hidden,
            heavy_atoms_only=bool(heavy_atoms_only),
        )
        self.heavy_atoms_only = bool(heavy_atoms_only)
        self.cutoff, self.num_rbf, self.time_dim = float(cutoff), int(num_rbf), int(time_dim)
        ns, nv = scalars, vectors
        self.irreps_sh = o3.Irreps.spherical_harmonics(2)
        irreps_seq = [
            f"{ns}x0e",
            f"{ns}x0e + {nv}x1o + {nv}x2e",
            f"{ns}x0e + {nv}x1o + {nv}x2e + {nv}x1e + {nv}x2o",
            f"{ns}x0e + {nv}x1o + {nv}x2e + {nv}x1e + {nv}x2o + {ns}x0o",
        ]
        self.node_embedding = _mlp(num_atom_features + time_dim, hidden, ns)
        edge_dim = num_rbf + num_bond_features + 1 + time_dim
        self.edge_embedding = _mlp(edge_dim, hidden, hidden)
        self.convs = nn.ModuleList(
            TensorProductConv(o3.Irreps(irreps_seq[min(i, 3)]), self.irreps_sh, o3.Irreps(irreps_seq[min(i + 1, 3)]), hidden, hidden)
            for i in range(num_layers)
        )
        # bond-centred readout: Y(r_atom - bond centre) x Y_2(bond axis) -> ns x 0o + ns x 0e
        self.bond_sh = o3.FullTensorProduct(self.irreps_sh, "1x2e", filter_ir_out=[o3.Irrep(l, p) for l in range(3) for p in (1, -1)])
        self.readout = TensorProductConv(
            o3.Irreps(irreps_seq[min(num_layers, 3)]), self.bond_sh.irreps_out, o3.Irreps(f"{ns}x0o + {ns}x0e"),
            num_rbf + time_dim, hidden, residual=False,
        )
        self.gate = _mlp(ns + time_dim, hidden, ns)
        self.scalars = ns

    def forward(self, t: Tensor, x: Tensor, batch: Any) -> Tensor:
        ctx = batch.context
        dtype = self.gate[0].weight.dtype
        view = atom_view(ctx, ctx.positions(x.to(dtype)).to(dtype), self.heavy_atoms_only)
        pos = view.positions
        t_emb = time_embedding(t.to(dtype), self.time_dim)
        atom_t = t_emb[view.atom_system]
        h = self.node_embedding(torch.cat([view.atom_features.to(dtype), atom_t], dim=-1))

        edges, bond_attr, is_bond = self._edges(view)
        vec = pos[edges[1]] - pos[edges[0]]
        dist = vec.norm(dim=-1)
        edge_attr = self.edge_embedding(
            torch.cat([gaussian_rbf(dist, self.cutoff, self.num_rbf), bond_attr.to(dtype), is_bond[:, None].to(dtype), atom_t[edges[0]]], dim=-1)
        )
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        for conv in self.convs:
            h = conv(h, edges[0], edges[1], edge_sh, edge_attr, h.shape[0])

        return self._bond_readout(h, view, t_emb)

    def _edges(self, view: AtomView) -> tuple[Tensor, Tensor, Tensor]:
        """Bond edges (with features) plus non-bonded pairs within the cutoff (zero features)."""
        radius = pairs_within_systems(view.atom_system, view.positions, self.cutoff)
        num_atoms = view.num_atoms
        bond_keys = view.bond_index[0] * num_atoms + view.bond_index[1]
        nonbond = radius[:, ~torch.isin(radius[0] * num_atoms + radius[1], bond_keys)]
        edges = torch.cat([view.bond_index, nonbond], dim=1)
        bond_attr = torch.cat([view.bond_features, view.bond_features.new_zeros((nonbond.shape[1], view.bond_features.shape[1]))])
        is_bond = torch.cat([torch.ones(view.bond_index.shape[1], dtype=torch.bool), torch.zeros(nonbond.shape[1], dtype=torch.bool)])
        return edges, bond_attr, is_bond.to(view.positions.device)

    def _bond_readout(self, h: Tensor, view: AtomView, t_emb: Tensor) -> Tensor:
        """One pseudoscalar per torsion row: ``(M, 1)``."""
        num_torsions = view.torsion_bonds.shape[0]
        pos = view.positions
        if num_torsions == 0:
            return pos.new_zeros((0, 1))
        b, c = view.torsion_bonds[:, 0], view.torsion_bonds[:, 1]
        centre = 0.5 * (pos[b] + pos[c])
        axis = pos[c] - pos[b]
        # candidate (torsion, atom) pairs: all atoms of the torsion's system within the cutoff
        counts = degree(view.atom_system, view.num_systems, dtype=torch.long)
        starts = torch.cumsum(counts, 0) - counts
        max_n = int(counts.max())
        offsets = torch.arange(max_n, device=pos.device)
        atom = starts[view.torsion_system][:, None] + offsets[None, :]
        valid = offsets[None, :] < counts[view.torsion_system][:, None]
        atom = torch.where(valid, atom, torch.zeros_like(atom))
        rel = pos[atom] - centre[:, None, :]
        valid &= rel.norm(dim=-1) < self.cutoff
        tor_idx, slot = valid.nonzero(as_tuple=True)
        atom_idx = atom[tor_idx, slot]
        rel = rel[tor_idx, slot]

        axis_sh = o3.spherical_harmonics("2e", axis, normalize=True, normalization="component")
        edge_sh = o3.spherical_harmonics(self.irreps_sh, rel, normalize=True, normalization="component")
        combined = self.bond_sh(edge_sh, axis_sh[tor_idx])
        tor_t = t_emb[view.torsion_system]
        weights_in = torch.cat([gaussian_rbf(rel.norm(dim=-1), self.cutoff, self.num_rbf), tor_t[tor_idx]], dim=-1)
        out = self.readout(h, atom_idx, tor_idx, combined, weights_in, num_torsions)
        pseudo, invariant = out[:, : self.scalars], out[:, self.scalars :]
        gate = self.gate(torch.cat([invariant, tor_t], dim=-1))
        return (pseudo * gate).sum(dim=-1, keepdim=True)
