"""Drawing from a pre-trained flow, alone or with an Adjoint Matching control, on its memoryless SDE.

The fine-tuned SDE is ``dX = (b(t, X) + sigma_t^2 f(t, X)) dt + sigma_t dW`` from ``t_start`` to 1,
``b`` the base flow's memoryless drift (``sde.flow_sde_drift``) and ``f`` the control (none: the flow
itself). The start is the flow's noise, ``X_{t_start} = (1 - t_start) X_0`` with ``X_0 ~ N(0, I)``:
the marginal ``(1 - t) X_0 + t X_1`` without its ``t X_1`` part, below ``t_start`` times the data's
scale (0.003 rad for torsions at the default ``t_start``); the memoryless schedule makes the end
independent of the start anyway.

The same marginals come from the flow's ODE, ``dx/dt = v_ft(t, x)`` with the fine-tuned velocity
``v_ft = v_base + sigma_t^2 f / 2`` (``sde.finetuned_velocity``; DESIGN.md section 8: "sample at
inference with any schedule, the ODE included"): ``solver="ode"``, no noise, and in our torsional
checks sharper conformers at fewer steps than the SDE (benchmarks/RESULTS.md).

Torsions (DESIGN.md section 8): the flow lives on R^m over the torsion vector, not on the torus, so a
batch on a ``TorusSpace`` is integrated on the Euclidean space of the same rows and wrapped at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.sde.base_drift import finetuned_velocity, flow_sde_drift
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.integrate import integrate, integrate_ode
from adjoint_sampling.sde.schedules import MemorylessSchedule
from adjoint_sampling.sde.spaces import EuclideanSpace, TorusSpace

__all__ = ["FLOW_SOLVERS", "FlowField", "flow_batch", "flow_start", "sample_flow"]

FLOW_SOLVERS = ("sde", "ode")
"""How a flow (with or without its control) is integrated: its memoryless SDE, or its ODE."""

FlowField = Callable[[Tensor, Tensor, SystemBatch], Tensor]
"""``field(t (B,), x (M, D), batch) -> (M, D)``: a flow's velocity or a control (a controller module)."""


def flow_batch(batch: SystemBatch) -> SystemBatch:
    """``batch`` on the space its flow lives in: a torus batch on the Euclidean space of its rows (same
    context, so torsional networks read the same molecules); any other batch unchanged."""
    if isinstance(batch.space, TorusSpace):
        space = batch.space
        return dataclasses.replace(batch, space=EuclideanSpace(space.batch, space.num_systems, space.dim))
    return batch


def flow_start(batch: SystemBatch, t_start: float, generator: torch.Generator | None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """``(1 - t_start) X_0`` ``(M, D)``, ``X_0`` the projected standard noise of ``batch.space``."""
    return (1.0 - t_start) * batch.space.noise(generator, dtype)


@torch.no_grad()
def sample_flow(
    velocity: FlowField,
    control: FlowField | None,
    batch: SystemBatch,
    schedule: MemorylessSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
    solver: str = "sde",
) -> Tensor:
    """``X_1`` ``(M, D)`` of ``batch``'s systems from the flow plus ``control`` (``None``: the flow
    alone) on ``grid`` (from ``schedule.t_start`` to 1): its memoryless SDE (``solver="sde"``) or
    its ODE (``"ode"``; the generator then only draws the start), projected back onto ``batch.space``
    (wrapped into [-pi, pi) on a torus)."""
    if solver not in FLOW_SOLVERS:
        raise ConfigError(f"flow solver must be one of {FLOW_SOLVERS}, got {solver!r}")
    flat = flow_batch(batch)
    base = lambda t, x: velocity(t, x, flat)  # noqa: E731
    fn = None if control is None else (lambda t, x: control(t, x, flat))
    start = flow_start(flat, schedule.t_start, generator, dtype)
    if solver == "ode":
        field = base if fn is None else finetuned_velocity(base, fn, schedule, flat.space)
        x1 = integrate_ode(field, flat.space, grid, start)
    else:
        x1 = integrate(fn, flat.space, schedule, grid, generator, dtype, start,
                       flow_sde_drift(base, schedule, flat.space))
    return batch.space.project_state(x1)
