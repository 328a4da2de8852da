"""GNN interatomic potentials built from kept libraries, for fast CPU energies and forces.

Two architectures behind one :class:`GNNPotential` (chosen by ``GNNHParams.architecture``):

- ``"nequip"``: a small NequIP-style network of e3nn parts. Each layer sends
  ``TensorProduct(h_src, Y(r_hat))`` messages weighted by a radial MLP of a Bessel basis times a
  smooth polynomial envelope (smooth at the cutoff), mixes channels with ``o3.Linear`` after
  aggregation, adds a self-connection and applies a ``Gate``; per-atom scalars are read out.
- ``"mace"``: mace-torch's MACE (higher body-order messages), see :mod:`energy.gnn_mace`.

Both read a :class:`~adjoint_sampling.energy.gnn_graph.ConformerGraph` (conformers of any molecules
as one graph) and return per-atom energies; the total energy is their sum times a fitted scale
plus a float64 per-element reference (fitted by the trainer). The total charge is an input
(embedded and added to every atom's features). Forces are ``-dE/dx`` by autograd (energy-conserving).

Units: angstrom in, kcal/mol out. The network runs in its parameters' dtype (float32 by default);
the scale and per-element reference are applied in float64.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import Gate
from torch import Tensor, nn

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.gnn_graph import ConformerGraph, conformer_graph
from adjoint_sampling.energy.gnn_hparams import ARCHITECTURES, DEFAULT_ELEMENTS, GNNHParams

__all__ = [
    "ARCHITECTURES", "DEFAULT_ELEMENTS", "GNNHParams", "GNNPotential", "NequIPNetwork", "build_network",
    "energy_and_forces", "polynomial_envelope",
]

def polynomial_envelope(x: Tensor, p: int) -> Tensor:
    """NequIP's smooth cutoff ``u(x)`` of ``x = r / cutoff`` (any shape): 1 at 0, 0 with p-1 zero
    derivatives at 1, 0 beyond."""
    out = (
        1.0
        - (p + 1.0) * (p + 2.0) / 2.0 * x.pow(p)
        + p * (p + 2.0) * x.pow(p + 1)
        - p * (p + 1.0) / 2.0 * x.pow(p + 2)
    )
    return out * (x < 1.0)


class Interaction(nn.Module):
    """One message-passing layer: ``(A, irreps_in) -> (A, irreps_out)`` (gated, residual when shapes match).

    ``irreps_out`` is ``num_scalars x 0e + num_vectors x 1o``, or ``num_scalars x 0e`` with ``scalars_only``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, hp: GNNHParams, scalars_only: bool = False) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        scalars = o3.Irreps(f"{hp.num_scalars}x0e")
        if scalars_only:  # the last layer: only the scalars are read out, so no vectors are computed
            self.gate = Gate(scalars, [nn.functional.silu], "", [], "")
        else:
            vectors = o3.Irreps(f"{hp.num_vectors}x1o")
            self.gate = Gate(scalars, [nn.functional.silu], f"{hp.num_vectors}x0e", [torch.sigmoid], vectors)
        self.irreps_out = self.gate.irreps_out
        wanted = {ir for _, ir in self.gate.irreps_in}
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(self.irreps_in):
            for i2, (_, ir2) in enumerate(irreps_sh):
                for ir_out in ir1 * ir2:
                    if ir_out in wanted:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        self.tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, o3.Irreps(mid), instructions, shared_weights=False, internal_weights=False
        )
        self.radial = nn.Sequential(
            nn.Linear(hp.num_basis, hp.radial_hidden), nn.SiLU(), nn.Linear(hp.radial_hidden, self.tp.weight_numel)
        )
        self.linear_in = o3.Linear(self.irreps_in, self.irreps_in)
        self.linear_out = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.self_connection = o3.Linear(self.irreps_in, self.gate.irreps_in)
        self.norm = 1.0 / math.sqrt(hp.avg_num_neighbors)
        self.residual = self.irreps_in == self.irreps_out

    def forward(
        self, x: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_radial: Tensor, envelope: Tensor | None
    ) -> Tensor:
        """``x`` ``(A, irreps_in)``; ``edge_sh`` ``(E, sh)``; ``edge_radial`` ``(E, num_basis)`` (enveloped);
        ``envelope`` ``(E,)``: multiplies the radial MLP's output, so that a message (the MLP has biases)
        vanishes smoothly at the cutoff; None only for checkpoints of format 1, trained without it."""
        h = self.linear_in(x)
        weights = self.radial(edge_radial)
        if envelope is not None:
            weights = weights * envelope[:, None]
        messages = self.tp(h[src], edge_sh, weights)
        agg = torch.zeros(x.shape[0], messages.shape[1], dtype=messages.dtype, device=messages.device)
        agg.index_add_(0, dst, messages)
        out = self.gate(self.linear_out(agg * self.norm) + self.self_connection(x))
        return out + x if self.residual else out


