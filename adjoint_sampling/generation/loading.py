"""Choose and load the conformer generator the service serves (``AS_MODEL``)."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.generation.types import ConformerGenerator

log = logging.getLogger(__name__)

ETKDG_SPEC = "etkdg"
SHIPPED_MODEL_PATH: Path = Path(str(resources.files("adjoint_sampling.models"))) / "shipped" / "default.pt"
"""The model shipped with the project (``models/shipped/default.pt``)."""


def resolve_model_spec(spec: str | None) -> str:
    """The generator to load: ``spec`` if given, else the shipped checkpoint if it exists, else
    ``"etkdg"``."""
    if spec:
        return spec
    if SHIPPED_MODEL_PATH.is_file():
        return str(SHIPPED_MODEL_PATH)
    log.warning("no shipped model at %s; serving the RDKit ETKDG baseline", SHIPPED_MODEL_PATH)
    return ETKDG_SPEC


def load_generator(spec: str | None) -> ConformerGenerator:
    """Load the generator named by ``spec`` (see :func:`resolve_model_spec`).

    ``"etkdg"`` gives :class:`adjoint_sampling.etkdg.EtkdgGenerator`; anything else is a checkpoint
    path loaded with :meth:`adjoint_sampling.sampler.Sampler.from_checkpoint`.

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
    log.info("serving model %s %s (%s)", generator.name, generator.version, resolved)
    return generator
