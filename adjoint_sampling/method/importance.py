"""Importance weights of simulated terminal samples with respect to the target.

The optimally controlled path measure ``P*`` has terminal marginal ``mu ~ exp(-E / tau)`` and the
base's bridges, so for a path simulated with control ``u`` (Girsanov, exact for the discrete chain):

    dP*/dP_u  ∝  dP_base/dP_u (path)  *  exp(-E(X_1) / tau) / p1base(X_1).

The constant (the target's normaliser) is the same for every sample of one system, whatever
control simulated it, so samples of one system drawn by different (older) controls can be weighted
against each other. Reweighting the replay buffer by these weights makes the RAM regression see
the target's terminal distribution, not the current model's: the regression then also corrects the
relative weights of separated modes, which the adjoint (a local gradient) barely sees.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["terminal_log_weight", "selection_probabilities", "effective_sample_fraction"]


def terminal_log_weight(log_path_ratio: Tensor, energy: Tensor, base_log_density: Tensor, tau: float) -> Tensor:
    """``log dP*/dP_u`` up to a per-system constant, ``(B,)`` float64.

    Args:
        log_path_ratio: ``(B,)`` ``log dP_base/dP_u`` of each simulated path (see
            :func:`adjoint_sampling.sde.integrate_with_path_weight`).
        energy: ``(B,)`` ``E(X_1)`` in energy units.
        base_log_density: ``(B,)`` ``log p1base(X_1)``.
        tau: temperature in energy units.
    """
    return log_path_ratio.double() - energy.double() / float(tau) - base_log_density.double()


def selection_probabilities(log_weights: Tensor, keys: Tensor) -> Tensor:
    """Probabilities ``(N,)`` to draw each of ``N`` samples: every system (``keys`` ``(N,)``) keeps
    its share of the samples, and within a system samples are drawn in proportion to their weights
    (self-normalised per system, since each system's weights carry their own constant)."""
    lw = log_weights.double()
    keys = keys.long()
    probs = torch.empty_like(lw)
    n = float(lw.numel())
    for key in torch.unique(keys):
        members = keys == key
        probs[members] = torch.softmax(lw[members], dim=0) * (float(members.sum()) / n)
    return probs


def effective_sample_fraction(log_weights: Tensor, keys: Tensor) -> float:
    """Kish effective sample size of :func:`selection_probabilities` over ``N``: 1 when all weights
    of each system are equal, about ``1 / N`` when one sample carries all the weight."""
    p = selection_probabilities(log_weights, keys)
    return float(1.0 / (p.pow(2).sum() * p.numel()))
