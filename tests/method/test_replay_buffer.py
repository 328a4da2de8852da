"""Replay buffer: FIFO, sampling, save/load round trip."""

import math

import pytest
import torch

from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.method.replay_buffer import BufferItem, ReplayBuffer


def _item(k, n=3):
    return BufferItem(key=k, x1=torch.full((n, 2), float(k)), adjoint=torch.full((n, 2), -float(k)), energy=0.5 * k)


def test_fifo_and_sampling():
    buf = ReplayBuffer(4)
    buf.push(_item(k) for k in range(6))
    assert len(buf) == 4
    assert sorted(it.key for it in buf.sample(4, torch.Generator().manual_seed(0))) == [2, 3, 4, 5]
    many = buf.sample(50, torch.Generator().manual_seed(0))  # with replacement
    assert len(many) == 50 and {it.key for it in many} <= {2, 3, 4, 5}
    assert torch.allclose(buf.energies(), torch.tensor([1.0, 1.5, 2.0, 2.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2).sample(1, None)


def test_save_load_round_trip(tmp_path):
    buf = ReplayBuffer(5)
    buf.push(_item(k, n=2 + k % 3) for k in range(7))
    torch.save(buf.save_state(), tmp_path / "b.pt")
    other = ReplayBuffer(1)
    other.load_state(torch.load(tmp_path / "b.pt", weights_only=False))
    assert other.capacity == 5 and len(other) == len(buf)
    for a, b in zip(buf.sample(5, torch.Generator().manual_seed(1)), other.sample(5, torch.Generator().manual_seed(1))):
        assert a.key == b.key and a.energy == b.energy
        assert torch.equal(a.x1, b.x1) and torch.equal(a.adjoint, b.adjoint)
    other.push([_item(9)])  # still FIFO with the restored capacity
    assert len(other) == 5 and other.sample(5, None)
    with pytest.raises(CheckpointError, match="missing"):
        ReplayBuffer(2).load_state({"keys": []})


def test_log_weights_round_trip_and_weighted_draw(tmp_path):
    buf = ReplayBuffer(10)
    buf.push(BufferItem(key=0, x1=torch.zeros(2, 2), adjoint=torch.zeros(2, 2), energy=1.0, log_weight=lw)
             for lw in (0.0, math.log(9.0)))
    buf.push(BufferItem(key=1, x1=torch.zeros(3, 2), adjoint=torch.zeros(3, 2), energy=2.0, log_weight=-40.0)
             for _ in range(2))
    draws = buf.sample_by_weight(4000, torch.Generator().manual_seed(0))
    heavy = sum(1 for it in draws if it.log_weight > 1.0)
    light = sum(1 for it in draws if it.key == 0 and it.log_weight == 0.0)
    other = sum(1 for it in draws if it.key == 1)
    # system 0 keeps half of the draws, split 9 : 1 by weight; system 1 keeps its half
    assert abs(heavy - 1800) < 120 and abs(light - 200) < 60 and abs(other - 2000) < 120
    other_buf = ReplayBuffer(1)
    other_buf.load_state(buf.save_state())
    assert torch.equal(other_buf.log_weights(), buf.log_weights())
    old = buf.save_state()
    old.pop("log_weight")  # a state written before weights were kept: all zero
    other_buf.load_state(old)
    assert other_buf.log_weights().tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2).sample_by_weight(1, None)
