"""A lower-variance RAM target: the adjoint averaged over the batch's terminal samples.

The RAM loss regresses ``f(t, X_t)`` onto ``-a(X_1)``, where ``X_t`` is drawn from the base bridge
of one buffer sample ``X_1``. Given ``X_t`` and the *set* of the batch's samples (and of their
images under the energy's symmetries), the posterior probability that image ``y_j`` produced
``X_t`` is proportional to the bridge density ``N(X_t; c_t y_j, v_t I)``. Replacing ``a(X_1)`` by
its posterior mean ``sum_j w_j a(y_j)`` conditions the target on more information, so by the tower
property its conditional mean given ``X_t`` is unchanged (the minimiser of the loss is the same)
while its variance drops, most in the middle of the time axis where one ``X_t`` fits many ``X_1``.

Symmetries: permutations of identical particles and one reflection are enumerated; in 2D the
rotation angle is integrated in closed form (a von Mises posterior), so ``y_j`` ranges over the
whole orbit under O(2) x S_n. The energy must be invariant under the symmetries used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.sde.schedules import NoiseSchedule

__all__ = ["ParticleSymmetry", "posterior_mean_adjoint", "batch_posterior_adjoint"]

MAX_PERMUTED_PARTICLES = 6


@dataclass(frozen=True)
class ParticleSymmetry:
    """Symmetries of an energy of ``n_particles`` identical particles in ``dim`` dimensions.

    Attributes:
        permutations: average over all ``n!`` orderings (at most ``MAX_PERMUTED_PARTICLES``).
        reflection: average over the mirror image (last coordinate negated).
        planar_rotations: integrate over rotation angles in closed form (``dim == 2`` only).
    """

    n_particles: int
    dim: int
    permutations: bool = True
    reflection: bool = True
    planar_rotations: bool = True

    def __post_init__(self) -> None:
        if self.permutations and self.n_particles > MAX_PERMUTED_PARTICLES:
            raise ConfigError(f"cannot enumerate the permutations of {self.n_particles} particles "
                              f"(at most {MAX_PERMUTED_PARTICLES})")
        if self.planar_rotations and self.dim != 2:
            raise ConfigError(f"closed-form rotation averaging needs 2D particles, not {self.dim}D")

    def images(self, x: Tensor) -> Tensor:
        """The finite-group images ``(K, G, n, D)`` of states ``x`` ``(K, n, D)`` (identity first)."""
        orders = (list(itertools.permutations(range(self.n_particles))) if self.permutations
                  else [tuple(range(self.n_particles))])
        out = x[:, torch.tensor(orders)]  # (K, P, n, D)
        if self.reflection:
            mirror = out.clone()
            mirror[..., -1] = -mirror[..., -1]
            out = torch.cat([out, mirror], dim=1)
        return out


def _quarter_turn(v: Tensor) -> Tensor:
    """``J v`` for 2D vectors ``(..., 2)``: rotation by +90 degrees, ``(x, y) -> (-y, x)``."""
    return torch.stack([-v[..., 1], v[..., 0]], dim=-1)


def posterior_mean_adjoint(
    xt: Tensor, t: Tensor, x1: Tensor, adjoint: Tensor, schedule: NoiseSchedule, symmetry: ParticleSymmetry,
) -> Tensor:
    """Posterior mean of the adjoint given each ``X_t``, over the images of the candidates ``x1``.

    Args:
        xt: ``(B, n, D)`` bridge states, zero centre of mass.
        t: ``(B,)`` their times in [0, 1).
        x1: ``(K, n, D)`` candidate terminal states (for RAM: the batch's own samples), zero CoM.
        adjoint: ``(K, n, D)`` their adjoints ``a``, equivariant under the symmetries.
        schedule: the base process (bridge ``X_t | y ~ N(c_t y, v_t I)``).
        symmetry: which images of the candidates to average over.

    Returns ``(B, n, D)`` in the dtype of ``xt``; computed in float64.
    """
    dtype = xt.dtype
    b, n, d = xt.shape
    y = symmetry.images(x1.double()).reshape(-1, n * d)  # (G, nD)
    ay = symmetry.images(adjoint.double()).reshape(-1, n * d)
    c, v = schedule.bridge_mean_coef_and_var(t.double())
    c, v = c.view(b, 1), v.view(b, 1).clamp(min=1e-12)
    x = xt.double().reshape(b, n * d)
    along = x @ y.T  # (B, G): <X_t, y_j>
    log_w = -(c * c) * y.pow(2).sum(-1) / (2.0 * v)
    if not symmetry.planar_rotations:
        log_w = log_w + c * along / v
        w = torch.softmax(log_w, dim=-1)
        return (w @ ay).view(b, n, d).to(dtype)
    # rotation by theta: <X_t, R_theta y> = A cos(theta) + B sin(theta) = kappa cos(theta - phi)
    across = x @ _quarter_turn(y.view(-1, n, 2)).reshape(-1, n * d).T  # B = <X_t, J y_j>
    kappa = torch.sqrt(along.pow(2) + across.pow(2))
    k = c * kappa / v  # von Mises concentration of the posterior angle
    k32 = k.float()  # the Bessel functions dominate the cost; single precision is ample for them
    i0e, i1e = torch.special.i0e(k32).double(), torch.special.i1e(k32).double()
    w = torch.softmax(log_w + torch.log(i0e) + k, dim=-1)  # log I0(k) = log i0e(k) + k
    # E[R_theta] = rho (cos(phi) I + sin(phi) J), rho = I1(k)/I0(k); rho / kappa -> c / (2v) as kappa -> 0
    rho_over_kappa = torch.where(kappa > 1e-12, (i1e / i0e) / kappa.clamp(min=1e-12), c / (2.0 * v))
    alpha, beta = w * rho_over_kappa * along, w * rho_over_kappa * across
    mean = alpha @ ay + (beta @ _quarter_turn(ay.view(-1, n, 2)).reshape(-1, n * d))
    return mean.view(b, n, d).to(dtype)


def batch_posterior_adjoint(
    xt: Tensor, t: Tensor, x1: Tensor, adjoint: Tensor, schedule: NoiseSchedule, symmetry: ParticleSymmetry,
    group_size: int,
) -> Tensor:
    """The RAM target of a batch of ``B`` systems in row layout: ``xt``, ``x1``, ``adjoint`` are
    ``(B * n, D)``, system after system, and system ``i``'s ``X_t`` was drawn from the bridge of its
    ``x1``; ``t`` is ``(B,)``. Returns the posterior-mean adjoint ``(B * n, D)`` in ``xt``'s dtype.

    The batch (drawn at random from the buffer) is cut into consecutive groups of ``group_size``;
    every system's candidates are its own group, its source included, which is what makes the
    posterior mean an unbiased replacement of its adjoint given ``X_t``. The cost grows with
    ``B * group_size * images``.
    """
    if group_size < 1:
        raise ConfigError(f"posterior group size must be >= 1, got {group_size}")
    b, (m, d) = t.shape[0], xt.shape
    n = symmetry.n_particles
    if m != b * n or d != symmetry.dim:
        raise ValueError(f"rows {tuple(xt.shape)} do not hold {b} systems of {n} particles in {symmetry.dim}D")
    xt, x1, adjoint = xt.view(b, n, d), x1.view(b, n, d), adjoint.view(b, n, d)
    parts = [posterior_mean_adjoint(xt[s:s + group_size], t[s:s + group_size], x1[s:s + group_size],
                                    adjoint[s:s + group_size], schedule, symmetry)
             for s in range(0, b, group_size)]
    return torch.cat(parts).view(m, d)
