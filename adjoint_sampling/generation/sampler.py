"""The trained sampler: a checkpoint in, conformers out (a :class:`ConformerGenerator`).

Per request it builds the local structures (torsional mode: RDKit ETKDG + MMFF conformers seeded by
the request seed; several of them, so that ring puckers and unspecified stereocentres vary between
samples) and integrates the controlled SDE for ``num_conformers`` samples. Parsing, checks (in
Cartesian mode a fully mirrored sample is reflected back), relaxation, energies and pruning are the
shared :mod:`~adjoint_sampling.generation.pipeline`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from adjoint_sampling.chemistry.clash_repair import ClashRepair
from adjoint_sampling.chemistry.embedding import local_structure
from adjoint_sampling.chemistry.parsing import ParsedMolecule, require_elements
from adjoint_sampling.chemistry.stereo import unspecified_stereoisomers
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import AdjointSamplingError, CheckpointError, ConfigError, InvalidMoleculeError
from adjoint_sampling.core.version import __version__
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.energy.registry import ENERGY_BACKENDS, build_energy
from adjoint_sampling.energy.torsional_descent import torsional_descent
from adjoint_sampling.generation.pipeline import ConformerPipeline, Draw, RelaxedSelection
from adjoint_sampling.generation.selection import select_low_energy_distinct
from adjoint_sampling.generation.shipped import load_energy_model
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.method.control_window import windowed_control
from adjoint_sampling.method.flow_sampling import sample_flow
from adjoint_sampling.models.checkpoint import ModelCheckpoint, load_model_checkpoint
from adjoint_sampling.problems.molecular.base import MODES
from adjoint_sampling.problems.molecular.cartesian import cartesian_batch
from adjoint_sampling.problems.molecular.dataset import MoleculeRecord, molecule_record
from adjoint_sampling.problems.molecular.torsional import torsional_batch
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.integrate import sample_terminal
from adjoint_sampling.sde.schedules import MemorylessSchedule, NoiseSchedule

__all__ = ["Sampler"]

log = logging.getLogger(__name__)

RELAXED_SELECTION_METHODS: tuple[str, ...] = ("mmff",)
"""Relaxations a checkpoint's ``relaxed_*`` settings apply to."""
ISOMER_EMBED_ITERATIONS = 10
"""RDKit embedding attempts of an enumerated stereoisomer: an embeddable one needs one to three;
RDKit's default of 10 per atom (and a second try from random coordinates) takes about 10 s to give
up on an impossible 40-atom isomer, 10 attempts about 0.2 s."""


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@dataclass
class Sampler(ConformerPipeline):
    """Conformers from a trained molecular checkpoint (torsional or Cartesian mode), through the
    shared :class:`~adjoint_sampling.generation.pipeline.ConformerPipeline`.

    Attributes:
        checkpoint: the loaded checkpoint.
        controller: its controller (eval mode).
        version: ``<package version>+<checkpoint digest>``.
        sample_batch_size: conformers integrated together.
        energy: backend for reported energies (default: the checkpoint's backend, built lazily).
        sde_steps: Euler-Maruyama steps (``None``: the checkpoint's; fewer is faster, coarser).
        reuse_samples: keep the last raw samples, so a request that differs from the previous one
            only in ``relax`` or ``prune_rms`` reuses them (benchmarks compare ``sampler`` and
            ``sampler+mmff`` on the same samples); their measured cost is reported as
            ``timings["reused_wall"]`` / ``timings["reused_cpu"]`` (seconds).

    Torsional mode draws ``min(max_local_structures, ceil(n / conformers_per_local_structure))``
    local structures (checkpoint settings; RDKit seeds ``seed, seed + 1, ...``; where the SMILES
    leaves stereo unspecified, they cycle through its stereoisomers) and splits the ``n`` samples
    evenly among them.
    """

    checkpoint: ModelCheckpoint
    controller: nn.Module
    version: str
    sample_batch_size: int = 256
    energy: EnergyModel | None = None
    sde_steps: int | None = None
    reuse_samples: bool = False
    base_velocity: nn.Module | None = None
    schedule: NoiseSchedule = field(init=False)
    grid: Tensor = field(init=False)
    _polish: EnergyModel | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        problem = self.checkpoint.problem
        if problem.get("mode") not in MODES:
            raise CheckpointError(f"checkpoint is not a molecular model (problem mode {problem.get('mode')!r})")
        self.schedule = self.checkpoint.build_schedule()
        if self.checkpoint.kind != "adjoint_sampling" and not isinstance(self.schedule, MemorylessSchedule):
            raise CheckpointError(f"a {self.checkpoint.kind} checkpoint needs the memoryless schedule, "
                                  f"it has {self.checkpoint.schedule_kind!r}")
        if self.checkpoint.kind == "adjoint_matching" and self.base_velocity is None:
            raise CheckpointError("an adjoint_matching checkpoint needs its base flow (Sampler.from_checkpoint loads it)")
        uses_polish_energy = self.checkpoint.polish_steps or max(self.checkpoint.select_from,
                                                                 self.checkpoint.relaxed_raw_select_from) > 1.0
        if uses_polish_energy and self.checkpoint.polish_energy not in ENERGY_BACKENDS:
            raise CheckpointError(f"polish_energy {self.checkpoint.polish_energy!r} is not an energy backend; "
                                  f"choose one of {', '.join(ENERGY_BACKENDS)}")
        if self.sde_steps is not None and self.sde_steps < 1:
            raise ConfigError(f"sde_steps must be >= 1, got {self.sde_steps}")
        if self.sde_steps is not None:
            self.checkpoint = dataclasses.replace(self.checkpoint, sde_steps=int(self.sde_steps))
        self.grid = self.checkpoint.time_grid()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        energy: EnergyModel | None = None,
        sample_batch_size: int = 256,
        *,
        sde_steps: int | None = None,
        reuse_samples: bool = False,
    ) -> Sampler:
        """Load a model checkpoint written by a molecular training job (see the class attributes).

        Raises:
            CheckpointError: missing, corrupt, or not a molecular checkpoint.
        """
        path = Path(path)
        checkpoint = load_model_checkpoint(path)
        controller = checkpoint.build_controller()
        base = checkpoint.build_base_velocity() if checkpoint.kind == "adjoint_matching" else None
        version = f"{__version__}+{_file_digest(path)}"
        return cls(checkpoint, controller, version, sample_batch_size, energy, sde_steps=sde_steps,
                   reuse_samples=reuse_samples, base_velocity=base)

    @property
    def mode(self) -> str:
        return str(self.checkpoint.problem["mode"])

    @property
    def name(self) -> str:
        return f"adjoint-sampling-{self.mode}"

    @property
    def temperature_k(self) -> float:
        return float(self.checkpoint.problem["temperature_k"])

    def energy_model(self) -> EnergyModel:
        """The backend of reported energies: ``energy`` if given, else the checkpoint's
        ``output_energy``, else the backend the model was trained with (without the Cartesian bond
        penalty)."""
        if self.energy is None:
            desc = self.checkpoint.problem
            name = self.checkpoint.output_energy or desc["energy"]
            options = dict(desc.get("energy_options", {})) if name == desc["energy"] else {}
            self.energy = build_energy(name, **options)
        return self.energy

    def polish_model(self) -> EnergyModel:
        """The backend of the checkpoint's torsional polish (``polish_energy``): the reported-energy
        backend when it is the same one; ``gnn``: the GNN potential of ``relax="gnn"``
        (:func:`~adjoint_sampling.generation.shipped.load_energy_model`); else built once."""
        name = self.checkpoint.polish_energy
        if self._polish is None:
            reported = self.energy_model()
            if reported.name == name:
                self._polish = reported
            elif name == "gnn":
                self._polish = load_energy_model()
            else:
                self._polish = build_energy(name)
        return self._polish

    @property
    def reuses_draws(self) -> bool:
        return self.reuse_samples

    @property
    def reflects_mirrored(self) -> bool:
        return self.mode == "cartesian"

    @property
    def reports_unrelaxed_energies(self) -> bool:
        return True

    def prepare(self, request: GenerationRequest, molecule: ParsedMolecule | None = None) -> MoleculeRecord:
        """The request's molecule (parsed unless given) checked against the model's elements, with its
        local structure embedded with ``request.seed``.

        Molecules larger than the training ones are accepted (up to the parser's atom limit): the
        controller is local, so it applies to any size, with less certain quality.
        """
        elements = self.checkpoint.problem.get("elements")
        if molecule is None:
            molecule = self.parse(request, **({} if elements is None else {"supported_elements": tuple(elements)}))
        elif elements is not None:
            require_elements(molecule.mol, tuple(elements))
        return molecule_record(molecule, seed=request.seed)

    def molecule_of(self, prepared: MoleculeRecord) -> ParsedMolecule:
        return prepared.parsed

    def relaxed_selection(self, method: str) -> RelaxedSelection | None:
        """The checkpoint's ``relaxed_*`` settings for a relaxation with ``method``: only MMFF94's
        (:data:`RELAXED_SELECTION_METHODS`, where they were measured; a GNN or xTB relaxation of every
        extra draw would cost far more); ``None`` where ``relaxed_select_from`` is 1 and
        ``relaxed_raw_select_from`` 0 (relaxed requests draw as unrelaxed ones)."""
        if method not in RELAXED_SELECTION_METHODS or (
                self.checkpoint.relaxed_select_from <= 1.0 and not self.checkpoint.relaxed_raw_select_from):
            return None
        return RelaxedSelection(float(self.checkpoint.relaxed_select_from), float(self.checkpoint.relaxed_select_rmsd),
                                int(self.checkpoint.relaxed_prescreen_steps))

    def draw(self, prepared: MoleculeRecord, request: GenerationRequest) -> Draw:
        """``request.num_conformers`` samples; with the checkpoint's ``select_from`` > 1, chosen from
        ``ceil(select_from * n)`` draws by :meth:`select`. The polish energies come along where they
        are the reported energies (so the pipeline does not evaluate them again).

        The ``n`` draws of a request with a relaxation and a :meth:`relaxed_selection` (which the
        pipeline relaxes and chooses from) use the local structures of ``n / relaxed_select_from``
        samples (as many as a request without the relaxed selection), and ``relaxed_raw_select_from``
        in place of ``select_from`` where it is set."""
        num = request.num_conformers
        selection = self.relaxed_selection(request.relax) if request.relax != "none" else None
        structures_for = num if selection is None else math.ceil(num / selection.draws_per_conformer)
        select_from = self.checkpoint.select_from
        if selection is not None and self.checkpoint.relaxed_raw_select_from:
            select_from = self.checkpoint.relaxed_raw_select_from
        if select_from <= 1.0 or num == 0:
            positions, energies = self.sample_with_energies(prepared, num, request.seed, structures_for=structures_for)
        else:
            # as many local structures (RDKit embeddings) as for num samples: the extra draws cost SDE steps only
            positions, energies = self.sample_with_energies(
                prepared, math.ceil(select_from * num), request.seed, structures_for=structures_for)
            energies = self._polish_energies(prepared, positions, energies)
            chosen = self.select(prepared, positions, num, energies)
            positions, energies = positions[chosen], energies[chosen]
        if np.isnan(energies).all() or self.polish_model() is not self.energy_model():
            return Draw(positions)
        return Draw(positions, energies=energies, energy_model=self.energy_model().name)

    def select(
        self, record: MoleculeRecord, positions: np.ndarray, num: int, energies: np.ndarray | None = None
    ) -> np.ndarray:
        """Sorted indices of the ``num`` samples of ``positions`` ``(M, N, 3)`` angstrom lowest in
        energy on ``polish_energy`` and at least ``select_rmsd`` apart
        (:func:`~adjoint_sampling.generation.selection.select_low_energy_distinct`). ``energies``
        ``(M,)`` kcal/mol on it, if known (NaN: unknown, chosen last, in draw order); ``None``:
        evaluated here, NaN where the backend cannot evaluate a sample."""
        if energies is None:
            energies = self._polish_energies(record, positions, np.full(len(positions), np.nan))
        return select_low_energy_distinct(record.parsed.mol, positions, energies, num, self.checkpoint.select_rmsd)

    def _polish_energies(self, record: MoleculeRecord, positions: np.ndarray, known: np.ndarray) -> np.ndarray:
        """``known`` ``(M,)`` kcal/mol of ``positions`` ``(M, N, 3)`` with its NaN rows evaluated on
        ``polish_energy`` (NaN where the backend fails; all of them, with a warning, where it refuses
        the molecule)."""
        missing = np.flatnonzero(np.isnan(known))
        if len(missing) == 0:
            return known
        energies = known.copy()
        try:
            result = self.polish_model().energy_and_forces(record.system, torch.from_numpy(positions[missing]))
        except AdjointSamplingError as exc:  # e.g. no MMFF94 parameters: distinct draws, in draw order
            log.warning("no energies to select samples of %s by: %s", record.smiles, exc)
            return energies
        energies[missing] = np.where(result.ok.numpy(), result.energy.to(torch.float64).numpy(), np.nan)
        return energies

    def unrelaxed_energies(self, system: AtomicSystem, positions: np.ndarray) -> tuple[list[float | None], str | None]:
        """Energies (kcal/mol, ``None`` where the backend failed) with the model's backend."""
        try:
            model = self.energy_model()
            result = model.energy_and_forces(system, torch.from_numpy(positions))
        except AdjointSamplingError as exc:
            log.warning("no energies for %s: %s", system.key, exc)
            return [None] * len(positions), None
        return [float(e) if ok else None for e, ok in zip(result.energy.tolist(), result.ok.tolist())], model.name

    def local_structures(self, record: MoleculeRecord, num: int, seed: int) -> list[MoleculeRecord]:
        """Records sharing ``record``'s molecule with the local structures used for ``num`` samples.

        The first is ``record`` itself (embedded with ``seed``) when the SMILES specifies all
        stereo; the others are embedded with ``seed + 1, seed + 2, ...``, structure ``i`` with
        stereoisomer ``i mod (number of stereoisomers)`` of the unspecified stereo elements. One
        that RDKit cannot embed is skipped; an enumerated stereoisomer gets
        ``ISOMER_EMBED_ITERATIONS`` attempts, and once it fails it is not tried again (one that
        cannot exist in 3D, such as an inverted bridgehead nitrogen, would otherwise cost seconds
        per structure).
        """
        per_structure, most = self.checkpoint.conformers_per_local_structure, self.checkpoint.max_local_structures
        wanted = max(1, min(most, math.ceil(num / per_structure)))
        isomers = unspecified_stereoisomers(record.parsed.mol)
        if len(isomers) == 1:
            records, first, budget = [record], 1, 0
        else:
            records, first, budget = [], 0, ISOMER_EMBED_ITERATIONS
        failed: set[int] = set()
        for offset in range(first, wanted):
            index = offset % len(isomers)
            if index in failed:
                continue
            isomer = dataclasses.replace(record.parsed, mol=isomers[index])
            try:
                positions = local_structure(isomer, seed + offset, max_iterations=budget)
            except InvalidMoleculeError:
                failed.add(index)
                continue
            records.append(dataclasses.replace(record, local_positions=positions))
        return records or [record]

    def local_structure_plan(
        self, record: MoleculeRecord, num: int, seed: int, structures_for: int | None = None
    ) -> list[tuple[MoleculeRecord, int]]:
        """The local structures used for ``structures_for`` (default ``num``) samples and how many of
        ``num`` samples each gets (even split)."""
        structures = self.local_structures(record, num if structures_for is None else structures_for, seed)
        k = len(structures)
        return [(rec, num // k + (1 if i < num % k else 0)) for i, rec in enumerate(structures)]

    def sample_positions(
        self, record: MoleculeRecord, num: int, seed: int, structures_for: int | None = None
    ) -> np.ndarray:
        """Raw samples ``(num, N, 3)`` float64 angstrom of ``record`` (no checks), deterministic in ``seed``.

        Torsional mode spreads the samples over :meth:`local_structure_plan` (as many local structures
        as ``structures_for`` samples get; default ``num``).
        """
        return self.sample_with_energies(record, num, seed, structures_for)[0]

    def sample_with_energies(
        self, record: MoleculeRecord, num: int, seed: int, structures_for: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sample_positions` and their ``(num,)`` float64 energies (kcal/mol) on
        ``polish_energy`` as the polish left them (NaN: not known, e.g. no polish or a sample the
        clash repair moved afterwards)."""
        if self.mode != "torsional":
            return self._integrate([(record, num)], torch.Generator().manual_seed(int(seed)), cartesian_batch)
        return self._sample_plan_with_energies(self.local_structure_plan(record, num, seed, structures_for), seed)

    def sample_plan(self, plan: list[tuple[MoleculeRecord, int]], seed: int) -> np.ndarray:
        """Raw torsional samples ``(sum n, N, 3)`` float64 angstrom of a prepared
        :meth:`local_structure_plan` (no RDKit work), deterministic in ``seed``."""
        return self._sample_plan_with_energies(plan, seed)[0]

    def _sample_plan_with_energies(
        self, plan: list[tuple[MoleculeRecord, int]], seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sample_plan` and the samples' polish energies (see :meth:`sample_with_energies`)."""
        generator = torch.Generator().manual_seed(int(seed))
        return self._integrate([(rec, n) for rec, n in plan if n > 0], generator, torsional_batch)

    def _integrate(
        self, plan: list[tuple[MoleculeRecord, int]], generator: torch.Generator, make_batch
    ) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``(sum n, N, 3)`` for a plan of ``(record, n)`` sharing one molecule, in plan order,
        and their polish energies ``(sum n,)`` (NaN where unknown; see :meth:`sample_with_energies`).

        The records are integrated together, in batches of ``sample_batch_size`` systems. A torsional
        checkpoint with ``polish_steps`` then descends on its ``polish_energy`` in torsion space
        (:func:`~adjoint_sampling.energy.torsional_descent.torsional_descent`), and one with
        ``clash_repair_steps`` repairs the samples with a close contact
        (:class:`~adjoint_sampling.chemistry.clash_repair.ClashRepair`).
        """
        records = [rec for rec, _ in plan]
        keys = [i for i, (_, n) in enumerate(plan) for _ in range(n)]
        num_atoms = records[0].num_atoms
        unknown = np.full(len(keys), np.nan)
        if self.mode == "torsional" and records[0].num_torsions == 0:
            return torch.stack([records[k].local_positions for k in keys]).to(torch.float64).numpy(), unknown
        steps = self.checkpoint.clash_repair_steps  # torsional checkpoints only (ModelCheckpoint checks)
        repair = ClashRepair(records[0].parsed.mol, records[0].topology) if steps else None
        polish_steps = self.checkpoint.polish_steps  # torsional checkpoints only (ModelCheckpoint checks)
        out, energies = [], []
        for start in range(0, len(keys), self.sample_batch_size):
            chunk = keys[start:start + self.sample_batch_size]
            batch = make_batch(records, chunk)
            with torch.no_grad():
                x1 = self._terminal(batch, generator, lambda: self._start_control(records, chunk, make_batch))
                pos = batch.context.positions(x1.to(torch.float64) if self.mode == "torsional" else x1)
            pos = pos.to(torch.float64).reshape(len(chunk), num_atoms, 3)
            energy = torch.full((len(chunk),), float("nan"), dtype=torch.float64)
            if polish_steps:
                try:
                    descent = torsional_descent(self.polish_model(), records[0].system, pos, records[0].topology,
                                                polish_steps, self.checkpoint.polish_step,
                                                tolerance=self.checkpoint.polish_tolerance)
                    pos, energy = descent.positions, descent.energy
                except AdjointSamplingError as exc:  # e.g. no MMFF94 parameters: the samples stay unpolished
                    log.warning("no torsional polish for %s: %s", records[0].smiles, exc)
                    polish_steps = 0
            if repair is not None:
                repaired = repair.repair(pos, steps)[0]
                energy = torch.where((repaired != pos).flatten(1).any(1), float("nan"), energy)
                pos = repaired
            out.append(pos)
            energies.append(energy)
        return torch.cat(out).numpy(), torch.cat(energies).numpy()

    def _start_control(self, records: list[MoleculeRecord], chunk: list[int], make_batch) -> Tensor | None:
        """The control at ``(grid[0], X_0)`` of the systems ``chunk`` (indices into ``records``), or
        ``None`` when no two share a record.

        Every Adjoint Sampling draw starts from the same state ``X_0 = 0``, so draws on one record
        (one local structure) share their first control: it is evaluated once per record, on a
        batch of one system each, and copied to the rows of the others.
        """
        first = list(dict.fromkeys(chunk))
        if len(first) == len(chunk):
            return None
        sub = make_batch(records, first)
        t0 = torch.full((len(first),), float(self.grid[0]))
        rows = torch.bincount(sub.space.batch, minlength=len(first)).tolist()
        blocks = torch.split(self.controller(t0, sub.space.initial_state(), sub), rows)
        where = {key: i for i, key in enumerate(first)}
        return torch.cat([blocks[where[key]] for key in chunk])

    def _terminal(
        self, batch: SystemBatch, generator: torch.Generator, start_control: Callable[[], Tensor | None] | None = None
    ) -> Tensor:
        """``X_1`` of ``batch`` from the checkpoint's kind of model; ``start_control``: a callable
        giving the control at the start state if it is cheaper to compute apart (Adjoint Sampling only)."""
        kind = self.checkpoint.kind
        if kind == "adjoint_sampling":
            return sample_terminal(self.controller, batch, self.schedule, self.grid, generator,
                                   quiet_steps=self.checkpoint.quiet_steps, descent_steps=self.checkpoint.descent_steps,
                                   descent_step=self.checkpoint.descent_step,
                                   start_control=None if start_control is None else start_control())
        schedule = cast(MemorylessSchedule, self.schedule)  # checked in __post_init__
        solver = self.checkpoint.solver
        if kind == "flow":
            return sample_flow(self.controller, None, batch, schedule, self.grid, generator, solver=solver)
        control = windowed_control(self.controller, self.checkpoint.control_from)
        return sample_flow(cast(nn.Module, self.base_velocity), control, batch, schedule, self.grid, generator,
                           solver=solver)
