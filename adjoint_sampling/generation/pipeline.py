"""The one conformer pipeline every generator shares.

A generator (the trained :class:`~adjoint_sampling.generation.sampler.Sampler`, the RDKit
:class:`~adjoint_sampling.generation.etkdg.EtkdgGenerator`) only says how to prepare a molecule
and draw raw conformers of it. :meth:`ConformerPipeline.generate` does the rest, in this order:

1. validate the request and parse the SMILES once (or take the molecule a caller already parsed);
2. prepare and draw raw positions ``(B, N, 3)`` in angstrom (a draw may be reused, see below);
3. check every conformer's connectivity and stereochemistry against the input; a fully mirrored
   sample is reflected back where the generator allows it; failures are dropped and counted;
4. relax the survivors if asked, drop failed relaxations, and check them again;
5. otherwise compute energies of the unrelaxed conformers where the generator has an energy model;
6. prune by heavy-atom RMSD if asked;
7. return a :class:`~adjoint_sampling.generation.types.ConformerSet` with drops by reason and timings.

Reuse: with ``reuses_draws`` true, a request that differs from the previous one only in ``relax``
or ``prune_rms`` reuses the same raw draw, and its measured cost is reported as
``timings["reused_wall"]`` / ``timings["reused_cpu"]`` (benchmarks compare ``etkdg`` with
``etkdg+mmff`` on identical conformers).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rdkit import Chem

from adjoint_sampling.chemistry.checks import check_conformers, reflect_positions
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import ParsedMolecule, parse_smiles
from adjoint_sampling.chemistry.rmsd import prune_subset
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.energy.relax import relax
from adjoint_sampling.generation.types import Conformer, ConformerSet, GenerationRequest

__all__ = ["ConformerPipeline", "Draw"]


@dataclass
class Draw:
    """Raw conformers of one molecule, before any check.

    Attributes:
        positions: ``(B, N, 3)`` float64 angstrom, atom order of the parsed molecule.
        dropped: draws that produced no conformer, by reason (e.g. ``{"embedding_failed": 2}``).
        wall_s / cpu_s: wall-clock and CPU seconds of the draw.
    """

    positions: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0


class ConformerPipeline(ABC):
    """Base of the conformer generators: subclasses implement :meth:`prepare` and :meth:`draw`.

    Subclasses also define ``name`` and ``version`` (the generator named in every result).
    """

    name: str
    version: str

    @property
    def reuses_draws(self) -> bool:
        """Whether a draw is kept for the next request with the same molecule, count and seed."""
        return False

    @property
    def reflects_mirrored(self) -> bool:
        """Whether a fully mirrored sample is reflected back instead of dropped (Cartesian samplers)."""
        return False

    def parse(self, request: GenerationRequest) -> ParsedMolecule:
        """Parse and validate the request's molecule (``InvalidMoleculeError`` names the problem)."""
        return parse_smiles(request.smiles, charge=request.charge, multiplicity=request.multiplicity)

    @abstractmethod
    def prepare(self, request: GenerationRequest, molecule: ParsedMolecule | None = None) -> Any:
        """What :meth:`draw` needs of the molecule (parsing it unless ``molecule`` is given)."""

    @abstractmethod
    def draw(self, prepared: Any, request: GenerationRequest) -> Draw:
        """``request.num_conformers`` raw conformers (fewer where some could not be made)."""

    def molecule_of(self, prepared: Any) -> ParsedMolecule:
        """The parsed molecule inside ``prepared`` (``prepared`` itself unless overridden)."""
        return prepared

    def relax_options(self, method: str) -> dict[str, Any]:
        """Extra keyword arguments of :func:`~adjoint_sampling.energy.relax.relax` for ``method``."""
        return {}

    def unrelaxed_energies(self, system: AtomicSystem, positions: np.ndarray) -> tuple[list[float | None], str | None]:
        """Energies (kcal/mol, ``None`` where unknown) of unrelaxed conformers ``(K, N, 3)``, and the
        energy model's name (``None``: this generator reports none)."""
        return [None] * len(positions), None

    def generate(self, request: GenerationRequest, molecule: ParsedMolecule | None = None) -> ConformerSet:
        """Conformers for ``request`` (see the module docstring).

        Args:
            request: what to generate.
            molecule: the request's molecule, if the caller has parsed it already.

        Raises:
            InvalidMoleculeError: the molecule cannot be handled (reason in ``.reason``).
            ConfigError: invalid request options.
        """
        request.validate()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        prepared = self.prepare(request, molecule)
        parsed = self.molecule_of(prepared)
        timings["prepare"] = time.perf_counter() - start

        tic = time.perf_counter()
        drawn = self._draw_or_reuse(prepared, request, timings)
        timings["sample"] = time.perf_counter() - tic
        positions = drawn.positions
        dropped = dict(drawn.dropped)

        tic = time.perf_counter()
        positions, kept, num_reflected = self.check_samples(parsed.mol, positions, list(range(len(positions))), dropped)
        timings["check"] = time.perf_counter() - tic

        energies: list[float | None] = [None] * len(kept)
        energy_model: str | None = None
        system = atomic_system(parsed)
        if kept and request.relax != "none":
            tic = time.perf_counter()
            positions, kept, energies = self._relax_and_recheck(parsed, system, positions, kept, request, dropped)
            energy_model = request.relax
            timings["relax"] = time.perf_counter() - tic
        elif kept:
            tic = time.perf_counter()
            energies, energy_model = self.unrelaxed_energies(system, positions[kept])
            timings["energy"] = time.perf_counter() - tic

        if request.prune_rms is not None and kept:
            tic = time.perf_counter()
            energy_of = dict(zip(kept, energies))
            kept = prune_subset(parsed.mol, positions, kept, float(request.prune_rms), dropped)
            energies = [energy_of[i] for i in kept]
            timings["prune"] = time.perf_counter() - tic
        timings["total"] = time.perf_counter() - start

        mol = Chem.Mol(parsed.mol)
        mol.RemoveAllConformers()
        return ConformerSet(
            smiles=request.smiles,
            mol=mol,
            conformers=[Conformer(positions=positions[i].copy(), energy=e, index=i) for i, e in zip(kept, energies)],
            num_requested=request.num_conformers,
            num_generated=int(len(positions)),
            dropped=dropped,
            num_reflected=num_reflected,
            energy_model=energy_model,
            relax=request.relax,
            model_name=self.name,
            model_version=self.version,
            seed=request.seed,
            timings=timings,
        )

    def check_samples(
        self, mol: Chem.Mol, positions: np.ndarray, indices: list[int], dropped: dict[str, int],
        allow_reflection: bool = True,
    ) -> tuple[np.ndarray, list[int], int]:
        """Check ``positions[indices]`` ``(B, N, 3)``; reflect fully mirrored samples back where the
        generator allows it; count the failures in ``dropped`` by reason.

        Returns the (possibly reflected) positions, the indices that passed, and the reflections.
        """
        if not indices:
            return positions, [], 0
        positions = positions.copy()
        checks = check_conformers(mol, positions[indices])
        kept: list[int] = []
        reflected = 0
        for i, check in zip(indices, checks):
            if check.ok:
                kept.append(i)
            elif check.mirrored and allow_reflection and self.reflects_mirrored:
                mirror = reflect_positions(torch.from_numpy(positions[i])).numpy()
                if check_conformers(mol, mirror[None])[0].ok:
                    positions[i] = mirror
                    kept.append(i)
                    reflected += 1
                else:
                    dropped["mirror_failed"] = dropped.get("mirror_failed", 0) + 1
            else:
                reason = check.reason or "failed_check"
                dropped[reason] = dropped.get(reason, 0) + 1
        return positions, kept, reflected

    def _draw_or_reuse(self, prepared: Any, request: GenerationRequest, timings: dict[str, float]) -> Draw:
        key = (request.smiles, request.charge, request.multiplicity, request.num_conformers, request.seed)
        last: tuple[tuple, Draw] | None = getattr(self, "_last_draw", None)
        if self.reuses_draws and last is not None and last[0] == key:
            timings["reused_wall"], timings["reused_cpu"] = last[1].wall_s, last[1].cpu_s
            return Draw(last[1].positions.copy(), dict(last[1].dropped), last[1].wall_s, last[1].cpu_s)
        wall, cpu = time.perf_counter(), time.process_time()
        drawn = self.draw(prepared, request)
        drawn.wall_s, drawn.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        if self.reuses_draws:
            self._last_draw = (key, Draw(drawn.positions.copy(), dict(drawn.dropped), drawn.wall_s, drawn.cpu_s))
        return drawn

    def _relax_and_recheck(
        self, parsed: ParsedMolecule, system: AtomicSystem, positions: np.ndarray, kept: list[int],
        request: GenerationRequest, dropped: dict[str, int],
    ) -> tuple[np.ndarray, list[int], list[float | None]]:
        """Relax ``positions[kept]``, drop failed relaxations, check the rest again (no reflection)."""
        options = {**request.relax_options(), **self.relax_options(request.relax)}
        result = relax(system, torch.from_numpy(positions[kept]), request.relax, **options)
        relaxed = positions.copy()
        relaxed[kept] = result.positions.detach().cpu().numpy().astype(np.float64)
        failed = {i for i, good in zip(kept, result.ok.tolist()) if not good}
        if failed:
            dropped["relax_failed"] = dropped.get("relax_failed", 0) + len(failed)
        relaxed_energy = dict(zip(kept, result.energy.tolist()))
        still = [i for i in kept if i not in failed]
        relaxed, kept, _ = self.check_samples(parsed.mol, relaxed, still, dropped, allow_reflection=False)
        return relaxed, kept, [relaxed_energy[i] for i in kept]
