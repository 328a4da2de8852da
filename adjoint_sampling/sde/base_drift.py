"""Base drifts ``b(t, x)`` of a reference SDE ``dX = b dt + sigma_t dW``, and the conversion of a
linear-interpolant flow's velocity into the drift of the SDE with the flow's marginals.

Adjoint Matching (DESIGN.md section 8) fine-tunes the SDE
``dX = (b(t, X) + sigma_t^2 f(t, X)) dt + sigma_t dW`` (``f`` the scaled control of this repo,
the control ``u = sigma_t f``); Adjoint Sampling is the case ``b = 0``.

Conventions: time runs from noise (t = 0) to data (t = 1); the flow is the linear interpolant
``X_t = (1 - t) X_0 + t X_1``, ``X_0 ~ N(0, I)``; drifts and velocities take the time of every
system ``t`` ``(B,)`` and the batch of states ``x`` ``(M, D)`` (the order of ``sde.ControlFn``)
and return ``(M, D)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from adjoint_sampling.sde.schedules import MemorylessSchedule, NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["DriftFn", "VelocityFn", "flow_sde_drift", "finetuned_velocity", "interpolant_eta"]

DriftFn = Callable[[Tensor, Tensor], Tensor]
"""``b(t (B,), x (M, D)) -> (M, D)``: the drift of the reference (base) SDE."""

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""``v(t (B,), x (M, D)) -> (M, D)``: the velocity field of a flow (t = 0 noise, t = 1 data)."""


def interpolant_eta(t: Tensor) -> Tensor:
    """``eta_t = beta_t (alpha'_t beta_t / alpha_t - beta'_t)`` of the linear interpolant
    (``alpha_t = t``, ``beta_t = 1 - t``): ``(1 - t) / t``; any shape, ``t`` in (0, 1]."""
    return (1.0 - t) / t


def _drift_gain(t_rows: Tensor, schedule: NoiseSchedule) -> Tensor:
    """``k_t = sigma_t^2 / (2 eta_t)`` per row ``(M, 1)`` (exactly 1 for the memoryless schedule)."""
    if isinstance(schedule, MemorylessSchedule):
        return t_rows.new_ones(())
    return schedule.sigma(t_rows) ** 2 * t_rows / (2.0 * (1.0 - t_rows))


def flow_sde_drift(velocity: VelocityFn, schedule: NoiseSchedule, space: StateSpace) -> DriftFn:
    """The drift of the SDE with diffusion ``sigma_t`` (``schedule``) that has the flow's marginals:
    ``b = v + k_t (v - x / t)``, ``k_t = sigma_t^2 / (2 eta_t)``.

    Memoryless schedule (``sigma_t^2 = 2 eta_t``): ``b = 2 v - x / t``. Defined for ``t`` in
    (0, 1) (the Euler-Maruyama loop never evaluates the drift at the grid's last time, 1); the
    result is projected onto the tangent space of ``space``.
    """

    def drift(t: Tensor, x: Tensor) -> Tensor:
        t_rows = space.rows_of(t.to(x.dtype))
        v = velocity(t, x)
        return space.project_vector(v + _drift_gain(t_rows, schedule) * (v - x / t_rows))

    return drift


def finetuned_velocity(base_velocity: VelocityFn, control: Callable[[Tensor, Tensor], Tensor],
                       schedule: NoiseSchedule, space: StateSpace) -> VelocityFn:
    """The velocity of the fine-tuned flow whose SDE drift is ``b + sigma_t^2 f``:
    ``v_ft = v_base + sigma_t^2 f / (1 + k_t)``; memoryless (``k_t = 1``):
    ``v_ft = v_base + sigma_t^2 f / 2``, i.e. DESIGN's ``u = sigma_t f = (2 / sigma_t)(v_ft - v_base)``.

    ``control(t (B,), x (M, D)) -> f (M, D)``. The fine-tuned flow's ODE ``dx/dt = v_ft`` (or its
    SDE with any other schedule) samples the fine-tuned marginals.
    """

    def velocity(t: Tensor, x: Tensor) -> Tensor:
        t_rows = space.rows_of(t.to(x.dtype))
        gain = _drift_gain(t_rows, schedule)
        f = space.project_vector(control(t, x))
        return space.project_vector(base_velocity(t, x) + schedule.sigma(t_rows) ** 2 * f / (1.0 + gain))

    return velocity
