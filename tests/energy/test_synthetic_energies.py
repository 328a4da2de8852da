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
    synthetic_energy_from_params,
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
    # a pair at r_m: LJ energy -eps per ordered pair (two of them); harmonic: 0.5 * 2 * 0.5^2 = 0.25
    two = LennardJonesEnergy(n_particles=2)
    x = torch.tensor([[[0.5, 0, 0], [-0.5, 0, 0]]], dtype=torch.float64)
    assert float(two.energy(x)) == pytest.approx(-2.0 + 0.25)
    # translation invariance (harmonic term acts on the centred positions)
    assert float(two.energy(x + 3.0)) == pytest.approx(-1.75)
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


def _icosahedral_cluster() -> torch.Tensor:
    """13 points: a centre and the 12 vertices of an icosahedron of circumradius 1, (1, 13, 3)."""
    phi = (1 + 5**0.5) / 2
    verts = [(0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)]
    verts += [(s1, s2 * phi, 0) for s1 in (-1, 1) for s2 in (-1, 1)]
    verts += [(s2 * phi, 0, s1) for s1 in (-1, 1) for s2 in (-1, 1)]
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), v])[None]


@pytest.mark.parametrize("pair_sum, factor", [("ordered", 2.0), ("unordered", 1.0)])
def test_lj13_global_minimum_under_each_pair_convention(pair_sum, factor):
    """The LJ-13 global minimum (Mackay icosahedron) is -44.326801 eps summed over i < j (Cambridge
    Cluster Database, Wales and Doye 1997); the ordered-pair convention of the papers' test sets
    doubles it. Relax an icosahedron without the harmonic term and compare."""
    lj = LennardJonesEnergy(13, harmonic=0.0, pair_sum=pair_sum)
    x = _icosahedral_cluster().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=0.5, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        e = lj.energy(x).sum()
        e.backward()
        return e

    opt.step(closure)
    assert float(lj.energy(x.detach())) == pytest.approx(-44.326801 * factor, abs=1e-5)


def test_lj_pair_conventions_and_parameter_round_trip():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 13, 3, generator=gen, dtype=torch.float64) * 1.3
    ordered, unordered = build_synthetic_energy("lj13"), build_synthetic_energy("lj13", "unordered")
    harmonic = 0.5 * (x - x.mean(1, keepdim=True)).pow(2).sum(dim=(1, 2))
    # the default is the papers' ordered-pair sum: twice the i < j Lennard-Jones term, same harmonic term
    assert torch.allclose(ordered.energy(x) - harmonic, 2.0 * (unordered.energy(x) - harmonic))
    assert ordered.params()["pair_sum"] == "ordered" and unordered.params()["pair_sum"] == "unordered"
    for energy in (ordered, unordered, build_synthetic_energy("dw4")):
        rebuilt = synthetic_energy_from_params(energy.params())
        assert rebuilt.params() == energy.params() and torch.equal(rebuilt.energy(x[..., :energy.dim][:, :energy.n_particles]),
                                                                   energy.energy(x[..., :energy.dim][:, :energy.n_particles]))
    # parameters stored before the option existed meant the i < j sum
    legacy = {k: v for k, v in ordered.params().items() if k != "pair_sum"}
    assert synthetic_energy_from_params(legacy).pair_sum == "unordered"
    with pytest.raises(ConfigError, match="pair_sum 'both'"):
        build_synthetic_energy("lj55", "both")
    with pytest.raises(ConfigError, match="do not fit"):
        synthetic_energy_from_params({"name": "lj13", "sigma": 1.0})
