"""Hyper-parameters of the GNN potentials (:mod:`energy.gnn_model`), stored in their checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adjoint_sampling.core.errors import ConfigError

__all__ = ["ARCHITECTURES", "DEFAULT_ELEMENTS", "GNNHParams"]

ARCHITECTURES: tuple[str, ...] = ("nequip", "mace")
DEFAULT_ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
"""H C N O F P S Cl Br I."""


@dataclass(frozen=True)
class GNNHParams:
    """Hyper-parameters of :class:`GNNPotential` (stored in checkpoints).

    Attributes:
        architecture: one of :data:`ARCHITECTURES`.
        elements: supported atomic numbers, in embedding order.
        min_charge / max_charge: range of total charges with an embedding row.
        num_scalars / num_vectors: multiplicities of the ``0e`` and ``1o`` node features (MACE: channels
            ``num_scalars`` for every degree up to 1; ``num_vectors`` 0 means scalars only).
        num_layers: interaction layers.
        lmax: largest degree of the edge spherical harmonics (1 or 2).
        cutoff: neighbour cutoff, angstrom.
        num_basis: Bessel radial basis functions.
        radial_hidden: width of the radial MLP.
        avg_num_neighbors: messages are summed and divided by its square root.
        envelope_p: exponent of the polynomial cutoff envelope.
        correlation: MACE body order of the product basis (ignored by ``nequip``).
        smooth_messages: ``nequip`` multiplies each message's radial weights by the cutoff envelope,
            so that energies are continuous when atoms cross the cutoff. False only for checkpoints of
            format 1 (their energies jump by up to ~0.2 kcal/mol there, which stalled relaxations).
    """

    architecture: str = "nequip"
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
    correlation: int = 3
    smooth_messages: bool = True

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown GNN architecture {self.architecture!r} (known: {', '.join(ARCHITECTURES)})")
        if self.min_charge > self.max_charge or self.num_layers < 1 or self.num_scalars < 1 or self.cutoff <= 0:
            raise ConfigError(f"invalid GNN hyper-parameters {self}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["elements"] = list(self.elements)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GNNHParams:
        data = dict(data)
        data["elements"] = tuple(int(z) for z in data.get("elements", DEFAULT_ELEMENTS))
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown GNN hyper-parameter(s) {', '.join(unknown)}")
        return cls(**data)
