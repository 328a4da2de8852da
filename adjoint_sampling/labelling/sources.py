"""The conformer sources of the labelling job; each draws candidate conformers of one molecule.

* ``etkdg``: RDKit ETKDGv3 embeddings.
* ``mmff``: ETKDGv3 embeddings relaxed with MMFF94 (RDKit's optimiser): the minima a relaxation reaches.
* ``torsions``: uniformly random torsions on ETKDG+MMFF local structures (rigid rotations about the
  rotatable bonds): what a torsional sampler can reach, clashes included (the checks drop them).
* ``sampler``: draws of a trained model (default: the shipped one); skipped for a torsional model on
  a molecule without rotatable bonds (its draws would be the ETKDG+MMFF local structures).
* ``thermal``: harmonic normal-mode displacements about MMFF94 minima at 300-1000 K
  (:mod:`adjoint_sampling.labelling.thermal`).
* ``xtb_path``: snapshots along GFN2-xTB L-BFGS relaxations from ETKDG starts; their energies and
  forces are those the relaxation computed (no second calculation).

A source returns :class:`Candidates`; it raises :class:`AdjointSamplingError` when it cannot serve
the molecule at all (for example MMFF94 has no parameters); the job records that and goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from adjoint_sampling.chemistry.embedding import embed_etkdg, local_structure
from adjoint_sampling.chemistry.parsing import ParsedMolecule
from adjoint_sampling.chemistry.torsions import find_torsions, set_torsions
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.energy.relax import relax, relax_with_model
from adjoint_sampling.labelling.config import LabelConfig
from adjoint_sampling.labelling.extxyz import POSITION_DECIMALS
from adjoint_sampling.labelling.thermal import thermal_displacements

__all__ = ["Candidates", "MoleculeContext", "Resources", "SOURCE_FUNCTIONS", "NoCandidates"]

MAX_LOCAL_STRUCTURES = 4
"""Local structures (ETKDG + MMFF94) the torsions and thermal sources spread their frames over."""


class NoCandidates(AdjointSamplingError):
    """A source has nothing to offer for this molecule (for example no rotatable bond)."""


@dataclass
class Candidates:
    """Conformers drawn by one source.

    Attributes:
        positions: ``(B, N, 3)`` float64 angstrom.
        extras: one dict of per-frame numbers per conformer (``temperature_k``, ``step``).
        energy: ``(B,)`` kcal/mol when the source computed GFN2-xTB labels itself, else ``None``.
        forces: ``(B, N, 3)`` kcal/mol/angstrom, with ``energy``.
        xtb_calls: GFN2-xTB calculations the source made itself.
        failed_scf: of those, how many failed.
        failure_reasons: their reasons.
    """

    positions: np.ndarray
    extras: list[dict[str, float | int]] = field(default_factory=list)
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    xtb_calls: int = 0
    failed_scf: int = 0
    failure_reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.extras:
            self.extras = [{} for _ in range(len(self.positions))]


class RoundedPositions(EnergyModel):
    """``model`` evaluated at positions rounded to the stored precision (so stored labels are exact)."""

    def __init__(self, model: EnergyModel) -> None:
        self.model = model
        self.name = model.name

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        return self.model.energy_and_forces(system, torch.round(positions, decimals=POSITION_DECIMALS))


class Resources:
    """Per-process objects reused across molecules: the xTB backend and the sampler (loaded lazily)."""

    def __init__(self, config: LabelConfig) -> None:
        self.config = config
        options = {**config.energy_options, "num_workers": 1}
        self.energy: EnergyModel = build_energy("xtb", **options)
        self._sampler = None

    def sampler(self):
        if self._sampler is None:
            from adjoint_sampling.generation.loading import SHIPPED_MODEL_PATH
            from adjoint_sampling.generation.sampler import Sampler

            path = Path(self.config.sampler_checkpoint) if self.config.sampler_checkpoint else SHIPPED_MODEL_PATH
            self._sampler = Sampler.from_checkpoint(path, sample_batch_size=64)
        return self._sampler


@dataclass
class MoleculeContext:
    """One molecule being labelled: its parsed form, energy system, seed and shared state."""

    parsed: ParsedMolecule
    system: AtomicSystem
    seed: int
    config: LabelConfig
    resources: Resources
    cache: dict[str, object] = field(default_factory=dict)

    def source_seed(self, source: str) -> int:
        """A 31-bit seed of ``source`` for this molecule."""
        digest = hashlib.sha256(f"{self.seed}:{source}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def rng(self, source: str) -> np.random.Generator:
        return np.random.default_rng(self.source_seed(source))

    def local_structures(self, num: int) -> np.ndarray:
        """``(K, N, 3)``, ``1 <= K <= num``: ETKDG + MMFF94 local structures (cached, seeds from ``local``)."""
        if "local" not in self.cache:
            base = self.source_seed("local")
            found = []
            for j in range(MAX_LOCAL_STRUCTURES):
                try:
                    found.append(local_structure(self.parsed, base + j).numpy())
                except AdjointSamplingError:
                    continue
            if not found:
                raise NoCandidates("RDKit embeds no local structure")
            self.cache["local"] = np.stack(found)
        local = self.cache["local"]
        assert isinstance(local, np.ndarray)
        return local[: max(1, num)]


def draw_etkdg(ctx: MoleculeContext, num: int) -> Candidates:
    return Candidates(embed_etkdg(ctx.parsed.mol, num, ctx.source_seed("etkdg")))


def draw_mmff(ctx: MoleculeContext, num: int) -> Candidates:
    start = embed_etkdg(ctx.parsed.mol, num, ctx.source_seed("mmff"))
    if len(start) == 0:
        return Candidates(start)
    result = relax(ctx.system, torch.from_numpy(start), "mmff", num_threads=1)
    minima = result.positions[result.ok].numpy()
    ctx.cache["mmff_minima"] = minima
    return Candidates(minima)


def draw_torsions(ctx: MoleculeContext, num: int) -> Candidates:
    topology = find_torsions(ctx.parsed.mol)
    if topology.num_torsions == 0:
        raise NoCandidates("no rotatable bond")
    local = ctx.local_structures(num)
    rng = ctx.rng("torsions")
    angles = torch.from_numpy(rng.uniform(-np.pi, np.pi, size=(num, topology.num_torsions)))
    owner = np.arange(num) % len(local)
    out = np.zeros((num, ctx.parsed.num_atoms, 3))
    for k in range(len(local)):
        rows = np.flatnonzero(owner == k)
        if rows.size:
            out[rows] = set_torsions(torch.from_numpy(local[k]), topology, angles[rows]).numpy()
    return Candidates(out)


def draw_sampler(ctx: MoleculeContext, num: int) -> Candidates:
    from adjoint_sampling.generation.types import GenerationRequest

    sampler = ctx.resources.sampler()
    if sampler.mode == "torsional" and find_torsions(ctx.parsed.mol).num_torsions == 0:
        raise NoCandidates("no rotatable bond (a torsional model only returns its local structures)")
    seed = ctx.source_seed("sampler")
    record = sampler.prepare(GenerationRequest(ctx.parsed.smiles, num_conformers=num, seed=seed), ctx.parsed)
    return Candidates(np.asarray(sampler.sample_positions(record, num, seed), dtype=np.float64))


def draw_thermal(ctx: MoleculeContext, num: int) -> Candidates:
    params = ctx.config.thermal
    minima = ctx.cache.get("mmff_minima")
    if not isinstance(minima, np.ndarray) or len(minima) == 0:
        minima = ctx.local_structures(MAX_LOCAL_STRUCTURES)
    positions, temperatures = thermal_displacements(
        ctx.parsed.mol, minima[:MAX_LOCAL_STRUCTURES], num, ctx.rng("thermal"),
        params.min_temperature_k, params.max_temperature_k, params.min_curvature,
    )
    return Candidates(positions, extras=[{"temperature_k": float(t)} for t in temperatures])


def _evenly(count: int, wanted: int) -> list[int]:
    """``min(count, wanted)`` distinct indices spread evenly over ``range(count)``, last included."""
    if wanted <= 0 or count == 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(count - 1, 0, min(count, wanted))})


def draw_xtb_path(ctx: MoleculeContext, num: int) -> Candidates:
    params = ctx.config.xtb_path
    starts = embed_etkdg(ctx.parsed.mol, params.trajectories, ctx.source_seed("xtb_path"))
    if len(starts) == 0:
        raise NoCandidates("RDKit embeds no start")
    visited: list[list[tuple[np.ndarray, float, np.ndarray]]] = [[] for _ in range(len(starts))]
    calls = {"n": 0, "failed": 0, "reasons": []}

    def record(indices: np.ndarray, positions: torch.Tensor, result: EnergyResult) -> None:
        calls["n"] += len(indices)
        calls["failed"] += result.num_failed
        calls["reasons"] += list(result.failure_reasons)
        rounded = np.round(positions.numpy(), POSITION_DECIMALS)
        for j, b in enumerate(indices.tolist()):
            if bool(result.ok[j]):
                visited[b].append((rounded[j], float(result.energy[j]), result.forces[j].numpy()))

    relax_with_model(RoundedPositions(ctx.resources.energy), ctx.system, torch.from_numpy(starts), max_steps=params.max_steps,
                     fmax=params.fmax, on_evaluation=record)
    picked: list[tuple[np.ndarray, float, np.ndarray, int]] = []
    for t, points in enumerate(visited):
        quota = num // len(starts) + (1 if t < num % len(starts) else 0)
        picked += [(*points[i], i) for i in _evenly(len(points), quota)]
    n_atoms = ctx.parsed.num_atoms
    return Candidates(
        positions=np.stack([p[0] for p in picked]) if picked else np.zeros((0, n_atoms, 3)),
        extras=[{"step": int(p[3])} for p in picked],
        energy=np.array([p[1] for p in picked], dtype=np.float64),
        forces=np.stack([p[2] for p in picked]) if picked else np.zeros((0, n_atoms, 3)),
        xtb_calls=int(calls["n"]), failed_scf=int(calls["failed"]), failure_reasons=list(calls["reasons"]),
    )


SOURCE_FUNCTIONS: dict[str, Callable[[MoleculeContext, int], Candidates]] = {
    "etkdg": draw_etkdg,
    "mmff": draw_mmff,
    "torsions": draw_torsions,
    "sampler": draw_sampler,
    "thermal": draw_thermal,
    "xtb_path": draw_xtb_path,
}
