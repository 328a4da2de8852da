"""The control window of Adjoint Matching: a windowed control is zero, and not evaluated, before its
start and the control itself from there on, system by system; the window's grid times; bad windows
refused."""

from __future__ import annotations

import pytest
import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.method.control_window import window_indices, windowed_control
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.spaces import EuclideanSpace

BATCH = SystemBatch([0, 1, 2], EuclideanSpace(torch.tensor([0, 0, 1, 2, 2]), 3, 2))


def _recording_control():
    calls = []

    def control(t, x, batch):
        calls.append(t.clone())
        return x * 2 + 1

    return control, calls


def test_a_windowed_control_is_off_before_its_start_and_unchanged_after():
    control, calls = _recording_control()
    field = windowed_control(control, 0.5)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(field(torch.full((3,), 0.3), x, BATCH), torch.zeros(5, 2)) and not calls  # not evaluated
    assert torch.equal(field(torch.full((3,), 0.5), x, BATCH), x * 2 + 1)
    mixed = field(torch.tensor([0.7, 0.2, 0.5]), x, BATCH)  # systems at different times: rows 0-1 on, 2 off, 3-4 on
    assert torch.equal(mixed[[0, 1, 3, 4]], (x * 2 + 1)[[0, 1, 3, 4]]) and torch.equal(mixed[2], torch.zeros(2))
    assert windowed_control(control, 0.0) is control  # no window: the control itself


def test_window_indices_are_the_grid_times_at_or_after_the_start():
    times = torch.tensor([0.001, 0.25, 0.5, 0.75])
    assert window_indices(times, 0.5).tolist() == [2, 3]
    assert window_indices(times, 0.0).tolist() == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="leaves no grid time"):
        window_indices(times, 0.9)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_a_window_outside_zero_to_one_is_refused(bad):
    with pytest.raises(ConfigError, match="control_from must be in"):
        windowed_control(lambda t, x, b: x, bad)
