"""Optimiser helpers shared by the trainer and the synthetic oracle fit: learning-rate schedule and one
guarded gradient step with weight EMA."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["cosine_lr", "optimizer_step"]


def cosine_lr(step: int, total: int, lr: float, lr_final: float | None) -> float:
    """Learning rate at ``step`` of ``total``: cosine decay from ``lr`` to ``lr_final`` (None: constant)."""
    if lr_final is None:
        return lr
    frac = min(step / max(total, 1), 1.0)
    cos = 0.5 * (1.0 + torch.cos(torch.tensor(frac * torch.pi))).item()
    return lr_final + (lr - lr_final) * cos


def optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor, grad_clip: float | None,
    ema: dict[str, Tensor] | None = None, ema_decay: float | None = None,
) -> float | None:
    """Backpropagate ``loss``, clip the global gradient norm to ``grad_clip`` (None: no clip), step,
    then move the weight average ``ema`` (a state dict of ``model``) by ``ema_decay``; returns the loss.

    A step whose gradient norm is not finite (a NaN or infinite loss, or an overflow) changes
    nothing (weights, optimizer moments, EMA) and returns None. Under DDP the gradients are already
    averaged over ranks, so every rank takes the same decision."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip is not None else math.inf)
    if not math.isfinite(float(norm)):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    if ema is not None:
        decay = float(ema_decay)
        with torch.no_grad():
            for name, value in model.state_dict().items():
                if value.dtype.is_floating_point:
                    ema[name].mul_(decay).add_(value, alpha=1.0 - decay)
                else:
                    ema[name].copy_(value)
    return float(loss.detach())
