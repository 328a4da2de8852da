"""Reference samples by parallel-tempering MALA (Metropolis-adjusted Langevin) on the zero-CoM subspace.

``num_chains`` independent chains run in parallel (vectorised); each chain has one replica per
temperature of a geometric ladder ``1 = T_0 < ... < T_max`` (in units of the problem's tau);
neighbouring replicas try to swap every ``swap_interval`` steps. Step sizes are adapted per
temperature during burn-in (towards ~57% acceptance) and frozen afterwards. The reference set is
the T = 1 replica of every chain at the end (one sample per chain, so samples are independent).

On an accelerator (``device``) the chains' states and energies live there; every random number is
still drawn on the CPU from the settings' seed, so a run's random stream does not depend on the
device (results agree up to float rounding).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from adjoint_sampling.energy.synthetic import ParticleEnergy

__all__ = ["MCMCSettings", "MCMCResult", "run_reference_mcmc"]

log = logging.getLogger(__name__)


@dataclass
class MCMCSettings:
    """Settings of :func:`run_reference_mcmc` (written next to the samples)."""

    num_chains: int = 2000
    num_steps: int = 20_000
    burn_in: int = 10_000
    num_temperatures: int = 6
    max_temperature: float = 4.0
    initial_step_size: float = 0.01
    swap_interval: int = 10
    init_scale: float = 1.0
    init: str = "gaussian"  # "gaussian": N(0, init_scale^2); "grid": jittered cubic grid of spacing init_scale
    seed: int = 0


@dataclass
class MCMCResult:
    samples: Tensor  # (num_chains, n, D) float64 at T = 1
    energies: Tensor  # (num_chains,)
    acceptance: list[float]  # per temperature, after burn-in
    swap_acceptance: list[float]  # per neighbouring pair, after burn-in
    step_sizes: list[float]  # per temperature (frozen after burn-in)
    settings: dict
    energy_drift: float = 0.0  # T = 1 mean energy at the end minus at the end of burn-in
    energy_drift_z: float = 0.0  # that drift in standard errors of a difference of two means
    warnings: list[str] = field(default_factory=list)  # signs that the chains are not at equilibrium

    def summary(self) -> dict:
        return {"settings": self.settings, "acceptance": self.acceptance, "swap_acceptance": self.swap_acceptance,
                "step_sizes": self.step_sizes, "energy_mean": float(self.energies.mean()),
                "energy_std": float(self.energies.std()), "energy_max": float(self.energies.max()),
                "energy_drift": self.energy_drift, "energy_drift_z": self.energy_drift_z, "warnings": self.warnings}


MAX_DRIFT_Z = 4.0
"""Drift of the T = 1 mean energy over the sampling phase, in standard errors, above which the run warns."""
MIN_SWAP_ACCEPTANCE = 0.01
"""Swap acceptance below which neighbouring temperatures are too far apart to help."""


def equilibration_warnings(drift_z: float, swap_acceptance: list[float]) -> list[str]:
    """Plain-language warnings for a drifting mean energy or temperatures that never swap."""
    out = []
    if abs(drift_z) > MAX_DRIFT_Z:
        out.append(f"the T = 1 mean energy moved by {drift_z:.1f} standard errors after burn-in: the chains are "
                   f"not at equilibrium (run more steps)")
    low = [i for i, a in enumerate(swap_acceptance) if a < MIN_SWAP_ACCEPTANCE]
    if low:
        out.append(f"swap acceptance below {MIN_SWAP_ACCEPTANCE} between temperatures {low} and the next: "
                   f"tempering does not mix them (use more, closer temperatures)")
    return out


def _centre(x: Tensor) -> Tensor:
    return x - x.mean(dim=-2, keepdim=True)


def _initial_positions(settings: MCMCSettings, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Start states ``shape = (C, K, n, D)``; a grid start avoids overlapping particles (LJ)."""
    if settings.init == "gaussian":
        return torch.randn(shape, generator=gen, dtype=torch.float64) * settings.init_scale
    if settings.init != "grid":
        raise ValueError(f"unknown MCMC init {settings.init!r}")
    n, d = shape[-2], shape[-1]
    side = math.ceil(n ** (1.0 / d) - 1e-9)
    axes = torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * d, indexing="ij")
    grid = torch.stack([a.flatten() for a in axes], -1)[:n] * settings.init_scale
    return grid + 0.05 * settings.init_scale * torch.randn(shape, generator=gen, dtype=torch.float64)


