"""Compiled e3nn arithmetic for fast GNN inference on the CPU.

e3nn generates each ``TensorProduct``'s (and ``Linear``'s) arithmetic as a torch.fx graph of many
small operations; on a CPU they dominate the GNN's energy + forces time. ``torch.compile`` (inductor,
dynamic shapes, so other batch sizes and edge counts do not recompile) fuses that graph and its
backward, the same numbers up to float rounding, 1.5 to 2.5x faster end to end for the NequIP-style
models (benchmarks/RESULTS.md). Compiling costs seconds on the first call of a process (less once the
inductor cache on disk is warm); a machine where compiling fails (no C++ compiler) falls back to
the eager graph with one warning.

For inference only: the fused backward gives forces, not forces' gradients (training keeps eager).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from e3nn import o3
from torch import nn

__all__ = ["CompiledOrEager", "compile_e3nn_codegen"]

log = logging.getLogger(__name__)


class CompiledOrEager(nn.Module):
    """Calls ``torch.compile(eager)``; if compiling fails on the first call, warns once and calls ``eager``.

    A module, so that it can stand where e3nn keeps its generated graph (a child module); the
    compiled function is kept out of the module tree.
    """

    def __init__(self, eager: nn.Module) -> None:
        super().__init__()
        self.eager = eager
        self._compiled: list[Callable[..., Any]] = [torch.compile(eager, dynamic=True)]
        self.proven = False  # a compiled call has succeeded

    def forward(self, *args: Any) -> Any:
        if not self._compiled:
            return self.eager(*args)
        if self.proven:
            return self._compiled[0](*args)
        try:
            out = self._compiled[0](*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager graph computes the same
            first = str(exc).splitlines()[0] if str(exc) else ""
            log.warning("torch.compile of GNN e3nn code failed (%s: %s); using the eager graph",
                        type(exc).__name__, first)
            self._compiled.clear()
            return self.eager(*args)
        self.proven = True
        return out


def compile_e3nn_codegen(module: nn.Module) -> int:
    """Compile the generated arithmetic of every e3nn ``TensorProduct`` and ``Linear`` inside
    ``module`` (in place); returns how many were compiled (0 for a network without them)."""
    count = 0
    for sub in list(module.modules()):
        if isinstance(sub, o3.TensorProduct) and not isinstance(sub._compiled_main_left_right, CompiledOrEager):
            sub._compiled_main_left_right = CompiledOrEager(sub._compiled_main_left_right)
            count += 1
        elif isinstance(sub, o3.Linear) and not isinstance(sub._compiled_main, CompiledOrEager):
            sub._compiled_main = CompiledOrEager(sub._compiled_main)
            count += 1
    return count
