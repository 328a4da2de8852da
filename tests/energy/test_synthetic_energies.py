"""DW-4 and LJ energies: values at known configurations and gradients."""

import math

import pytest
import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.synthetic import (
    DoubleWellEnergy,
    LennardJonesEnergy,
    build_synthetic_energy,
    pairwise_distances,
)


def test_dw4_values():
    dw = build_synthetic_energy("dw4")
    assert dw.params() == {"name": "dw4", "n_particles": 4, "dim": 2, "a": 0.0, "b": -4.0, "c": 0.9, "d0": 4.0,
                           "tau": 1.0}
    # square of side s: 4 sides and 2 diagonals
    s = 3.0
    x = torch.tensor([[[0, 0], [s, 0], [s, s], [0, s]]], dtype=torch.float64)
    pair = lambda d: -4.0 * (d - 4) ** 2 + 0.9 * (d - 4) ** 4
    assert float(dw.energy(x)) == pytest.approx(4 * pair(s) + 2 * pair(s * math.sqrt(2)))
    # per-pair minimum at d0 +- sqrt(-b / (2c))
    y = math.sqrt(4.0 / 1.8)
    two = torch.tensor([[[0, 0], [4 + y, 0]]], dtype=torch.float64)
    e, g = DoubleWellEnergy(n_particles=2).energy_and_grad(two)
    assert float(e) == pytest.approx(-4.0 * y**2 + 0.9 * y**4) and float(g.abs().max()) < 1e-9


def test_lj_values():
    lj = build_synthetic_energy("lj13")
    assert lj.params()["epsilon"] == 1.0 and lj.params()["r_m"] == 1.0 and lj.params()["harmonic"] == 1.0
    # a pair at r_m: LJ energy -eps; harmonic: 0.5 * 2 * 0.5^2 = 0.25
    two = LennardJonesEnergy(n_particles=2)
    x = torch.tensor([[[0.5, 0, 0], [-0.5, 0, 0]]], dtype=torch.float64)
    assert float(two.energy(x)) == pytest.approx(-1.0 + 0.25)
    # translation invariance (harmonic term acts on the centred positions)
    assert float(two.energy(x + 3.0)) == pytest.approx(-0.75)
    assert build_synthetic_energy("lj55").n_particles == 55
    with pytest.raises(ConfigError, match="unknown synthetic system"):
        build_synthetic_energy("lj38")


@pytest.mark.parametrize("system", ["dw4", "lj13"])
def test_gradient_matches_finite_differences(system):
    e = build_synthetic_energy(system)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, e.n_particles, e.dim, generator=gen, dtype=torch.float64) * (2.0 if system == "dw4" else 1.2)
    _, grad = e.energy_and_grad(x)
    h = 1e-6
    for idx in [(0, 0, 0), (1, 2, 1), (0, e.n_particles - 1, e.dim - 1)]:
        xp, xm = x.clone(), x.clone()
        xp[idx] += h
        xm[idx] -= h
        fd = (e.energy(xp)[idx[0]] - e.energy(xm)[idx[0]]) / (2 * h)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=2e-4, abs=1e-5)


def test_pairwise_distances():
    x = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]])
    assert torch.allclose(pairwise_distances(x), torch.tensor([[5.0, 1.0, math.sqrt(9 + 9)]]))
