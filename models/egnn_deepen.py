"""Deepen a trained EGNN controller without changing its function.

New message-passing layers are inserted before the last one with their coordinate weight and
feature update zeroed: each is the identity on ``(h, x)`` until training moves it, so a deeper
controller starts exactly where the trained one is. Used to test whether depth, rather than width,
limits a synthetic sampler, without paying for a run from scratch.

    python -m adjoint_sampling.models.egnn_deepen IN.pt OUT.pt --extra-layers 2
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.models.checkpoint import load_model_checkpoint, save_model_checkpoint
from adjoint_sampling.models.egnn import EGNNController, EGNNLayer

__all__ = ["deepen_egnn", "deepen_checkpoint"]

log = logging.getLogger(__name__)


def _identity_layer(template: EGNNLayer, hparams: dict) -> EGNNLayer:
    """A feature-updating layer shaped like ``template`` (of a controller with ``hparams``): output = input."""
    layer = EGNNLayer(int(hparams["hidden"]), 2 * int(hparams["time_frequencies"]), int(hparams["edge_feature_dim"]),
                      update_features=True, max_update=template.max_update, radial=template.radial)
    assert layer.node_mlp is not None
    nn.init.zeros_(layer.node_mlp[-1].weight)  # h + 0: features unchanged
    nn.init.zeros_(layer.node_mlp[-1].bias)
    # coord_mlp's last layer is zero from EGNNLayer's own init: x + 0
    return layer.to(template.edge_mlp[0].weight)


def deepen_egnn(controller: EGNNController, extra_layers: int, seed: int = 0) -> EGNNController:
    """A copy of ``controller`` with ``extra_layers`` identity layers inserted before its last layer.

    The copy computes the same ``f`` (M, D) as ``controller`` for every input; its ``hparams`` say the
    new depth. The new layers' other weights are drawn from ``seed`` (the global random stream is left
    as it was), so the same call writes the same weights. ``ConfigError`` if ``extra_layers`` < 1.
    """
    if extra_layers < 1:
        raise ConfigError(f"extra_layers must be >= 1, got {extra_layers}")
    deeper = copy.deepcopy(controller)
    old = list(deeper.layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = [_identity_layer(old[-1], controller.hparams) for _ in range(extra_layers)]
    deeper.layers = nn.ModuleList(old[:-1] + new + old[-1:])
    deeper.hparams = {**controller.hparams, "num_layers": len(deeper.layers)}
    return deeper


def deepen_checkpoint(src: str | Path, dst: str | Path, extra_layers: int, seed: int = 0) -> None:
    """Write to ``dst`` the model checkpoint ``src`` with its EGNN deepened by ``extra_layers``.

    The rest of the checkpoint (schedule, grid, problem, config, counters) is kept; ``CheckpointError``
    if ``src`` holds another controller than ``egnn``.
    """
    ckpt = load_model_checkpoint(src)
    if ckpt.controller_name != "egnn":
        raise CheckpointError(f"checkpoint {src} holds controller {ckpt.controller_name!r}, not 'egnn'")
    controller = ckpt.build_controller()
    assert isinstance(controller, EGNNController)
    deeper = deepen_egnn(controller, extra_layers, seed)
    save_model_checkpoint(dst, replace(ckpt, controller_hparams=dict(deeper.hparams),
                                       state_dict=deeper.state_dict()))
    log.info("%s: %d -> %d layers, written to %s", src, len(controller.layers), len(deeper.layers), dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="model checkpoint with an EGNN controller")
    parser.add_argument("dst", help="where to write the deepened checkpoint")
    parser.add_argument("--extra-layers", type=int, default=2, help="identity layers to insert (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new layers' initial weights (default 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        deepen_checkpoint(args.src, args.dst, args.extra_layers, args.seed)
    except (CheckpointError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