def run_reference_mcmc(energy: ParticleEnergy, settings: MCMCSettings, device: torch.device | str = "cpu") -> MCMCResult:
    """Run the sampler (states on ``device``); returns the final T = 1 states of all chains (float64, CPU)."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(settings.seed)
    c, k, n, d = settings.num_chains, settings.num_temperatures, energy.n_particles, energy.dim
    temps = settings.max_temperature ** (torch.arange(k, dtype=torch.float64) / max(k - 1, 1))
    beta = (1.0 / (temps * energy.tau)).view(1, k).to(device)
    x = _centre(_initial_positions(settings, (c, k, n, d), gen)).to(device)
    step = torch.full((k,), settings.initial_step_size, dtype=torch.float64, device=device)

    def uniform(*shape: int) -> Tensor:
        return torch.rand(shape, generator=gen, dtype=torch.float64).to(device)

    def e_and_g(z: Tensor) -> tuple[Tensor, Tensor]:
        e, g = energy.energy_and_grad(z.reshape(c * k, n, d))
        return e.view(c, k), _centre(g.view(c, k, n, d))

    e, g = e_and_g(x)
    mean_after_burn_in = float(e[:, 0].mean())
    accepted = torch.zeros(k, dtype=torch.float64, device=device)
    swaps = torch.zeros(max(k - 1, 1), dtype=torch.float64, device=device)
    swap_tries = 0
    counted = 0
    for it in range(settings.num_steps):
        h = step.view(1, k, 1, 1)
        noise = _centre(torch.randn(x.shape, generator=gen, dtype=torch.float64).to(device))
        bx = beta.view(1, k, 1, 1)
        y = x - h * bx * g + torch.sqrt(2 * h) * noise
        ey, gy = e_and_g(y)
        fwd = (y - x + h * bx * g).pow(2).sum((-2, -1))
        bwd = (x - y + h * bx * gy).pow(2).sum((-2, -1))
        log_alpha = -beta * (ey - e) - (bwd - fwd) / (4 * h.view(1, k))
        acc = torch.log(uniform(c, k)) < torch.nan_to_num(log_alpha, nan=-math.inf)
        x = torch.where(acc.view(c, k, 1, 1), y, x)
        e = torch.where(acc, ey, e)
        g = torch.where(acc.view(c, k, 1, 1), gy, g)
        rate = acc.double().mean(0)
        if it == settings.burn_in - 1:
            mean_after_burn_in = float(e[:, 0].mean())
        if it < settings.burn_in:
            step = step * torch.exp(0.05 * (rate - 0.57))  # Robbins-Monro-style adaptation
        else:
            accepted += rate
            counted += 1
        if k > 1 and it % settings.swap_interval == 0:
            start = (it // settings.swap_interval) % 2  # alternate even/odd neighbour pairs
            for i in range(start, k - 1, 2):
                la = (beta[0, i] - beta[0, i + 1]) * (e[:, i] - e[:, i + 1])
                sw = torch.log(uniform(c)) < la
                for arr in (x, g):
                    tmp = arr[sw, i].clone()
                    arr[sw, i] = arr[sw, i + 1]
                    arr[sw, i + 1] = tmp
                tmp_e = e[sw, i].clone()
                e[sw, i] = e[sw, i + 1]
                e[sw, i + 1] = tmp_e
                if it >= settings.burn_in:
                    swaps[i] += sw.double().mean()
            if it >= settings.burn_in:
                swap_tries += 1
        if (it + 1) % max(settings.num_steps // 10, 1) == 0:
            log.info("mcmc step %d/%d: mean energy at T=1 %.3f, acceptance %s", it + 1, settings.num_steps,
                     float(e[:, 0].mean()), [round(float(r), 2) for r in rate])
    per_pair_tries = max(swap_tries / 2.0, 1.0)
    swap_acceptance = (swaps / per_pair_tries).tolist() if k > 1 else []
    drift = float(e[:, 0].mean()) - mean_after_burn_in
    drift_z = drift / max(math.sqrt(2.0 / c) * float(e[:, 0].std()), 1e-12)
    warnings = equilibration_warnings(drift_z, swap_acceptance)
    for text in warnings:
        log.warning("MCMC reference: %s", text)
    return MCMCResult(
        samples=x[:, 0].cpu().clone(), energies=e[:, 0].cpu().clone(),
        acceptance=(accepted / max(counted, 1)).tolist(), swap_acceptance=swap_acceptance,
        step_sizes=step.tolist(), settings=asdict(settings), energy_drift=drift, energy_drift_z=drift_z,
        warnings=warnings,
    )
