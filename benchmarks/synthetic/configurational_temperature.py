"""Configurational temperature of samples under a particle energy: a reference-free check of how hot they are.

For samples of ``exp(-E / tau)`` (integration by parts, any smooth ``E`` that grows at infinity):
``<|grad E|^2> = tau <Laplacian E>``, so ``T_conf = <|grad E|^2> / <Laplacian E>`` estimates the
temperature the samples' configurations have under ``E``. Reported as ``T_conf / tau``: 1 for exact
samples, above 1 for too hot ones (more high-gradient, off-minimum configurations) and below 1 for
too cold ones (samples crowded at minima, where the gradient vanishes and the curvature does not).
Translation-invariant energies (DW-4, LJ) have no gradient or curvature along the centre of mass,
so the full-space Laplacian is that of the zero-centre-of-mass space the samplers live in.
"""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.energy.synthetic import ParticleEnergy

__all__ = ["gradient_norms_and_laplacians", "configurational_temperature"]


def gradient_norms_and_laplacians(energy: ParticleEnergy, x: Tensor, chunk: int = 500) -> tuple[Tensor, Tensor]:
    """``x`` (K, n, D) -> ``|grad E|^2`` (K,) and the exact Laplacian of ``E`` (K,) (n D second derivatives)."""
    norms, laplacians = [], []
    for start in range(0, x.shape[0], chunk):
        with torch.enable_grad():
            xc = x[start:start + chunk].detach().double().requires_grad_(True)
            (grad,) = torch.autograd.grad(energy.energy(xc).sum(), xc, create_graph=True)
            flat = grad.flatten(1)
            laplacian = torch.zeros(xc.shape[0], dtype=xc.dtype)
            for j in range(flat.shape[1]):
                (second,) = torch.autograd.grad(flat[:, j].sum(), xc, retain_graph=True)
                laplacian += second.flatten(1)[:, j].detach()
        norms.append(flat.detach().pow(2).sum(-1))
        laplacians.append(laplacian)
    return torch.cat(norms), torch.cat(laplacians)


def configurational_temperature(energy: ParticleEnergy, x: Tensor) -> float:
    """``<|grad E|^2> / (tau <Laplacian E>)`` over the samples ``x`` (K, n, D); 1 for exact samples.

    Only finite rows count; NaN when none is finite.
    """
    norms, laplacians = gradient_norms_and_laplacians(energy, x)
    finite = torch.isfinite(norms) & torch.isfinite(laplacians)
    if not bool(finite.any()):
        return float("nan")
    return float(norms[finite].mean() / laplacians[finite].mean()) / float(energy.tau)
