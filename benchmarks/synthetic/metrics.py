"""The paper's synthetic metrics: W2 between point sets and W2 between energy distributions.

Distance between two configurations ``a, b`` (n, D): ``min_{Q in O(D), P perm} ||a_c - P b_c Q||``
(Frobenius norm over all n * D coordinates, both centred; rotations AND reflections allowed).
- n <= 6 (DW-4): exact, all n! permutations, each with the optimal orthogonal Q in closed form
  (``max_Q tr(Q^T H) = nuclear norm of H``).
- larger n (LJ): heuristic minimisation, so an upper bound of the true minimum: a first assignment
  from rotation-invariant per-particle descriptors (sorted distances to the other particles),
  then ``rounds`` alternations of Kabsch (with reflections) and Hungarian assignment.
W2 between two equally sized sets is then the exact optimal transport (Hungarian on the
``K x K`` matrix of squared distances): ``W2 = sqrt(mean of matched squared distances)``.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from adjoint_sampling.energy.synthetic import pairwise_distances

__all__ = ["aligned_sq_distances", "energy_w2", "energy_tail_summary", "wasserstein2_from_cost", "nuclear_norm"]

log = logging.getLogger(__name__)


def _centre(x: Tensor) -> Tensor:
    return x - x.mean(dim=-2, keepdim=True)


def nuclear_norm(h: Tensor) -> Tensor:
    """Sum of singular values of ``(..., D, D)`` matrices (closed form for D = 2)."""
    if h.shape[-1] == 2:
        fro2 = h.pow(2).sum((-2, -1))
        det = h[..., 0, 0] * h[..., 1, 1] - h[..., 0, 1] * h[..., 1, 0]
        return torch.sqrt((fro2 + 2 * det.abs()).clamp(min=0))
    return torch.linalg.svdvals(h).sum(-1)


def _exhaustive(a: Tensor, b: Tensor, chunk: int) -> Tensor:
    n = a.shape[1]
    na, nb = a.pow(2).sum((1, 2)), b.pow(2).sum((1, 2))
    out = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype)
    for s in range(0, a.shape[0], chunk):
        ac = a[s : s + chunk]
        best = torch.full((ac.shape[0], b.shape[0]), -float("inf"), dtype=a.dtype)
        for perm in itertools.permutations(range(n)):
            h = torch.einsum("kid,lie->klde", ac, b[:, list(perm)])
            best = torch.maximum(best, nuclear_norm(h))
        out[s : s + chunk] = (na[s : s + chunk, None] + nb[None] - 2 * best).clamp(min=0)
    return out


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal Q (reflections allowed) minimising ||a - b Q|| for stacks (P, n, D)."""
    u, _, vt = np.linalg.svd(np.einsum("pni,pnj->pij", b, a))
    return u @ vt


def _descriptors(x: np.ndarray) -> np.ndarray:
    """(K, n, n-1) sorted distances of every particle to the others."""
    d = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)
    return np.sort(d, axis=-1)[:, :, 1:]


def _heuristic(a: Tensor, b: Tensor, rounds: int) -> Tensor:
    an, bn = a.numpy(), b.numpy()
    da, db = _descriptors(an), _descriptors(bn)
    k, l = an.shape[0], bn.shape[0]
    out = np.empty((k, l))
    for i in range(k):
        cost_desc = ((da[i][None, :, None, :] - db[:, None, :, :]) ** 2).sum(-1)  # (L, n, n)
        perms = np.stack([linear_sum_assignment(c)[1] for c in cost_desc])  # (L, n)
        bp = np.take_along_axis(bn, perms[:, :, None], axis=1)
        ai = np.broadcast_to(an[i], bp.shape)
        for _ in range(rounds):
            q = _kabsch(ai, bp)
            rotated = bn @ q  # (L, n, D)
            cost = ((an[i][None, :, None, :] - rotated[:, None, :, :]) ** 2).sum(-1)
            perms = np.stack([linear_sum_assignment(c)[1] for c in cost])
            bp = np.take_along_axis(bn, perms[:, :, None], axis=1)
        q = _kabsch(ai, bp)
        out[i] = ((ai - bp @ q) ** 2).sum((1, 2))
        if (i + 1) % 200 == 0:
            log.info("aligned distances: %d / %d rows", i + 1, k)
    return torch.from_numpy(out)


def aligned_sq_distances(a: Tensor, b: Tensor, rounds: int = 2, chunk: int = 64) -> Tensor:
    """Squared aligned distances ``(K, L)`` between configurations ``a`` (K, n, D), ``b`` (L, n, D)."""
    a, b = _centre(a.double()), _centre(b.double())
    if a.shape[1] <= 6:
        return _exhaustive(a, b, chunk)
    return _heuristic(a, b, rounds)


def wasserstein2_from_cost(cost_sq: Tensor) -> float:
    """Exact W2 between two uniform sets of equal size from the squared-distance matrix."""
    if cost_sq.shape[0] != cost_sq.shape[1]:
        raise ValueError(f"W2 needs equally sized sets, got {tuple(cost_sq.shape)}")
    rows, cols = linear_sum_assignment(cost_sq.numpy())
    return float(np.sqrt(cost_sq.numpy()[rows, cols].mean()))


def energy_w2(e1: Tensor, e2: Tensor) -> float:
    """1-D W2 between two equally sized energy samples (sorted matching)."""
    if e1.numel() != e2.numel():
        raise ValueError("energy W2 needs equally sized samples")
    s1, s2 = torch.sort(e1.double().flatten()).values, torch.sort(e2.double().flatten()).values
    return float((s1 - s2).pow(2).mean().sqrt())


def closest_pair_distances(x: Tensor) -> Tensor:
    """The closest pair distance of each configuration: ``(K, n, D)`` -> ``(K,)`` (float64)."""
    return pairwise_distances(x.double()).min(dim=-1).values


def energy_tail_summary(gen_x: Tensor, gen_e: Tensor, ref_x: Tensor, ref_e: Tensor, keep: float = 0.99) -> dict[str, float]:
    """How much of an energy W2 is the rare high-energy tail: medians, the energy W2 of the lowest
    ``keep`` share of each set, and the share of generated samples ``(K, n, D)`` whose closest pair
    is closer than the closest pair in any reference sample (overlaps the target never shows)."""
    k = max(1, int(round(keep * min(gen_e.numel(), ref_e.numel()))))
    low_gen = torch.sort(gen_e.double().flatten()).values[:k]
    low_ref = torch.sort(ref_e.double().flatten()).values[:k]
    ref_closest = float(closest_pair_distances(ref_x).min())
    return {"gen_energy_median": float(gen_e.double().median()), "ref_energy_median": float(ref_e.double().median()),
            f"energy_w2_lowest_{round(100 * keep)}pct": energy_w2(low_gen, low_ref),
            "ref_closest_pair": ref_closest,
            "overlap_share": float((closest_pair_distances(gen_x) < ref_closest).double().mean())}
