"""The one conformer pipeline every generator shares.

A generator (the trained :class:`~adjoint_sampling.generation.sampler.Sampler`, the RDKit
:class:`~adjoint_sampling.generation.etkdg.EtkdgGenerator`) only says how to prepare a molecule
and draw raw conformers of it. :meth:`ConformerPipeline.generate` does the rest, in this order:

1. validate the request and parse the SMILES once (or take the molecule a caller already parsed;
   with ``strip_fragments`` counter-ions and solvents are stripped and reported);
2. prepare and draw raw positions ``(B, N, 3)`` in angstrom (a draw may be reused, see below);
3. check every conformer's connectivity and stereochemistry against the input; a fully mirrored
   sample is reflected back where the generator allows it; failures are dropped and counted;
4. relax the survivors if asked, drop failed relaxations, and check them again (``relax="gnn"``
   uses the GNN energy model of :mod:`~adjoint_sampling.generation.shipped`, checked against the
   molecule before anything is drawn: unsupported elements and charges are refused, a molecule
   larger than its training data gets a ``ConformerSet.warnings`` entry);
5. n in, n out: while fewer than ``num_conformers`` passed, draw again (what is missing, scaled by
   the pass rate so far, seeds advanced) up to ``max_draw_multiple`` raw draws per requested
   conformer; valid conformers beyond ``num_conformers`` are counted as ``dropped["surplus"]``.
   A generator with a :class:`RelaxedSelection` draws ``draws_per_conformer`` times as many for a
   request with a relaxation, relaxes them all (or prescreens them with a few optimiser
   iterations), keeps the lowest in relaxed energy that are distinct (``dropped["not_selected"]``)
   and, after a prescreen, relaxes those to the end;
6. energies of the unrelaxed conformers where the generator has an energy model;
7. prune by heavy-atom RMSD, keep the ``energy_window`` above the lowest, sort by energy, if asked;
8. return a :class:`~adjoint_sampling.generation.types.ConformerSet` with drops by reason and timings.

Reuse: with ``reuses_draws`` true, a request that differs from the previous one only in ``relax``
or ``prune_rms`` reuses the same raw draw, and its measured cost is reported as
``timings["reused_wall"]`` / ``timings["reused_cpu"]`` (benchmarks compare ``etkdg`` with
``etkdg+mmff`` on identical conformers).
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem

from adjoint_sampling.chemistry.checks import check_conformers, reflect_positions
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import ParsedMolecule, parse_smiles
from adjoint_sampling.chemistry.rmsd import prune_subset
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import InvalidMoleculeError, InvalidOptionError
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.energy.relax import relax
from adjoint_sampling.generation.selection import select_low_energy_distinct
from adjoint_sampling.generation.shipped import load_energy_model
from adjoint_sampling.generation.types import Conformer, ConformerSet, GenerationRequest

__all__ = ["ConformerPipeline", "Draw", "RelaxedSelection"]


@dataclass(frozen=True)
class RelaxedSelection:
    """How a generator chooses relaxed conformers out of more draws (pipeline step 5).

    Attributes:
        draws_per_conformer: ``ceil(draws_per_conformer * n)`` draws for ``n`` requested (>= 1; 1: the
            generator draws otherwise for relaxation, see its ``relaxed_selection``, and the pipeline
            keeps every draw).
        min_rmsd: least heavy-atom symmetric RMSD between the conformers kept, angstrom.
        prescreen_steps: > 0: every draw is first relaxed by at most this many optimiser iterations,
            the ``n`` are chosen on those energies, and only they are relaxed to the end; 0: every
            draw is relaxed to the end before choosing.
    """

    draws_per_conformer: float
    min_rmsd: float
    prescreen_steps: int = 0

    def __post_init__(self) -> None:
        if not self.draws_per_conformer >= 1.0 or not self.min_rmsd >= 0.0 or self.prescreen_steps < 0:
            raise ValueError("a relaxed selection takes draws_per_conformer >= 1, min_rmsd >= 0 and "
                             f"prescreen_steps >= 0, got {self}")


@dataclass
class Draw:
    """Raw conformers of one molecule, before any check.

    Attributes:
        positions: ``(B, N, 3)`` float64 angstrom, atom order of the parsed molecule.
        dropped: draws that produced no conformer, by reason (e.g. ``{"embedding_failed": 2}``).
        wall_s / cpu_s: wall-clock and CPU seconds of the draw.
        energies: ``(B,)`` float64 kcal/mol of ``positions`` on the generator's reported-energy
            backend where the draw computed them anyway (NaN: not known), or ``None``.
        energy_model: the backend of ``energies``.
    """

    positions: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    energies: np.ndarray | None = None
    energy_model: str | None = None


class ConformerPipeline(ABC):
    """Base of the conformer generators: subclasses implement :meth:`prepare` and :meth:`draw`.

    Subclasses also define ``name`` and ``version`` (the generator named in every result).

    Attributes:
        relax_energy_path: GNN energy checkpoint of ``relax="gnn"`` (``None``: ``AS_ENERGY_MODEL``,
            else the shipped ``models/shipped/energy.pt``); loaded once per process and path.
    """

    name: str
    version: str
    relax_energy_path: str | Path | None = None

    @property
    def reuses_draws(self) -> bool:
        """Whether a draw is kept for the next request with the same molecule, count and seed."""
        return False

    @property
    def reflects_mirrored(self) -> bool:
        """Whether a fully mirrored sample is reflected back instead of dropped (Cartesian samplers)."""
        return False

    @property
    def reports_unrelaxed_energies(self) -> bool:
        """Whether :meth:`unrelaxed_energies` gives energies (needed by ``energy_window`` and ``sort``)."""
        return False

    def parse(self, request: GenerationRequest, **options: Any) -> ParsedMolecule:
        """Parse and validate the request's molecule (``InvalidMoleculeError`` names the problem);
        ``options`` are further keyword arguments of :func:`~adjoint_sampling.chemistry.parsing.parse_smiles`."""
        return parse_smiles(
            request.smiles, charge=request.charge, multiplicity=request.multiplicity,
            strip_fragments=request.strip_fragments, **options,
        )

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

    def relaxed_selection(self, method: str) -> RelaxedSelection | None:
        """How a request relaxed with ``method`` (``"mmff"``, ``"gnn"``, ...) chooses its conformers out
        of more draws (``None``: it relaxes exactly the draws it returns)."""
        return None

    def relax_backend(self, method: str) -> str | EnergyModel:
        """What :func:`~adjoint_sampling.energy.relax.relax` relaxes with for ``method``: the loaded
        GNN energy model for ``"gnn"`` (raises ``CheckpointError`` if it cannot be loaded), else the name."""
        if method == "gnn":
            return load_energy_model(self.relax_energy_path)
        return method

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
            InvalidMoleculeError: the molecule cannot be handled (reason in ``.reason``; with
                ``relax="gnn"`` also an element or total charge the GNN energy model does not support).
            InvalidOptionError: invalid request options.
            CheckpointError: ``relax="gnn"`` and the GNN energy model cannot be loaded.
        """
        request.validate()
        if request.energy_window is not None and request.relax == "none" and not self.reports_unrelaxed_energies:
            raise InvalidOptionError(
                "energy_window", "needs_energies", f"needs conformer energies; {self.name} reports none unless relax is set"
            )
        timings: dict[str, float] = {}
        start = time.perf_counter()
        prepared = self.prepare(request, molecule)
        parsed = self.molecule_of(prepared)
        system = atomic_system(parsed)
        backend, warnings = self._relax_backend_for(system, request.relax)
        timings["prepare"] = time.perf_counter() - start

        selection = self.relaxed_selection(request.relax) if request.relax != "none" else None
        rounds = self._draw_until_enough(prepared, parsed, system, request, backend, timings, selection)
        positions = np.concatenate([r.positions for r in rounds])  # at least one round drew a conformer
        dropped: dict[str, int] = {}
        for r in rounds:
            for reason, count in r.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        kept = [i for r in rounds for i in r.kept]
        energy_of = {i: e for r in rounds for i, e in r.energies.items()}
        if selection is not None and kept:
            tic = time.perf_counter()
            positions, kept = self._select_relaxed(parsed, system, positions, kept, energy_of, request, backend,
                                                   selection, dropped)
            timings["relaxed_selection"] = time.perf_counter() - tic
        if len(kept) > request.num_conformers:
            dropped["surplus"] = len(kept) - request.num_conformers
            kept = kept[: request.num_conformers]

        energy_model: str | None = request.relax if request.relax != "none" else None
        if kept and request.relax == "none":
            tic = time.perf_counter()
            energy_of, energy_model = self._unrelaxed_energy_of(system, positions, kept, rounds)
            timings["energy"] = time.perf_counter() - tic

        if request.prune_rms is not None and kept:
            tic = time.perf_counter()
            kept = prune_subset(parsed.mol, positions, kept, float(request.prune_rms), dropped)
            timings["prune"] = time.perf_counter() - tic
        if request.energy_window is not None:
            kept = _within_window(kept, energy_of, float(request.energy_window), dropped)
        sort = request.sort and any(energy_of.get(i) is not None for i in kept)
        if sort:
            kept = sorted(kept, key=lambda i: (energy_of.get(i) is None, energy_of.get(i) or 0.0, i))
        timings["total"] = time.perf_counter() - start

        mol = Chem.Mol(parsed.mol)
        mol.RemoveAllConformers()
        return ConformerSet(
            smiles=request.smiles,
            mol=mol,
            conformers=[Conformer(positions=positions[i].copy(), energy=energy_of.get(i), index=i) for i in kept],
            num_requested=request.num_conformers,
            num_generated=int(len(positions)),
            dropped=dropped,
            num_reflected=sum(r.num_reflected for r in rounds),
            energy_model=energy_model,
            relax=request.relax,
            model_name=self.name,
            model_version=self.version,
            seed=request.seed,
            timings=timings,
            removed_fragments=tuple(parsed.removed_fragments),
            sorted_by_energy=sort,
            warnings=warnings,
        )

    def _unrelaxed_energy_of(
        self, system: AtomicSystem, positions: np.ndarray, kept: list[int], rounds: list[_Round]
    ) -> tuple[dict[int, float | None], str | None]:
        """Energies of the unrelaxed conformers ``positions[kept]``: those the draws computed, the rest
        from :meth:`unrelaxed_energies`; and the energy model's name."""
        known = {i: e for r in rounds for i, e in r.raw_energies.items()}
        name = next((r.raw_energy_model for r in rounds if r.raw_energies), None)
        energy_of: dict[int, float | None] = {i: known[i] for i in kept if i in known}
        missing = [i for i in kept if i not in known]
        if missing:
            values, computed = self.unrelaxed_energies(system, positions[missing])
            energy_of.update(zip(missing, values))
            name = name or computed
        return energy_of, name

    def _relax_backend_for(self, system: AtomicSystem, method: str) -> tuple[str | EnergyModel, tuple[str, ...]]:
        """The relaxation backend of ``method`` checked against ``system``, and its warnings on it.

        Raises:
            InvalidMoleculeError: the backend refuses the molecule (``unsupported_element``,
                ``unsupported_charge``), before anything is drawn.
        """
        backend = self.relax_backend(method)
        if not isinstance(backend, EnergyModel):
            return backend, ()
        backend.check_system(system)
        warnings = tuple(backend.applicability_warnings(system))
        return backend, warnings

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

    def _draw_until_enough(
        self, prepared: Any, parsed: ParsedMolecule, system: AtomicSystem, request: GenerationRequest,
        backend: str | EnergyModel, timings: dict[str, float], selection: RelaxedSelection | None = None,
    ) -> list[_Round]:
        """Draw, check and relax rounds until ``num_conformers`` passed or ``max_draw_multiple``
        draws per requested conformer are spent (with a ``selection``: its ``draws_per_conformer``
        times as many in round 0 and in the budget; relaxed by its ``prescreen_steps`` if any).

        Round 0 is the request itself. A later round draws what is missing, scaled by the pass rate
        so far, with the seed advanced by the number drawn (ETKDG's sequential seeds continue).
        """
        wanted = request.num_conformers
        first = wanted if selection is None else math.ceil(selection.draws_per_conformer * wanted)
        budget = first * request.max_draw_multiple
        relax_steps = None if selection is None or not selection.prescreen_steps else selection.prescreen_steps
        rounds: list[_Round] = []
        drawn = passed = rows = 0
        while passed < wanted and drawn < budget:
            missing = wanted - passed
            size = first if not rounds else min(budget - drawn, math.ceil(missing * drawn / max(passed, 1)))
            part = request if size == wanted and not rounds else dataclasses.replace(
                request, num_conformers=size, seed=request.seed + drawn)
            tic = time.perf_counter()
            draw = self._draw_or_reuse(prepared, part, request, timings, selection is not None)
            timings["sample"] = timings.get("sample", 0.0) + time.perf_counter() - tic
            current = self._check_and_relax(parsed, system, draw, rows, request, backend, timings, relax_steps)
            rounds.append(current)
            drawn += part.num_conformers
            rows += len(draw.positions)
            passed += len(current.kept)
        if rows == 0:
            raise InvalidMoleculeError("no_conformer", f"{self.name} could not make any conformer of {request.smiles!r}")
        return rounds

    def _check_and_relax(
        self, parsed: ParsedMolecule, system: AtomicSystem, draw: Draw, offset: int, request: GenerationRequest,
        backend: str | EnergyModel, timings: dict[str, float], relax_steps: int | None = None,
    ) -> _Round:
        """Check one round's draw, relax what passed and check it again; indices start at ``offset``;
        ``relax_steps``: at most that many optimiser iterations (a prescreen), else the request's."""
        dropped = dict(draw.dropped)
        tic = time.perf_counter()
        positions, kept, reflected = self.check_samples(parsed.mol, draw.positions, list(range(len(draw.positions))), dropped)
        timings["check"] = timings.get("check", 0.0) + time.perf_counter() - tic
        energies: dict[int, float | None] = {}
        if kept and request.relax != "none":
            tic = time.perf_counter()
            positions, kept, values = self._relax_and_recheck(
                parsed, system, positions, kept, request, backend, dropped, relax_steps)
            energies = dict(zip(kept, values))
            timings["relax"] = timings.get("relax", 0.0) + time.perf_counter() - tic
        raw = {} if draw.energies is None else {
            offset + i: float(draw.energies[i]) for i in kept if math.isfinite(draw.energies[i])}
        return _Round(
            positions=positions, kept=[offset + i for i in kept], energies={offset + i: e for i, e in energies.items()},
            dropped=dropped, num_reflected=reflected, raw_energies=raw, raw_energy_model=draw.energy_model,
        )

    def _draw_or_reuse(
        self, prepared: Any, part: GenerationRequest, request: GenerationRequest, timings: dict[str, float],
        selecting: bool = False,
    ) -> Draw:
        """``self.draw(prepared, part)``, or the same draw of the previous request when only its
        relaxation or pruning differed (``reuses_draws``); ``selecting``: the request has a relaxed
        selection, whose generator may draw otherwise (see :class:`RelaxedSelection`), so it never
        shares draws with a request without one."""
        base = (request.smiles, request.charge, request.multiplicity, request.num_conformers, request.seed,
                request.strip_fragments, request.max_draw_multiple, selecting)
        key = (part.num_conformers, part.seed)
        # the draws of the last request (its rounds), kept on the generator between calls
        cache: tuple[tuple, dict[tuple, Draw]] = getattr(self, "_draw_cache", ((), {}))
        if self.reuses_draws and cache[0] == base and key in cache[1]:
            last = cache[1][key]
            timings["reused_wall"] = timings.get("reused_wall", 0.0) + last.wall_s
            timings["reused_cpu"] = timings.get("reused_cpu", 0.0) + last.cpu_s
            return _copy_draw(last)
        wall, cpu = time.perf_counter(), time.process_time()
        drawn = self.draw(prepared, part)
        drawn.wall_s, drawn.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        if self.reuses_draws:
            entries = cache[1] if cache[0] == base else {}
            entries[key] = _copy_draw(drawn)
            self._draw_cache = (base, entries)
        return drawn

    def _select_relaxed(
        self, parsed: ParsedMolecule, system: AtomicSystem, positions: np.ndarray, kept: list[int],
        energy_of: dict[int, float | None], request: GenerationRequest, backend: str | EnergyModel,
        selection: RelaxedSelection, dropped: dict[str, int],
    ) -> tuple[np.ndarray, list[int]]:
        """The ``num_conformers`` of ``positions[kept]`` lowest in (prescreened) relaxed energy
        ``energy_of`` that are distinct; after a prescreen, relaxed to the end (``energy_of`` updated).
        Returns the positions and the kept indices in draw order."""
        energies = np.array([np.nan if energy_of.get(i) is None else float(energy_of[i]) for i in kept])
        chosen = select_low_energy_distinct(parsed.mol, positions[kept], energies, request.num_conformers,
                                            selection.min_rmsd)
        if len(chosen) < len(kept):
            dropped["not_selected"] = dropped.get("not_selected", 0) + len(kept) - len(chosen)
        kept = [kept[c] for c in chosen]
        if selection.prescreen_steps and kept:
            positions, kept, values = self._relax_and_recheck(
                parsed, system, positions, kept, request, backend, dropped)
            energy_of.update(zip(kept, values))
        return positions, kept

    def _relax_and_recheck(
        self, parsed: ParsedMolecule, system: AtomicSystem, positions: np.ndarray, kept: list[int],
        request: GenerationRequest, backend: str | EnergyModel, dropped: dict[str, int],
        relax_steps: int | None = None,
    ) -> tuple[np.ndarray, list[int], list[float | None]]:
        """Relax ``positions[kept]`` with ``backend`` (at most ``relax_steps`` iterations if given,
        and never more than the request's), drop failed relaxations, check the rest again (no reflection)."""
        options = {**request.relax_options(), **self.relax_options(request.relax)}
        if relax_steps is not None:
            options["max_steps"] = min(int(relax_steps), int(options.get("max_steps", relax_steps)))
        result = relax(system, torch.from_numpy(positions[kept]), backend, **options)
        relaxed = positions.copy()
        relaxed[kept] = result.positions.detach().cpu().numpy().astype(np.float64)
        failed = {i for i, good in zip(kept, result.ok.tolist()) if not good}
        if failed:
            dropped["relax_failed"] = dropped.get("relax_failed", 0) + len(failed)
        relaxed_energy = dict(zip(kept, result.energy.tolist()))
        still = [i for i in kept if i not in failed]
        relaxed, kept, _ = self.check_samples(parsed.mol, relaxed, still, dropped, allow_reflection=False)
        return relaxed, kept, [relaxed_energy[i] for i in kept]


