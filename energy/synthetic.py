"""Synthetic particle energies of the Adjoint Sampling paper (DEM / FAB conventions).

All energies are dimensionless (temperature ``tau = 1``), batched: positions ``(B, n, D)`` ->
energies ``(B,)``; gradients by autograd.

- DW-4: 4 particles in 2D, ``E = sum_{i<j} a (d_ij - d0) + b (d_ij - d0)^2 + c (d_ij - d0)^4``
  with ``a = 0, b = -4, c = 0.9, d0 = 4``.
- LJ-n (n = 13, 55), 3D: ``E = k * eps * sum_{i<j} [(r_m / d_ij)^12 - 2 (r_m / d_ij)^6]
  + (c / 2) sum_i ||x_i - x_com||^2`` with ``eps = 1, r_m = 1, c = 1``. ``k = 2`` under the
  default ``pair_sum="ordered"``: the Lennard-Jones term summed over all ordered pairs ``i != j``,
  the convention of the code base whose LJ-13 / LJ-55 test sets the papers use; ``k = 1`` under
  ``pair_sum="unordered"`` (our convention before that was checked; a hotter system). Distances
  are clamped below at ``min_distance = 1e-2`` (only matters for collapsed, astronomically
  unlikely states).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError

__all__ = ["ParticleEnergy", "DoubleWellEnergy", "LennardJonesEnergy", "build_synthetic_energy", "SYNTHETIC_SYSTEMS",
           "PAIR_SUMS", "pairwise_distances", "synthetic_energy_from_params"]

PAIR_SUMS = {"ordered": 2.0, "unordered": 1.0}
"""Lennard-Jones pair conventions -> factor on the ``i < j`` sum."""


def pairwise_distances(x: Tensor) -> Tensor:
    """Distances of all pairs ``i < j``: ``(B, n, D)`` -> ``(B, n (n - 1) / 2)``."""
    n = x.shape[-2]
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    return (x[..., i, :] - x[..., j, :]).norm(dim=-1)


class ParticleEnergy(ABC):
    """An energy of ``n_particles`` points in ``dim`` dimensions at temperature ``tau``."""

    name: str = "abstract"
    n_particles: int
    dim: int
    tau: float = 1.0

    @abstractmethod
    def energy(self, x: Tensor) -> Tensor:
        """``x`` (B, n, D) -> energy (B,)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The exact parameters (for checkpoints and RESULTS.md)."""

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Energy (B,) and dE/dx (B, n, D), no graph kept."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            e = self.energy(xg)
            (grad,) = torch.autograd.grad(e.sum(), xg)
        return e.detach(), grad.detach()


class DoubleWellEnergy(ParticleEnergy):
    """Multi-particle double well (DW-4 with the defaults)."""

    def __init__(self, n_particles: int = 4, dim: int = 2, a: float = 0.0, b: float = -4.0, c: float = 0.9,
                 d0: float = 4.0, tau: float = 1.0) -> None:
        self.name = f"dw{n_particles}"
        self.n_particles, self.dim = int(n_particles), int(dim)
        self.a, self.b, self.c, self.d0, self.tau = float(a), float(b), float(c), float(d0), float(tau)

    def energy(self, x: Tensor) -> Tensor:
        y = pairwise_distances(x) - self.d0
        return (self.a * y + self.b * y**2 + self.c * y**4).sum(-1)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "n_particles": self.n_particles, "dim": self.dim, "a": self.a, "b": self.b,
                "c": self.c, "d0": self.d0, "tau": self.tau}


class LennardJonesEnergy(ParticleEnergy):
    """Lennard-Jones cluster with a harmonic pull towards the centre of mass; ``pair_sum`` is
    ``"ordered"`` (all pairs ``i != j``, the papers' test sets) or ``"unordered"`` (``i < j``)."""

    def __init__(self, n_particles: int = 13, dim: int = 3, epsilon: float = 1.0, r_m: float = 1.0,
                 harmonic: float = 1.0, tau: float = 1.0, min_distance: float = 1e-2,
                 pair_sum: str = "ordered") -> None:
        if pair_sum not in PAIR_SUMS:
            raise ConfigError(f"unknown Lennard-Jones pair_sum {pair_sum!r}; choose one of {sorted(PAIR_SUMS)}")
        self.name = f"lj{n_particles}"
        self.n_particles, self.dim = int(n_particles), int(dim)
        self.epsilon, self.r_m, self.harmonic, self.tau = float(epsilon), float(r_m), float(harmonic), float(tau)
        self.min_distance, self.pair_sum = float(min_distance), pair_sum

    def energy(self, x: Tensor) -> Tensor:
        s6 = (self.r_m / pairwise_distances(x).clamp(min=self.min_distance)) ** 6
        lj = PAIR_SUMS[self.pair_sum] * self.epsilon * (s6 * s6 - 2.0 * s6).sum(-1)
        centred = x - x.mean(dim=-2, keepdim=True)
        return lj + 0.5 * self.harmonic * centred.pow(2).sum(dim=(-2, -1))

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "n_particles": self.n_particles, "dim": self.dim, "epsilon": self.epsilon,
                "r_m": self.r_m, "harmonic": self.harmonic, "tau": self.tau, "min_distance": self.min_distance,
                "pair_sum": self.pair_sum}


SYNTHETIC_SYSTEMS = ("dw4", "lj13", "lj55")


def build_synthetic_energy(system: str, pair_sum: str = "ordered") -> ParticleEnergy:
    """``"dw4"``, ``"lj13"`` or ``"lj55"`` with the paper's parameters; ``pair_sum`` is the
    Lennard-Jones convention (ignored by DW-4)."""
    if system == "dw4":
        return DoubleWellEnergy()
    if system == "lj13":
        return LennardJonesEnergy(13, pair_sum=pair_sum)
    if system == "lj55":
        return LennardJonesEnergy(55, pair_sum=pair_sum)
    raise ConfigError(f"unknown synthetic system {system!r}; choose one of {SYNTHETIC_SYSTEMS}")


def synthetic_energy_from_params(params: dict[str, Any]) -> ParticleEnergy:
    """Rebuild an energy from its :meth:`ParticleEnergy.params` (as stored in checkpoints and
    reference files). Lennard-Jones parameters without ``pair_sum`` were written before the
    option existed, when the sum was over ``i < j``: they read as ``"unordered"``."""
    kwargs = {k: v for k, v in params.items() if k != "name"}
    name = str(params.get("name", ""))
    try:
        if name.startswith("dw"):
            return DoubleWellEnergy(**kwargs)
        if name.startswith("lj"):
            return LennardJonesEnergy(**{"pair_sum": "unordered", **kwargs})
    except TypeError as exc:
        raise ConfigError(f"synthetic energy parameters {params} do not fit {name!r}: {exc}") from None
    raise ConfigError(f"unknown synthetic energy {name!r} in {params}")
