"""The lean adjoint of Adjoint Matching (DESIGN.md section 8), integrated backwards along a path.

For the SDE ``dX = (b(t, X) + sigma_t^2 f(t, X)) dt + sigma_t dW`` tilted towards
``p_base(x) exp(lambda r(x))``, the lean adjoint solves ``da/dt = -(grad_x b(X_t, t))^T a`` from
``a(1) = -lambda grad r(X_1)``: vector-Jacobian products of the base drift only (no second
derivative of ``r``, nothing of the control). Its regression target for the scaled control is
``f(t, X_t) = -a(t)``. With ``b = 0`` it is constant, ``a(t) = a(1)``: Adjoint Sampling's
terminal adjoint (``method.adjoint``), where ``lambda r = -E / tau - log p1base``.

Discretisation: on the Euler-Maruyama grid ``t_0 < ... < t_K`` the recursion is
``a_k = a_{k+1} + (t_{k+1} - t_k) J_b(t_k, X_k)^T a_{k+1}``: with the control off, the exact
gradient of ``-lambda r(X_K)`` with respect to ``X_k`` through the simulated steps (Jacobian at
the left end, as the forward step uses it; it never evaluates the drift at t = 1); with it on,
"lean" drops the control's Jacobian. The control at ``(t_k, X_k)`` moves ``X_{k+1}``, so its
target is ``-a_{k+1}`` (for a cost-to-go linear in ``X_{k+1}`` this is the exact optimum of the
discrete chain; pairing with ``a_k`` instead is biased by O(h)).

Spaces: zero-CoM Cartesian (``sde.CenteredEuclideanSpace``: states, drifts and adjoints are
projected every step) and plain ``sde.EuclideanSpace``. Torsions follow DESIGN.md section 8: a
flow on R^m over the torsion vector, i.e. ``EuclideanSpace(batch, B, 1)`` (not ``TorusSpace``,
whose every-step wrapping a non-periodic base flow does not allow) with a periodic reward, and
``wrap_angle`` applied to ``X_1`` at the end; the tilt stays exact because r is periodic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from adjoint_sampling.method.adjoint import clip_per_row
from adjoint_sampling.sde.base_drift import DriftFn
from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["AdjointMatchingTargets", "adjoint_matching_targets", "drift_vjp", "lean_adjoint",
           "reward_terminal_adjoint"]


def reward_terminal_adjoint(
    reward_grad: Tensor, space: StateSpace, reward_scale: float = 1.0, max_norm: float | None = None
) -> Tensor:
    """``a(1) = project_vector(clip(-lambda grad r(X_1)))``, shape (M, D).

    ``reward_grad`` is ``grad r`` at ``X_1`` (M, D); ``reward_scale`` is lambda. For conformers
    ``r = -E / kT``, so ``a(1) = lambda grad E / kT``; rows are clipped to ``max_norm`` as in
    Adjoint Sampling (``None``: no clipping).
    """
    return space.project_vector(clip_per_row(-reward_scale * reward_grad, max_norm))


def drift_vjp(base_drift: DriftFn, t: Tensor, x: Tensor, a: Tensor) -> Tensor:
    """``J_b(t, x)^T a``: the vector-Jacobian product of the drift at ``(t (B,), x (M, D))`` with
    ``a`` (M, D), by one reverse-mode pass (no graph kept); zero where ``b`` does not depend on x."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = base_drift(t, xg)
        if not out.requires_grad:
            return torch.zeros_like(a)
        (grad,) = torch.autograd.grad(out, xg, grad_outputs=a.detach(), allow_unused=True)
    return torch.zeros_like(a) if grad is None else grad.detach()


@torch.no_grad()
def lean_adjoint(
    path: Tensor, grid: Tensor, terminal: Tensor, space: StateSpace, base_drift: DriftFn | None
) -> Tensor:
    """The lean adjoint at every grid time, ``(K+1, M, D)`` (row ``k`` at ``grid[k]``, row ``K`` is
    ``terminal``), integrated backwards along ``path`` ``(K+1, M, D)`` (``sde.integrate_path``).

    ``a_k = project_vector(a_{k+1} + (t_{k+1} - t_k) J_b(t_k, X_k)^T a_{k+1})``;
    ``base_drift=None`` (Adjoint Sampling) gives ``terminal`` at every time.
    """
    if path.shape[0] != grid.shape[0]:
        raise ValueError(f"path has {path.shape[0]} states for a grid of {grid.shape[0]} times")
    adjoints = [terminal] * path.shape[0]
    a = terminal
    if base_drift is not None:
        for k in range(path.shape[0] - 2, -1, -1):
            t = torch.full((space.num_systems,), float(grid[k]), dtype=path.dtype, device=path.device)
            a = space.project_vector(a + float(grid[k + 1] - grid[k]) * drift_vjp(base_drift, t, path[k], a))
            adjoints[k] = a
    return torch.stack(adjoints)


@dataclass(frozen=True)
class AdjointMatchingTargets:
    """Regression pairs of one batch of paths: the control at ``(times[k], states[k])`` has the
    target ``-adjoint[k]``.

    Attributes:
        times: ``(K,)`` the grid times where the control acts, ``grid[:-1]``.
        states: ``(K, M, D)`` the path at those times.
        adjoint: ``(K, M, D)`` the lean adjoint paired with them, ``a_{k+1}``.
        sigma_sq: ``(K,)`` the step's mean ``sigma^2``, ``(nu_{k+1} - nu_k) / (t_{k+1} - t_k)``: the
            weight that turns the loss into DESIGN's ``|| u + sigma a ||^2``.
    """

    times: Tensor
    states: Tensor
    adjoint: Tensor
    sigma_sq: Tensor

    def at(self, index: Tensor) -> AdjointMatchingTargets:
        """The pairs at the time indices ``index`` ``(T,)`` (e.g. a random subset of the grid)."""
        return AdjointMatchingTargets(self.times[index], self.states[index], self.adjoint[index],
                                      self.sigma_sq[index])


def adjoint_matching_targets(
    path: Tensor,
    grid: Tensor,
    terminal: Tensor,
    space: StateSpace,
    schedule: NoiseSchedule,
    base_drift: DriftFn | None,
) -> AdjointMatchingTargets:
    """Lean adjoint along ``path`` ``(K+1, M, D)`` from ``terminal`` ``(M, D)``, paired with the
    states where the control acts (see :class:`AdjointMatchingTargets`)."""
    adjoint = lean_adjoint(path, grid, terminal, space, base_drift)
    grid64 = grid.to(torch.float64)
    sigma_sq = (schedule.nu(grid64).diff() / grid64.diff()).to(path.dtype)
    return AdjointMatchingTargets(grid[:-1].to(path.dtype), path[:-1], adjoint[1:], sigma_sq)
