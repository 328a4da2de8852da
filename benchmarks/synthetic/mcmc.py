"""Reference samples by parallel tempering on the zero-CoM subspace, with a MALA or an HMC kernel.

``num_chains`` independent chains run in parallel (vectorised); each chain has one replica per
temperature of a geometric ladder ``1 = T_0 < ... < T_max`` (in units of the problem's tau);
neighbouring replicas try to swap every ``swap_interval`` steps. Each step moves every replica by
one Metropolis-adjusted proposal: a Langevin step (``kernel="mala"``, one gradient per step) or a
leapfrog trajectory of ``leapfrog_steps`` steps with unit mass (``kernel="hmc"``, that many gradients
per step). Step sizes are adapted per temperature during burn-in (towards ``target_acceptance``)
and frozen afterwards. The reference set is the T = 1 replica of every chain at the end (one sample
per chain, so samples are independent).

Long runs (LJ-55) go through :func:`run_resumable_mcmc`: the whole state, random stream included, is
saved atomically every ``save_every`` steps and on SIGTERM, and a later call (another process,
session or machine) continues it exactly: a run cut into pieces gives the same samples as one
uninterrupted run.

On an accelerator (``device``) the chains' states and energies live there; every random number is
still drawn on the CPU from the settings' seed, so a run's random stream does not depend on the
device (results agree up to float rounding).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor

from adjoint_sampling.core.atomic_io import atomic_torch_save
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.synthetic import ParticleEnergy
from adjoint_sampling.training.stop_signal import StopOnSigterm

__all__ = ["MCMCSettings", "MCMCResult", "MCMCState", "MCMC_KERNELS", "run_reference_mcmc", "run_resumable_mcmc",
           "load_mcmc_state"]

log = logging.getLogger(__name__)

MCMC_KERNELS = ("mala", "hmc")
DEFAULT_TARGET_ACCEPTANCE = {"mala": 0.57, "hmc": 0.65}


@dataclass
class MCMCSettings:
    """Settings of a reference run (written next to the samples)."""

    num_chains: int = 2000
    num_steps: int = 20_000
    burn_in: int = 10_000
    num_temperatures: int = 6
    max_temperature: float = 4.0
    initial_step_size: float = 0.01  # MALA: the Langevin time h; HMC: the leapfrog step
    swap_interval: int = 10
    init_scale: float = 1.0
    init: str = "gaussian"  # "gaussian": N(0, init_scale^2); "grid": jittered cubic grid of spacing init_scale
    seed: int = 0
    kernel: str = "mala"
    leapfrog_steps: int = 10  # HMC only
    target_acceptance: float | None = None  # None: 0.57 (MALA) or 0.65 (HMC)

    def __post_init__(self) -> None:
        if self.kernel not in MCMC_KERNELS:
            raise ConfigError(f"unknown MCMC kernel {self.kernel!r}; choose one of {list(MCMC_KERNELS)}")
        if self.num_chains < 1 or self.num_temperatures < 1 or self.num_steps < 2 or self.leapfrog_steps < 1:
            raise ConfigError("MCMC settings: need at least 1 chain, 1 temperature, 2 steps and 1 leapfrog step")
        if self.max_temperature < 1.0:
            raise ConfigError(f"MCMC settings: the top temperature must be >= 1, got {self.max_temperature}")

    @property
    def acceptance_goal(self) -> float:
        return self.target_acceptance or DEFAULT_TARGET_ACCEPTANCE[self.kernel]

    @property
    def gradients_per_step(self) -> int:
        return self.leapfrog_steps if self.kernel == "hmc" else 1


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
    trace: list[list[float]] = field(default_factory=list)  # [step, T = 1 mean energy] along the run

    def summary(self) -> dict:
        return {"settings": self.settings, "acceptance": self.acceptance, "swap_acceptance": self.swap_acceptance,
                "step_sizes": self.step_sizes, "energy_mean": float(self.energies.mean()),
                "energy_std": float(self.energies.std()), "energy_max": float(self.energies.max()),
                "energy_drift": self.energy_drift, "energy_drift_z": self.energy_drift_z, "warnings": self.warnings,
                "trace": self.trace}


@dataclass
class MCMCState:
    """Everything a run needs to go on exactly where it stopped (all tensors on the CPU when saved).

    ``x``: (C, K, n, D) replicas, ``e``: (C, K) energies, ``g``: (C, K, n, D) energy gradients,
    ``step_sizes``: (K,), ``accepted``: (K,) summed acceptance rates after burn-in, ``swaps``: (K-1,)
    summed swap rates after burn-in; ``rng_state``: the CPU generator's state.
    """

    step: int
    x: Tensor
    e: Tensor
    g: Tensor
    step_sizes: Tensor
    accepted: Tensor
    swaps: Tensor
    swap_tries: int
    counted: int
    mean_after_burn_in: float
    rng_state: Tensor
    settings: dict
    energy: dict
    trace: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0

    def to(self, device: torch.device) -> MCMCState:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("x", "e", "g", "step_sizes", "accepted", "swaps"):
            moved[name] = moved[name].to(device)
        return MCMCState(**moved)


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
        raise ConfigError(f"unknown MCMC init {settings.init!r}")
    n, d = shape[-2], shape[-1]
    side = math.ceil(n ** (1.0 / d) - 1e-9)
    axes = torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * d, indexing="ij")
    grid = torch.stack([a.flatten() for a in axes], -1)[:n] * settings.init_scale
    return grid + 0.05 * settings.init_scale * torch.randn(shape, generator=gen, dtype=torch.float64)


def _ladder(settings: MCMCSettings, tau: float) -> Tensor:
    """Inverse temperatures ``(1, K)``: a geometric ladder from 1 to ``max_temperature`` (units of tau)."""
    k = settings.num_temperatures
    temps = settings.max_temperature ** (torch.arange(k, dtype=torch.float64) / max(k - 1, 1))
    return (1.0 / (temps * tau)).view(1, k)


def initial_mcmc_state(energy: ParticleEnergy, settings: MCMCSettings) -> MCMCState:
    """Step 0 of a run: start positions, their energies and the first step sizes (on the CPU)."""
    gen = torch.Generator().manual_seed(settings.seed)
    c, k, n, d = settings.num_chains, settings.num_temperatures, energy.n_particles, energy.dim
    x = _centre(_initial_positions(settings, (c, k, n, d), gen))
    e, g = energy.energy_and_grad(x.reshape(c * k, n, d))
    return MCMCState(
        step=0, x=x, e=e.view(c, k), g=_centre(g.view(c, k, n, d)),
        step_sizes=torch.full((k,), settings.initial_step_size, dtype=torch.float64),
        accepted=torch.zeros(k, dtype=torch.float64), swaps=torch.zeros(max(k - 1, 1), dtype=torch.float64),
        swap_tries=0, counted=0, mean_after_burn_in=float(e.view(c, k)[:, 0].mean()), rng_state=gen.get_state(),
        settings=asdict(settings), energy=energy.params(),
    )


class _Chains:
    """One run's moves: Metropolis-adjusted kernel steps and replica swaps on ``state`` (in place)."""

    def __init__(self, energy: ParticleEnergy, settings: MCMCSettings, state: MCMCState, device: torch.device):
        self.energy, self.settings, self.device = energy, settings, device
        self.state = state.to(device)
        self.gen = torch.Generator()
        self.gen.set_state(state.rng_state)
        self.beta = _ladder(settings, energy.tau).to(device)
        self.shape = tuple(state.x.shape)

    def _normal(self) -> Tensor:
        return _centre(torch.randn(self.shape, generator=self.gen, dtype=torch.float64).to(self.device))

    def _uniform(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.gen, dtype=torch.float64).to(self.device)

    def _e_and_g(self, z: Tensor) -> tuple[Tensor, Tensor]:
        c, k, n, d = self.shape
        e, g = self.energy.energy_and_grad(z.reshape(c * k, n, d))
        return e.view(c, k), _centre(g.view(c, k, n, d))

    def _mala_proposal(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        s = self.state
        h = s.step_sizes.view(1, -1, 1, 1)
        bx = self.beta.view(1, -1, 1, 1)
        y = s.x - h * bx * s.g + torch.sqrt(2 * h) * self._normal()
        ey, gy = self._e_and_g(y)
        fwd = (y - s.x + h * bx * s.g).pow(2).sum((-2, -1))
        bwd = (s.x - y + h * bx * gy).pow(2).sum((-2, -1))
        log_alpha = -self.beta * (ey - s.e) - (bwd - fwd) / (4 * s.step_sizes.view(1, -1))
        return y, ey, gy, log_alpha

    def _hmc_proposal(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Leapfrog with unit mass on ``H = beta E + |p|^2 / 2``; the step is jittered by +-10 % per
        replica and step so that no trajectory length resonates with a vibration period."""
        s = self.state
        c, k = s.e.shape
        eps = (s.step_sizes.view(1, k) * (0.9 + 0.2 * self._uniform(c, k))).view(c, k, 1, 1)
        bx = self.beta.view(1, k, 1, 1)
        p = self._normal()
        h0 = self.beta * s.e + 0.5 * p.pow(2).sum((-2, -1))
        y, gy = s.x, s.g
        p = p - 0.5 * eps * bx * gy
        for i in range(self.settings.leapfrog_steps):
            y = y + eps * p
            ey, gy = self._e_and_g(y)
            p = p - (0.5 if i == self.settings.leapfrog_steps - 1 else 1.0) * eps * bx * gy
        h1 = self.beta * ey + 0.5 * p.pow(2).sum((-2, -1))
        return y, ey, gy, h0 - h1

    def step(self) -> None:
        s, settings = self.state, self.settings
        y, ey, gy, log_alpha = self._hmc_proposal() if settings.kernel == "hmc" else self._mala_proposal()
        c, k = s.e.shape
        acc = torch.log(self._uniform(c, k)) < torch.nan_to_num(log_alpha, nan=-math.inf)
        s.x = torch.where(acc.view(c, k, 1, 1), y, s.x)
        s.e = torch.where(acc, ey, s.e)
        s.g = torch.where(acc.view(c, k, 1, 1), gy, s.g)
        rate = acc.double().mean(0)
        it = s.step
        if it == settings.burn_in - 1:
            s.mean_after_burn_in = float(s.e[:, 0].mean())
        if it < settings.burn_in:
            s.step_sizes = s.step_sizes * torch.exp(0.05 * (rate - settings.acceptance_goal))  # Robbins-Monro-style
        else:
            s.accepted += rate
            s.counted += 1
        if k > 1 and it % settings.swap_interval == 0:
            self._swap(it)
        s.step += 1
        if s.step % max(settings.num_steps // 100, 1) == 0:
            s.trace.append([s.step, float(s.e[:, 0].mean())])
        if s.step % max(settings.num_steps // 10, 1) == 0:
            log.info("mcmc step %d/%d: mean energy at T=1 %.3f, acceptance %s", s.step, settings.num_steps,
                     float(s.e[:, 0].mean()), [round(float(r), 2) for r in rate])

    def _swap(self, it: int) -> None:
        s, c, k = self.state, self.shape[0], self.shape[1]
        start = (it // self.settings.swap_interval) % 2  # alternate even/odd neighbour pairs
        for i in range(start, k - 1, 2):
            la = (self.beta[0, i] - self.beta[0, i + 1]) * (s.e[:, i] - s.e[:, i + 1])
            sw = torch.log(self._uniform(c)) < la
            for arr in (s.x, s.g, s.e):
                tmp = arr[sw, i].clone()
                arr[sw, i] = arr[sw, i + 1]
                arr[sw, i + 1] = tmp
            if it >= self.settings.burn_in:
                s.swaps[i] += sw.double().mean()
        if it >= self.settings.burn_in:
            s.swap_tries += 1

    def snapshot(self) -> MCMCState:
        """The state on the CPU, with the generator's current state (for saving or finishing)."""
        s = self.state.to(torch.device("cpu"))
        for name in ("x", "e", "g", "step_sizes", "accepted", "swaps"):
            setattr(s, name, getattr(s, name).clone())
        s.trace = [list(row) for row in s.trace]
        s.rng_state = self.gen.get_state()
        return s


def finish_mcmc(state: MCMCState) -> MCMCResult:
    """The reference samples of a completed run, with its acceptance rates and equilibrium checks."""
    settings = MCMCSettings(**state.settings)
    k = settings.num_temperatures
    per_pair_tries = max(state.swap_tries / 2.0, 1.0)
    swap_acceptance = (state.swaps / per_pair_tries).tolist() if k > 1 else []
    e0 = state.e[:, 0]
    drift = float(e0.mean()) - state.mean_after_burn_in
    drift_z = drift / max(math.sqrt(2.0 / settings.num_chains) * float(e0.std()), 1e-12)
    warnings = equilibration_warnings(drift_z, swap_acceptance)
    for text in warnings:
        log.warning("MCMC reference: %s", text)
    return MCMCResult(
        samples=state.x[:, 0].clone(), energies=e0.clone(),
        acceptance=(state.accepted / max(state.counted, 1)).tolist(), swap_acceptance=swap_acceptance,
        step_sizes=state.step_sizes.tolist(), settings=state.settings, energy_drift=drift, energy_drift_z=drift_z,
        warnings=warnings, trace=list(state.trace),
    )


def run_reference_mcmc(energy: ParticleEnergy, settings: MCMCSettings, device: torch.device | str = "cpu") -> MCMCResult:
    """Run the sampler in one go (states on ``device``); returns the final T = 1 states (float64, CPU)."""
    chains = _Chains(energy, settings, initial_mcmc_state(energy, settings), torch.device(device))
    while chains.state.step < settings.num_steps:
        chains.step()
    return finish_mcmc(chains.snapshot())


def load_mcmc_state(path: str | Path) -> MCMCState:
    """A saved run state (see :func:`run_resumable_mcmc`)."""
    data = torch.load(path, weights_only=False)
    return MCMCState(**data)


def _check_resumable(state: MCMCState, energy: ParticleEnergy, settings: MCMCSettings, path: Path) -> None:
    """A saved run continues only under the settings and energy it started with (``num_steps`` may grow)."""
    if state.energy != energy.params():
        raise ConfigError(f"{path} is a run on {state.energy}, not on {energy.params()}")
    wanted = asdict(settings)
    differ = sorted(name for name in wanted if name != "num_steps" and state.settings.get(name) != wanted[name])
    if differ:
        raise ConfigError(f"{path} was started with other MCMC settings ({', '.join(differ)}: "
                          f"{[state.settings.get(n) for n in differ]}, asked {[wanted[n] for n in differ]})")
    if settings.num_steps < state.step:
        raise ConfigError(f"{path} has already run {state.step} steps, more than the {settings.num_steps} asked")


def run_resumable_mcmc(energy: ParticleEnergy, settings: MCMCSettings, state_path: str | Path, *,
                       max_steps: int | None = None, save_every: int = 500,
                       device: torch.device | str = "cpu") -> tuple[MCMCResult | None, MCMCState]:
    """Continue (or start) the run saved at ``state_path`` for at most ``max_steps`` steps.

    The state is written atomically every ``save_every`` steps, at the end and on SIGTERM, so a killed
    process loses at most ``save_every`` steps. Returns the result once ``settings.num_steps`` are
    done (else None) and the state as saved. ``settings.num_steps`` may be raised to extend a run.
    """
    path = Path(state_path)
    if path.exists():
        state = load_mcmc_state(path)
        _check_resumable(state, energy, settings, path)
        state.settings = asdict(settings)
        log.info("MCMC run %s resumed at step %d of %d", path, state.step, settings.num_steps)
    else:
        state = initial_mcmc_state(energy, settings)
    chains = _Chains(energy, settings, state, torch.device(device))
    budget = settings.num_steps if max_steps is None else max_steps
    end = min(settings.num_steps, state.step + budget)
    clock = time.perf_counter()
    with StopOnSigterm() as stop:
        while chains.state.step < end and not stop.requested:
            chains.step()
            if chains.state.step % save_every == 0 and chains.state.step < end:
                _save(chains, path, clock)
                clock = time.perf_counter()
    saved = _save(chains, path, clock)
    if saved.step < settings.num_steps:
        return None, saved
    return finish_mcmc(saved), saved


def _save(chains: _Chains, path: Path, since: float) -> MCMCState:
    state = chains.snapshot()
    state.seconds += time.perf_counter() - since
    chains.state.seconds = state.seconds
    atomic_torch_save(asdict(state), path)
    return state
