"""Double-well shapes: where a DW-n sampler's energy error comes from.

Every pair distance of a double-well system sits on one side of the barrier at ``d0``; the number
of short pairs sorts samples into shapes (for DW-4: 2 or 4 short pairs are the deep shapes, 3 and
5 the in-between ones, 3 to 4 energy units higher). A sampler's energy W2 then splits into wrong
shape weights and wrong energies within each shape; :func:`energy_w2_at_reference_shape_shares`
measures the second alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.benchmarks.synthetic.metrics import energy_w2
from adjoint_sampling.energy.synthetic import DoubleWellEnergy, pairwise_distances

__all__ = ["short_pair_counts", "shape_table", "energy_w2_at_reference_shape_shares"]


def short_pair_counts(x: Tensor, energy: DoubleWellEnergy) -> Tensor:
    """``x`` (K, n, D) -> (K,) long: pair distances below the barrier ``energy.d0`` per sample."""
    return (pairwise_distances(x) < energy.d0).sum(-1)


def shape_table(gen_x: Tensor, gen_e: Tensor, ref_x: Tensor, ref_e: Tensor,
                energy: DoubleWellEnergy) -> list[dict[str, float | int | None]]:
    """One row per shape seen in either set: sample counts and mean energies (None: no sample)."""
    gen_k, ref_k = short_pair_counts(gen_x, energy), short_pair_counts(ref_x, energy)
    rows = []
    for k in torch.unique(torch.cat([gen_k, ref_k])).tolist():
        g, r = gen_k == k, ref_k == k
        rows.append({"short_pairs": k, "generated": int(g.sum()), "reference": int(r.sum()),
                     "generated_energy_mean": float(gen_e[g].mean()) if g.any() else None,
                     "reference_energy_mean": float(ref_e[r].mean()) if r.any() else None})
    return rows


def energy_w2_at_reference_shape_shares(gen_x: Tensor, gen_e: Tensor, ref_x: Tensor, ref_e: Tensor,
                                        energy: DoubleWellEnergy, seed: int = 0) -> float:
    """Energy W2 after redrawing the generated samples, shape by shape (with replacement), to the
    reference's shape counts: the error left if the shape weights were right. Reference samples of
    shapes the generator never produced are left out of both sides."""
    gen_k, ref_k = short_pair_counts(gen_x, energy), short_pair_counts(ref_x, energy)
    gen = torch.Generator().manual_seed(seed)
    drawn, kept = [], []
    for k in torch.unique(ref_k).tolist():
        pool = torch.nonzero(gen_k == k).flatten()
        if pool.numel() == 0:
            continue
        count = int((ref_k == k).sum())
        drawn.append(gen_e[pool[torch.randint(pool.numel(), (count,), generator=gen)]])
        kept.append(ref_e[ref_k == k])
    if not drawn:
        raise ValueError("the generated samples share no shape with the reference")
    return energy_w2(torch.cat(drawn), torch.cat(kept))
