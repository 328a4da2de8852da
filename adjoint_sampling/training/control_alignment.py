"""How well an Adjoint Matching control has learned its targets, time by time along its own paths.

At every grid time before 1 (the control counted as zero where its window has not begun): the mean lean-adjoint norm per row ``|a|``, the mean
control norm ``|f|`` and the cosine between ``f`` and its target ``-a`` over all rows of all paths.
A cosine near 0 with ``|a|`` large is a part of the path where the regression learned nothing of
its (noisy) targets; 1 with ``|f| = |a|`` would be a perfect fit of every single target, which the
conditional expectation the control learns cannot reach where the targets are noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.control_window import windowed_control
from adjoint_sampling.training.adjoint_matching import (
    AdjointMatchingSettings,
    FineTuneTask,
    draw_targets,
)

__all__ = ["ControlAlignment", "control_alignment"]


@dataclass(frozen=True)
class ControlAlignment:
    """One grid time: ``t``, ``adjoint_norm`` (mean ``|a|`` per row), ``control_norm`` (mean ``|f|``
    per row) and ``cosine`` between ``f`` and ``-a`` (0 where the control is off)."""

    t: float
    adjoint_norm: float
    control_norm: float
    cosine: float


@torch.no_grad()
def control_alignment(
    control: nn.Module, task: FineTuneTask, settings: AdjointMatchingSettings, paths: int, generator: torch.Generator,
    batches: int = 1, dtype: torch.dtype = torch.float32,
) -> list[ControlAlignment]:
    """Alignment at every grid time before 1, over ``batches`` batches of ``paths`` paths of the
    fine-tuned SDE (the settings' schedule, grid and ``control_from``; systems from ``task.draw_keys``)."""
    if paths < 1 or batches < 1:
        raise ConfigError(f"control alignment needs paths >= 1 and batches >= 1, got {paths} and {batches}")
    field = windowed_control(control, settings.control_from)
    steps = settings.sde_steps
    dot, f_sq, a_sq = torch.zeros(steps, dtype=torch.float64), torch.zeros(steps, dtype=torch.float64), \
        torch.zeros(steps, dtype=torch.float64)
    a_norm, f_norm = torch.zeros(steps, dtype=torch.float64), torch.zeros(steps, dtype=torch.float64)
    times: Tensor | None = None
    for _ in range(batches):
        batch = task.make_batch(task.draw_keys(paths, generator))
        targets = draw_targets(control, task, batch, settings, generator, dtype)
        times = targets.times
        for k in range(steps):
            f = field(targets.times[k].expand(batch.space.num_systems), targets.states[k], batch).double()
            a = targets.adjoint[k].double()
            dot[k] += float((f * -a).sum())
            f_sq[k] += float(f.pow(2).sum())
            a_sq[k] += float(a.pow(2).sum())
            a_norm[k] += float(a.norm(dim=-1).mean()) / batches
            f_norm[k] += float(f.norm(dim=-1).mean()) / batches
    assert times is not None
    denominator = (f_sq * a_sq).sqrt()
    cosine = torch.where(denominator > 0, dot / denominator.clamp(min=1e-300), torch.zeros_like(dot))
    return [ControlAlignment(float(times[k]), float(a_norm[k]), float(f_norm[k]), float(cosine[k]))
            for k in range(steps)]
