"""An Adjoint Matching control that acts only from a time ``t_from`` on (the "late window").

With the control switched off on ``[t_start, t_from)`` the fine-tuned SDE follows the base flow there,
so ``X_{t_from}`` has the base's marginal, and from ``t_from`` on it follows
``b + sigma_t^2 f``. The optimal control on the window is the same function as without it,
``u*(t, x) = sigma_t grad log E_base[exp(lambda r(X_1)) | X_t = x]`` (the value function at ``t``
does not depend on how ``X_t`` was reached), and the lean adjoint targets at ``t >= t_from`` are
unchanged; only the targets before ``t_from`` are dropped. The end distribution is the base's
``X_{t_from}`` followed by the tilted transition to ``X_1``: a tilt within the region each early state
leads to, which keeps the base's choice among distant basins (on the memoryless schedule ``X_1`` is
independent only of ``X_{t_start}``, not of ``X_{t_from}``). ``t_from = 0`` is plain Adjoint
Matching.

Why: the early targets decide the basin, are heavy-tailed and were not learned in our torsional runs
(cosine between the control and its target about 0 before t ~ 0.5, benchmarks/RESULTS.md), yet the
control is not zero there and spreads the draws over more basins.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.sde.batch import SystemBatch

__all__ = ["check_control_from", "window_indices", "windowed_control"]

Field = Callable[[Tensor, Tensor, SystemBatch], Tensor]


def check_control_from(t_from: float) -> float:
    """``t_from`` as a float in [0, 1) (ConfigError otherwise)."""
    value = float(t_from)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"control_from must be in [0, 1), got {t_from!r}")
    return value


def windowed_control(control: Field, t_from: float) -> Field:
    """``control(t (B,), x (M, D), batch) -> (M, D)``, zero for the systems whose time is below
    ``t_from`` (not evaluated at all when every system's is); ``t_from = 0`` returns ``control``."""
    if check_control_from(t_from) == 0.0:
        return control

    def field(t: Tensor, x: Tensor, batch: SystemBatch) -> Tensor:
        on = t >= t_from
        if not bool(on.any()):
            return torch.zeros_like(x)
        out = control(t, x, batch)
        return out * batch.space.rows_of(on.to(out.dtype))

    return field


def window_indices(times: Tensor, t_from: float) -> Tensor:
    """Indices ``(T,)`` of the grid times ``times`` ``(K,)`` at which a control windowed from
    ``t_from`` acts (ConfigError if none does)."""
    index = torch.nonzero(times >= check_control_from(t_from)).flatten()
    if index.numel() == 0:
        raise ConfigError(f"control_from {t_from} leaves no grid time for the control (last {float(times[-1]):.3f})")
    return index
