"""Choose and load the conformer generator the service serves (``AS_MODEL``)."""

from __future__ import annotations

import logging
from pathlib import Path

from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.generation.shipped import SHIPPED_MODEL_PATH
from adjoint_sampling.generation.types import ConformerGenerator

log = logging.getLogger(__name__)

__all__ = ["ETKDG_SPEC", "SHIPPED_MODEL_PATH", "load_generator", "resolve_model_spec"]

ETKDG_SPEC = "etkdg"


def resolve_model_spec(spec: str | None) -> str:
    """The generator to load: ``spec`` if given, else the shipped checkpoint if it exists, else
    ``"etkdg"``."""
    if spec:
        return spec
    if SHIPPED_MODEL_PATH.is_file():
        return str(SHIPPED_MODEL_PATH)
    log.warning("no shipped model at %s; serving the RDKit ETKDG baseline", SHIPPED_MODEL_PATH)
    return ETKDG_SPEC


def load_generator(spec: str | None, energy_model: str | Path | None = None) -> ConformerGenerator:
    """Load the generator named by ``spec`` (see :func:`resolve_model_spec`).

    ``"etkdg"`` gives :class:`adjoint_sampling.etkdg.EtkdgGenerator`; anything else is a checkpoint
    path loaded with :meth:`adjoint_sampling.sampler.Sampler.from_checkpoint`. ``energy_model`` is
    the GNN energy checkpoint of ``relax="gnn"`` (``None``: ``AS_ENERGY_MODEL``, else the shipped
    one; see :mod:`~adjoint_sampling.generation.shipped`); it is loaded when first used.

    Raises:
        CheckpointError: the checkpoint file does not exist (or the loader refuses it).
    """
    resolved = resolve_model_spec(spec)
    if resolved.lower() == ETKDG_SPEC:
        from adjoint_sampling.generation.etkdg import EtkdgGenerator

        generator: ConformerGenerator = EtkdgGenerator()
    else:
        path = Path(resolved).expanduser()
        if not path.is_file():
            raise CheckpointError(f"AS_MODEL: checkpoint {str(path)!r} does not exist (or use AS_MODEL=etkdg)")
        from adjoint_sampling.generation.sampler import Sampler

        generator = Sampler.from_checkpoint(path)
    if energy_model is not None:
        generator.relax_energy_path = str(energy_model)  # type: ignore[attr-defined]  # a ConformerPipeline
    log.info("serving model %s %s (%s)", generator.name, generator.version, resolved)
    return generator