@dataclass
class _Round:
    """One round of draws after checks (and relaxation): indices are global across rounds."""

    positions: np.ndarray
    kept: list[int]
    energies: dict[int, float | None]
    dropped: dict[str, int]
    num_reflected: int
    raw_energies: dict[int, float] = field(default_factory=dict)
    raw_energy_model: str | None = None


def _copy_draw(draw: Draw) -> Draw:
    """A copy of ``draw`` whose arrays can be changed without changing ``draw``'s."""
    energies = None if draw.energies is None else draw.energies.copy()
    return dataclasses.replace(draw, positions=draw.positions.copy(), dropped=dict(draw.dropped), energies=energies)


def _within_window(kept: list[int], energy_of: dict[int, float | None], window: float, dropped: dict[str, int]) -> list[int]:
    """The conformers within ``window`` kcal/mol of the lowest; those without an energy are dropped too."""
    known = [i for i in kept if energy_of.get(i) is not None and math.isfinite(energy_of[i])]
    if len(known) < len(kept):
        dropped["no_energy"] = dropped.get("no_energy", 0) + len(kept) - len(known)
    if not known:
        return []
    lowest = min(energy_of[i] for i in known)
    inside = [i for i in known if energy_of[i] - lowest <= window]
    if len(inside) < len(known):
        dropped["energy_window"] = dropped.get("energy_window", 0) + len(known) - len(inside)
    return inside
