"""Replay buffer: FIFO, sampling, save/load round trip."""

import pytest
import torch

from adjoint_sampling.errors import CheckpointError
from adjoint_sampling.replay_buffer import BufferItem, ReplayBuffer


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
