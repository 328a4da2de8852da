"""RDKit ETKDGv3 conformer generator: the baseline, and a fallback that needs no checkpoint.

It draws ``num_conformers`` seeded ETKDGv3 embeddings (:func:`~adjoint_sampling.chemistry.embedding.embed_etkdg`);
checks, relaxation (``"mmff"`` / ``"xtb"``), pruning and the result are the shared
:mod:`~adjoint_sampling.generation.pipeline`. ETKDG reports no energies for unrelaxed conformers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import rdkit

from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.parsing import ParsedMolecule
from adjoint_sampling.generation.pipeline import ConformerPipeline, Draw
from adjoint_sampling.generation.types import GenerationRequest

__all__ = ["EtkdgGenerator"]

log = logging.getLogger(__name__)

_THREAD_OPTION: dict[str, str] = {"mmff": "num_threads", "xtb": "num_workers"}
"""Name of each relax backend's thread-count option."""


@dataclass
class EtkdgGenerator(ConformerPipeline):
    """ETKDGv3 conformers (RDKit), seeded, optionally relaxed, checked and pruned.

    Attributes:
        num_threads: threads for RDKit embedding and for the relaxation backend (1 keeps runs
            polite on shared CPUs; parallelise over molecules instead).
        reuse_embedding: keep the last embedding, so a request that differs from the previous
            one only in ``relax`` reuses the identical conformers (benchmarks compare ``etkdg``
            and ``etkdg+mmff`` on the same molecule). The reused embedding's measured cost is
            reported as ``timings["reused_wall"]`` / ``timings["reused_cpu"]`` (seconds).
    """

    num_threads: int = 1
    reuse_embedding: bool = False
    name: str = "rdkit-etkdgv3"
    version: str = rdkit.__version__

    @property
    def reuses_draws(self) -> bool:
        return self.reuse_embedding

    def prepare(self, request: GenerationRequest, molecule: ParsedMolecule | None = None) -> ParsedMolecule:
        return molecule if molecule is not None else self.parse(request)

    def draw(self, prepared: ParsedMolecule, request: GenerationRequest) -> Draw:
        """Seeded ETKDGv3 embeddings (conformer ``i`` with seed ``request.seed + i``); failures counted."""
        positions = embed_etkdg(prepared.mol, request.num_conformers, request.seed, self.num_threads)
        missing = request.num_conformers - positions.shape[0]
        return Draw(positions, {"embedding_failed": missing} if missing else {})

    def relax_options(self, method: str) -> dict[str, Any]:
        return {_THREAD_OPTION[method]: self.num_threads} if method in _THREAD_OPTION else {}
