"""The files shipped in ``models/shipped/`` and the cached loader of the GNN energy model.

``models/shipped/`` is package data of ``adjoint_sampling.models`` (``pyproject.toml``), so these
paths hold in a source checkout and in an installed wheel alike:

* ``default.pt``: the conformer sampler served and used by default (:mod:`~adjoint_sampling.generation.loading`);
* ``energy.pt``: our GNN potential distilled from GFN2-xTB, the energy model of ``relax="gnn"``.

The energy model used by ``relax="gnn"`` is, in this order: a path given by the caller (``sample
--energy-model``, ``AS_ENERGY_MODEL`` read into the service settings), the ``AS_ENERGY_MODEL``
environment variable, the shipped ``energy.pt``. :func:`load_energy_model` loads each checkpoint once
per process.
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from adjoint_sampling.core.errors import AdjointSamplingError, CheckpointError

if TYPE_CHECKING:
    from adjoint_sampling.energy.gnn import GNNEnergy

__all__ = [
    "ENERGY_MODEL_ENV",
    "SHIPPED_DIR",
    "SHIPPED_ENERGY_MODEL_PATH",
    "SHIPPED_MODEL_PATH",
    "load_energy_model",
    "resolve_energy_model_path",
]

log = logging.getLogger(__name__)

SHIPPED_DIR: Path = Path(str(resources.files("adjoint_sampling.models"))) / "shipped"
"""``models/shipped/`` (installed as ``adjoint_sampling/models/shipped/``)."""

SHIPPED_MODEL_PATH: Path = SHIPPED_DIR / "default.pt"
"""The conformer model shipped with the project (``models/shipped/default.pt``)."""

SHIPPED_ENERGY_MODEL_PATH: Path = SHIPPED_DIR / "energy.pt"
"""The GNN energy model shipped with the project (``models/shipped/energy.pt``), used by ``relax="gnn"``."""

ENERGY_MODEL_ENV = "AS_ENERGY_MODEL"
"""Environment variable naming another GNN energy checkpoint for ``relax="gnn"``."""

_MAX_MESSAGE = 300


def resolve_energy_model_path(spec: str | Path | None = None) -> Path:
    """The GNN energy checkpoint of ``relax="gnn"``: ``spec`` if given, else ``$AS_ENERGY_MODEL`` if
    set, else :data:`SHIPPED_ENERGY_MODEL_PATH` (``~`` expanded; the file is not checked here)."""
    if spec is None or str(spec).strip() == "":
        spec = os.environ.get(ENERGY_MODEL_ENV, "").strip() or SHIPPED_ENERGY_MODEL_PATH
    return Path(spec).expanduser()


def load_energy_model(spec: str | Path | None = None) -> GNNEnergy:
    """The GNN energy backend of the checkpoint :func:`resolve_energy_model_path` names, loaded once
    per process and path (later calls return the same object).

    Raises:
        CheckpointError: the file is missing, unreadable or not a GNN potential checkpoint (a one-line
            message naming the path).
    """
    path = resolve_energy_model_path(spec)
    return _load_energy_model(str(path.resolve()) if path.exists() else str(path))


@functools.lru_cache(maxsize=4)
def _load_energy_model(path: str) -> GNNEnergy:
    from adjoint_sampling.energy.gnn import GNNEnergy

    if not Path(path).is_file():
        raise CheckpointError(
            f"energy model {path!r} does not exist (set {ENERGY_MODEL_ENV} or --energy-model to a GNN checkpoint)"
        )
    try:
        model = GNNEnergy(checkpoint_path=path)
    except AdjointSamplingError as exc:
        if exc.__cause__ is not None:  # torch.load failed: its message is pages of advice
            raise CheckpointError(
                f"energy model {path!r} cannot be read: corrupt, truncated or not a torch checkpoint "
                f"({type(exc.__cause__).__name__})"
            ) from None
        raise CheckpointError(f"energy model {path!r}: {_one_line(exc)}") from None
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # weights that do not fit the architecture
        raise CheckpointError(f"energy model {path!r} is not a usable GNN checkpoint: {_one_line(exc)}") from None
    if model.compiled:  # compile at load time (service start-up), not in the first request
        model.warm_up()
    log.info("loaded GNN energy model %s%s", path, " (compiled)" if model.compiled else "")
    return model


def _one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, shortened (torch's unpickling errors span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
