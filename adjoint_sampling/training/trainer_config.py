"""Hyper-parameters of a training run, as a plain dataclass (no torch import: configs read fast)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adjoint_sampling.core.errors import ConfigError

__all__ = ["TrainerConfig", "RAM_TARGETS", "check_loss_time_window"]

RAM_TARGETS = ("sample", "batch_posterior")


def check_loss_time_window(window: Sequence[float] | None, fraction: float,
                           prefix: str = "") -> tuple[float, float] | None:
    """The loss-time window ``(a, b)`` as floats (``None`` when ``fraction`` is 0); raises
    ``ConfigError`` naming ``prefix + "loss_time_window[_fraction]"`` unless ``fraction`` is in [0, 1]
    and, when it is positive, ``0 <= a < b <= 1``."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"{prefix}loss_time_window_fraction must be in [0, 1], got {fraction}")
    if fraction == 0.0:
        return None
    if window is None or len(window) != 2 or not 0.0 <= float(window[0]) < float(window[1]) <= 1.0:
        raise ConfigError(f"{prefix}loss_time_window must be [a, b] with 0 <= a < b <= 1, got {window}")
    return float(window[0]), float(window[1])


@dataclass
class TrainerConfig:
    """Hyper-parameters of a training run (counts are per rank).

    Attributes:
        iterations: buffer refreshes after the initial fill.
        samples_per_refresh: new systems simulated (= energy calls) per refresh.
        grad_steps_per_refresh: RAM gradient steps after each refresh.
        batch_size: systems per gradient step.
        buffer_capacity: replay buffer size (systems).
        initial_buffer_fill: systems simulated with the untrained control before the first refresh.
        sample_batch_size: systems simulated together in one SDE integration.
        sde_steps / grid_kind / grid_power: Euler-Maruyama grid (see ``time_grid``).
        lr: Adam learning rate; lr_final: cosine-decayed final learning rate (None: constant).
        grad_clip: max global gradient norm (None: no clipping).
        adjoint_clip: max per-row norm of the adjoint (None: no clipping).
        warm_start_steps: bridge-matching steps before RAM (needs problem warm-start samples).
        checkpoint_interval: iterations between checkpoints (1 = after every iteration).
        seed: base seed (rank r uses ``rank_seed(seed, r)``).
        keep_checkpoints: how many older train-state tags to keep beside the latest.
        snapshot_interval: if > 0, keep a copy of the model every that many iterations in
            ``snapshots/`` of the run directory (for measuring how a run's samples move between
            snapshots); 0: none.
        ema_decay: if set, an exponential moving average of the weights (updated after every
            gradient step) is what the model checkpoint stores; buffer refreshes use the live weights.
        loss_time_noise_fraction: share of the RAM loss times drawn with density ``sigma(t)^2 / nu_1``
            instead of uniformly (0: all uniform). More weight where the base process adds its noise,
            where errors of the control cost most; the minimiser is unchanged.
        loss_time_window / loss_time_window_fraction: share of the RAM loss times redrawn uniformly
            on ``[a, b]`` (after the noise share; 0: none). More of the loss where the control is
            found wrong (for LJ-13 the middle of the time axis, benchmarks/RESULTS.md); the
            minimiser is unchanged.
        ram_target: ``"sample"``: regress onto the adjoint of the sample that produced ``X_t`` (the
            paper's RAM); ``"batch_posterior"``: onto its posterior mean over the batch's samples
            and their symmetry images (same minimiser, lower variance; needs a problem with a
            ``symmetry()``, see :mod:`adjoint_sampling.posterior_target`).
        posterior_group_size: candidates per row for ``"batch_posterior"`` (the batch is cut into
            groups of this size).
        importance_fraction: share of each RAM batch drawn from the buffer in proportion to the
            samples' importance weights with respect to the target (the rest uniformly, as in the
            paper; 0: none, and no weights are computed). The weights are exact path weights of the
            simulated chain (:mod:`adjoint_sampling.importance`); the minimiser is unchanged, but
            the regression sees the target's mode weights instead of the model's. Needs a state
            space with a closed-form base density (Cartesian, not torsional).
    """

    iterations: int = 100
    samples_per_refresh: int = 64
    grad_steps_per_refresh: int = 50
    batch_size: int = 128
    buffer_capacity: int = 10_000
    initial_buffer_fill: int = 512
    sample_batch_size: int = 256
    sde_steps: int = 100
    grid_kind: str = "uniform"
    grid_power: float = 2.0
    lr: float = 1e-3
    lr_final: float | None = None
    grad_clip: float | None = 1.0
    adjoint_clip: float | None = None
    warm_start_steps: int = 0
    checkpoint_interval: int = 1
    seed: int = 0
    keep_checkpoints: int = 0
    snapshot_interval: int = 0
    ema_decay: float | None = None
    loss_time_noise_fraction: float = 0.0
    loss_time_window: list[float] | None = None
    loss_time_window_fraction: float = 0.0
    ram_target: str = "sample"
    posterior_group_size: int = 64
    importance_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("iterations", "samples_per_refresh", "grad_steps_per_refresh", "batch_size",
                     "buffer_capacity", "sample_batch_size", "sde_steps", "checkpoint_interval"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.snapshot_interval < 0:
            raise ConfigError(f"trainer.snapshot_interval must be >= 0, got {self.snapshot_interval}")
        if self.initial_buffer_fill < 0 or self.warm_start_steps < 0:
            raise ConfigError("trainer.initial_buffer_fill and trainer.warm_start_steps must be >= 0")
        if not self.lr > 0:
            raise ConfigError(f"trainer.lr must be > 0, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"trainer.ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 <= self.loss_time_noise_fraction <= 1.0:
            raise ConfigError(f"trainer.loss_time_noise_fraction must be in [0, 1], got {self.loss_time_noise_fraction}")
        window = check_loss_time_window(self.loss_time_window, self.loss_time_window_fraction, "trainer.")
        if window is not None:
            self.loss_time_window = list(window)
        if self.ram_target not in RAM_TARGETS:
            raise ConfigError(f"trainer.ram_target must be one of {list(RAM_TARGETS)}, got {self.ram_target!r}")
        if self.posterior_group_size < 1:
            raise ConfigError(f"trainer.posterior_group_size must be >= 1, got {self.posterior_group_size}")
        if not 0.0 <= self.importance_fraction <= 1.0:
            raise ConfigError(f"trainer.importance_fraction must be in [0, 1], got {self.importance_fraction}")
