"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

# Few cores shared by many processes: one intra-op thread per test process (faster, not slower).
torch.set_num_threads(1)


def _numerical_forces(model, system, positions: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """Central-difference forces ``-dE/dx`` ``(B, N, 3)`` of an ``EnergyModel``, in one batched call.

    ``positions`` is ``(B, N, 3)`` angstrom; ``h`` the displacement in angstrom.
    """
    batch, n, _ = positions.shape
    eye = torch.eye(3 * n, dtype=torch.float64).reshape(3 * n, n, 3) * h
    displaced = torch.cat([positions[:, None] + eye[None], positions[:, None] - eye[None]], dim=1)
    energy = model.energy(system, displaced.reshape(-1, n, 3)).reshape(batch, 2, 3 * n)
    return (-(energy[:, 0] - energy[:, 1]) / (2 * h)).reshape(batch, n, 3)


@pytest.fixture
def numerical_forces() -> Callable[..., torch.Tensor]:
    """``numerical_forces(model, system, positions (B, N, 3), h=1e-4) -> (B, N, 3)`` central differences."""
    return _numerical_forces


@pytest.fixture
def recorded_loss_times(monkeypatch) -> list[torch.Tensor]:
    """Every ``(n,)`` tensor of loss times that ``NoiseSchedule.sample_times`` returns during the test."""
    from adjoint_sampling.sde.schedules import NoiseSchedule

    drawn: list[torch.Tensor] = []
    original = NoiseSchedule.sample_times

    def record(self, *args, **kwargs):
        t = original(self, *args, **kwargs)
        drawn.append(t)
        return t

    monkeypatch.setattr(NoiseSchedule, "sample_times", record)
    return drawn
