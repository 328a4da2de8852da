"""Configurational temperature: 1 on exact samples, the true temperature on a harmonic well, and an
exact Laplacian."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from trainer_helpers import REPO

from adjoint_sampling.benchmarks.synthetic.configurational_temperature import (
    configurational_temperature,
    gradient_norms_and_laplacians,
)
from adjoint_sampling.energy.synthetic import ParticleEnergy, build_synthetic_energy

REFERENCES = REPO / "benchmarks" / "synthetic" / "references"


class _Harmonic(ParticleEnergy):
    """``E = |x|^2 / (2 s^2)``: at temperature T its samples are Gaussian with variance ``T s^2``."""

    name = "harmonic"

    def __init__(self, scale: float) -> None:
        self.n_particles, self.dim, self.scale = 3, 2, scale

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).sum(dim=(-2, -1)) / (2 * self.scale**2)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "scale": self.scale}


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_harmonic_samples_give_their_temperature(temperature):
    energy = _Harmonic(scale=0.7)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, 2, generator=gen, dtype=torch.float64) * 0.7 * temperature**0.5
    assert configurational_temperature(energy, x) == pytest.approx(temperature, rel=0.03)


@pytest.mark.parametrize("system", ["dw4", "lj13"])
def test_reference_samples_are_at_the_target_temperature(system):
    reference = torch.load(REFERENCES / f"{system}.pt", weights_only=False)
    energy = build_synthetic_energy(system)
    assert configurational_temperature(energy, reference["samples"][:2000]) == pytest.approx(1.0, abs=0.05)


def test_samples_pushed_towards_minima_read_cold():
    """A few gradient-descent steps on exact DW-4 samples crowd them at the minima: below 1."""
    energy = build_synthetic_energy("dw4")
    x = torch.load(REFERENCES / "dw4.pt", weights_only=False)["samples"][:1000].double()
    for _ in range(20):
        _, grad = energy.energy_and_grad(x)
        x = x - 0.01 * grad
    assert configurational_temperature(energy, x) < 0.8


def test_laplacian_matches_finite_differences():
    energy = build_synthetic_energy("lj13")
    x = torch.load(REFERENCES / "lj13.pt", weights_only=False)["samples"][:3].double()
    norms, laplacians = gradient_norms_and_laplacians(energy, x, chunk=2)
    _, grad = energy.energy_and_grad(x)
    assert torch.allclose(norms, grad.pow(2).sum(dim=(-2, -1)))
    h = 1e-4
    flat = x.flatten(1)
    fd = torch.zeros(3, dtype=torch.float64)
    for j in range(flat.shape[1]):
        step = torch.zeros_like(flat)
        step[:, j] = h
        plus = energy.energy((flat + step).view_as(x))
        minus = energy.energy((flat - step).view_as(x))
        fd += (plus - 2 * energy.energy(x) + minus) / h**2
    assert torch.allclose(laplacians, fd, rtol=1e-4)