class NequIPNetwork(nn.Module):
    """Per-atom energies ``(A,)`` of a :class:`ConformerGraph`: species and charge embedding, gated
    tensor-product interactions, a scalar MLP readout (architecture ``"nequip"``)."""

    def __init__(self, hp: GNNHParams) -> None:
        super().__init__()
        self.hparams = hp
        self.species_embedding = nn.Embedding(len(hp.elements), hp.num_scalars)
        self.charge_embedding = nn.Embedding(hp.max_charge - hp.min_charge + 1, hp.num_scalars)
        self.irreps_sh = o3.Irreps.spherical_harmonics(hp.lmax)
        irreps = o3.Irreps(f"{hp.num_scalars}x0e")
        layers = []
        for k in range(hp.num_layers):
            layer = Interaction(irreps, self.irreps_sh, hp, scalars_only=k == hp.num_layers - 1)
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        self.readout = nn.Sequential(
            nn.Linear(hp.num_scalars, hp.num_scalars), nn.SiLU(), nn.Linear(hp.num_scalars, 1)
        )

    def forward(self, graph: ConformerGraph) -> Tensor:
        """Per-atom energies ``(A,)`` (network dtype, before the energy scale)."""
        hp = self.hparams
        charge_rows = (graph.charge - hp.min_charge)[graph.conformer]
        x = self.species_embedding(graph.species) + self.charge_embedding(charge_rows)
        vec = graph.edge_vectors()
        length = vec.norm(dim=1)
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        basis = soft_one_hot_linspace(length, 0.0, hp.cutoff, hp.num_basis, basis="bessel", cutoff=True)
        envelope = polynomial_envelope(length / hp.cutoff, hp.envelope_p)
        edge_radial = basis * envelope[:, None]
        message_envelope = envelope if hp.smooth_messages else None
        for layer in self.layers:
            x = layer(x, graph.src, graph.dst, edge_sh, edge_radial, message_envelope)
        return self.readout(x[:, : hp.num_scalars]).squeeze(-1)


def build_network(hp: GNNHParams) -> nn.Module:
    """The network of ``hp.architecture``: a module mapping a :class:`ConformerGraph` to per-atom energies ``(A,)``.

    Raises:
        ConfigError: an unknown architecture, or ``"mace"`` without the mace-torch package.
    """
    if hp.architecture == "nequip":
        return NequIPNetwork(hp)
    if hp.architecture == "mace":
        from adjoint_sampling.energy.gnn_mace import MACENetwork

        return MACENetwork(hp)
    raise ConfigError(f"unknown GNN architecture {hp.architecture!r} (known: {', '.join(ARCHITECTURES)})")


class GNNPotential(nn.Module):
    """Energies (float64, kcal/mol) of conformers: a network's per-atom energies times ``energy_scale``,
    summed per conformer, plus a float64 per-element reference.

    Buffers fitted outside gradient descent: ``atom_reference`` ``(S,)`` float64 kcal/mol per element,
    ``energy_scale`` (scales the network's per-atom output, kcal/mol).
    """

    def __init__(self, hparams: GNNHParams | None = None) -> None:
        super().__init__()
        hp = hparams or GNNHParams()
        self.hparams = hp
        index = torch.full((max(hp.elements) + 1,), -1, dtype=torch.long)
        index[list(hp.elements)] = torch.arange(len(hp.elements))
        self.register_buffer("species_index", index, persistent=False)
        self.register_buffer("atom_reference", torch.zeros(len(hp.elements), dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.network = build_network(hp)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    def species(self, atomic_numbers: Tensor) -> Tensor:
        """Embedding rows ``(N,)`` of ``atomic_numbers`` ``(N,)`` (all must be in ``hparams.elements``)."""
        return self.species_index[atomic_numbers.to(self.species_index.device)]

    def graph(self, positions: Tensor, atomic_numbers: Tensor, charge: int, molecule: int = 0) -> ConformerGraph:
        """The :class:`ConformerGraph` of conformers ``(B, N, 3)`` angstrom of one molecule (cast to the network dtype)."""
        return conformer_graph(positions.to(self.dtype), self.species(atomic_numbers), charge, self.hparams.cutoff,
                               molecule)

    def graph_energy(self, graph: ConformerGraph) -> Tensor:
        """Energies ``(C,)`` float64 kcal/mol of the conformers of ``graph``."""
        atom = self.network(graph).to(torch.float64) * self.energy_scale + self.atom_reference[graph.species]
        out = torch.zeros(graph.num_conformers, dtype=torch.float64, device=atom.device)
        return out.index_add(0, graph.conformer, atom)

    def forward(self, positions: Tensor, atomic_numbers: Tensor, charge: int) -> Tensor:
        """Energies ``(B,)`` float64 kcal/mol; ``positions`` ``(B, N, 3)`` angstrom, ``atomic_numbers`` ``(N,)``."""
        return self.graph_energy(self.graph(positions, atomic_numbers, charge))


def energy_and_forces(
    model: GNNPotential, positions: Tensor, atomic_numbers: Tensor, charge: int, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Energies ``(B,)`` float64 kcal/mol and forces ``-dE/dx`` ``(B, N, 3)`` kcal/mol/angstrom (positions' dtype).

    With ``create_graph`` the forces stay differentiable (training on forces).
    """
    pos = positions.detach().requires_grad_(True)
    with torch.enable_grad():
        energy = model(pos, atomic_numbers, charge)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    return energy, -grad

