"""Multi-process training on CPU with ``torchrun`` (torch.distributed, gloo backend).

Every rank has its own replay buffer and random generator; DDP averages the controller's
gradients. Single-process runs use the same code path with ``world_size = 1``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedContext", "init_distributed", "shutdown_distributed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Sum float values over ranks (identity for one process)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def mean(self, values: list[float]) -> list[float]:
        """Mean of float values over ranks (identity for one process)."""
        return [v / self.world_size for v in self.sum(values)]

    def average_gradients(self, model: nn.Module) -> None:
        """Average the parameters' gradients over ranks in place (for models that cannot be DDP-wrapped,
        such as force-trained potentials, whose loss needs a double backward)."""
        if not self.enabled:
            return
        for param in model.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= self.world_size

    def gather_states(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``state`` (a 1-d uint8 tensor such as a generator state), in rank order."""
        if not self.enabled:
            return [state]
        out = [torch.empty_like(state) for _ in range(self.world_size)]
        dist.all_gather(out, state)
        return out

    def all_equal(self, value: int) -> bool:
        """Whether all ranks hold the same integer."""
        if not self.enabled:
            return True
        lo = torch.tensor([value], dtype=torch.int64)
        hi = lo.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return int(lo) == int(hi)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap ``model`` when distributed (gradients averaged over ranks)."""
        if not self.enabled:
            return model
        return nn.parallel.DistributedDataParallel(model)


def init_distributed() -> DistributedContext:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE`` > 1), else single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    ctx = DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size())
    log.info("distributed training: rank %d of %d (gloo)", ctx.rank, ctx.world_size)
    return ctx


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
