"""Where a source checkout keeps its data: the repository root and ``../shared/data`` beside it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "SHARED_DATA_DIR"]

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
"""The repository root of a source checkout (``adjoint_sampling/core/paths.py`` is two levels down)."""

SHARED_DATA_DIR: Path = REPO_ROOT.parent / "shared" / "data"
"""``../shared/data`` next to the repository: the SMILES lists and the CREST reference ensembles."""
