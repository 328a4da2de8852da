"""A small NequIP-style interatomic potential built from e3nn parts, for fast CPU energies and forces.

Conformers of one molecule are batched: positions ``(B, N, 3)`` angstrom, atomic numbers ``(N,)``,
one total charge. Edges join all atom pairs of a conformer closer than ``cutoff`` (plain torch, no
radius-graph library). Each layer sends ``TensorProduct(h_src, Y(r_hat))`` messages weighted by a
radial MLP of a Bessel basis times a smooth polynomial envelope (so the energy is smooth at the
cutoff), mixes channels with ``o3.Linear`` after aggregation, adds a self-connection and applies a
``Gate``. Per-atom scalars are read out to per-atom energies; the total energy is their sum plus a
float64 per-element reference (fitted by the trainer). The total charge is embedded and added to
every atom's initial features. Forces are ``-dE/dx`` by autograd (energy-conserving).

Units: angstrom in, kcal/mol out. The network runs in its parameters' dtype (float32 by default);
the per-element reference sum is added in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import Gate
from torch import Tensor, nn

__all__ = [
    "DEFAULT_ELEMENTS", "GNNHParams", "GNNPotential", "energy_and_forces", "neighbour_pairs", "polynomial_envelope"
]

DEFAULT_ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
"""H C N O F P S Cl Br I."""


@dataclass(frozen=True)
class GNNHParams:
    """Hyper-parameters of :class:`GNNPotential` (stored in checkpoints).

    Attributes:
        elements: supported atomic numbers, in embedding order.
        min_charge / max_charge: range of total charges with an embedding row.
        num_scalars / num_vectors: multiplicities of the ``0e`` and ``1o`` node features.
        num_layers: interaction layers.
        lmax: largest degree of the edge spherical harmonics (1 or 2).
        cutoff: neighbour cutoff, angstrom.
        num_basis: Bessel radial basis functions.
        radial_hidden: width of the radial MLP.
        avg_num_neighbors: messages are summed and divided by its square root.
        envelope_p: exponent of the polynomial cutoff envelope.
    """

    elements: tuple[int, ...] = DEFAULT_ELEMENTS
    min_charge: int = -2
    max_charge: int = 2
    num_scalars: int = 16
    num_vectors: int = 8
    num_layers: int = 2
    lmax: int = 1
    cutoff: float = 5.0
    num_basis: int = 8
    radial_hidden: int = 16
    avg_num_neighbors: float = 20.0
    envelope_p: int = 6

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["elements"] = list(self.elements)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GNNHParams:
        data = dict(data)
        data["elements"] = tuple(int(z) for z in data.get("elements", DEFAULT_ELEMENTS))
        return cls(**data)


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


def neighbour_pairs(positions: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    """Directed pairs ``(src, dst)`` ``(E,)`` long of flattened atoms ``b * N + i`` closer than ``cutoff``.

    ``positions`` is ``(B, N, 3)`` angstrom; pairs never cross conformers. The selection is not
    differentiated (the envelope makes the energy smooth where pairs enter or leave).
    """
    n = positions.shape[1]
    with torch.no_grad():
        dist = torch.cdist(positions, positions)
        mask = dist < cutoff
        mask &= ~torch.eye(n, dtype=torch.bool, device=positions.device)
        b, i, j = mask.nonzero(as_tuple=True)
    return b * n + j, b * n + i


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

    def forward(self, x: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_radial: Tensor) -> Tensor:
        """``x`` ``(A, irreps_in)``; ``edge_sh`` ``(E, sh)``; ``edge_radial`` ``(E, num_basis)`` (enveloped)."""
        h = self.linear_in(x)
        messages = self.tp(h[src], edge_sh, self.radial(edge_radial))
        agg = torch.zeros(x.shape[0], messages.shape[1], dtype=messages.dtype, device=messages.device)
        agg.index_add_(0, dst, messages)
        out = self.gate(self.linear_out(agg * self.norm) + self.self_connection(x))
        return out + x if self.residual else out


class GNNPotential(nn.Module):
    """Energies ``(B,)`` kcal/mol float64 of conformers ``(B, N, 3)`` angstrom of one molecule.

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

    def species(self, atomic_numbers: Tensor) -> Tensor:
        """Embedding rows ``(N,)`` of ``atomic_numbers`` ``(N,)`` (all must be in ``hparams.elements``)."""
        return self.species_index[atomic_numbers]

    def forward(self, positions: Tensor, atomic_numbers: Tensor, charge: int) -> Tensor:
        """Energies ``(B,)`` float64 kcal/mol; ``positions`` ``(B, N, 3)`` angstrom, ``atomic_numbers`` ``(N,)``."""
        hp = self.hparams
        batch, n, _ = positions.shape
        dtype = self.species_embedding.weight.dtype
        pos = positions.to(dtype)
        species = self.species(atomic_numbers)
        charge_row = torch.tensor(int(charge) - hp.min_charge, device=pos.device)
        x0 = self.species_embedding(species) + self.charge_embedding(charge_row)[None, :]
        x = x0.repeat(batch, 1)
        src, dst = neighbour_pairs(pos, hp.cutoff)
        flat = pos.reshape(batch * n, 3)
        vec = flat[src] - flat[dst]
        length = vec.norm(dim=1)
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        basis = soft_one_hot_linspace(length, 0.0, hp.cutoff, hp.num_basis, basis="bessel", cutoff=True)
        edge_radial = basis * polynomial_envelope(length / hp.cutoff, hp.envelope_p)[:, None]
        for layer in self.layers:
            x = layer(x, src, dst, edge_sh, edge_radial)
        atom_energy = self.readout(x[:, : hp.num_scalars]).reshape(batch, n)
        reference = self.atom_reference[species].sum()
        return reference + self.energy_scale * atom_energy.sum(dim=1).to(torch.float64)


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

