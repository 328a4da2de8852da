"""Held-out accuracy of GNN potential checkpoints against GFN2-xTB (issue #15).

For each ``--checkpoint``:

(a) the ``test`` split of the labelling job (``data/labels/spice_xtb``: molecules held out by molecule),
(b) the CREST reference conformers of the SPICE test molecules and perturbed copies
    (``data/labels/crest_test_xtb``, :mod:`adjoint_sampling.benchmarks.gnn_reference_labels`), in all
    and by source,

each with: mean over molecules of the relative-energy MAE (each molecule's energies minus their mean,
kcal/mol), force MAE per Cartesian component over all atoms and frames (kcal/mol/angstrom), median
over molecules of the Spearman rank correlation between model and GFN2-xTB energies, and counts; and

(c) relaxation of up to ``--relax-conformers`` CREST conformers per test molecule (evenly spaced through
    the file; near GFN2-xTB minima) with the ``gnn`` backend (L-BFGS of :func:`energy.relax.relax`)
    and with MMFF94 (RDKit's optimiser, as the pipeline's ``relax="mmff"``): median heavy-atom RMSD
    moved (aligned, atom order kept) and CPU seconds; and, for ``--xtb-relax-conformers`` of them,
    the same for a GFN2-xTB relaxation (what a perfect surrogate would do) and the RMSD between the
    gnn-relaxed and the xtb-relaxed conformers.

Prints markdown tables and writes ``--output`` (JSON). The targets of issue #15 are in :data:`TARGETS`.
Evaluation only: nothing here trains or tunes on these data.

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.gnn_accuracy --checkpoint runs/gnn/gnn.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from adjoint_sampling.benchmarks.conformers.references import (
    BenchmarkMolecule,
    load_reference_ensemble,
    read_test_list,
    reference_path,
)
from adjoint_sampling.benchmarks.gnn_reference_labels import ALL_REFERENCES, DEFAULT_OUT_DIR, evenly_spaced
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.rmsd import symmetric_rmsd_matrix
from adjoint_sampling.core.atomic_io import atomic_write_text
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.core.paths import REPO_ROOT, SHARED_DATA_DIR
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.energy.relax import DEFAULT_MAX_STEPS, relax
from adjoint_sampling.labelling.extxyz import frames_by_molecule

__all__ = [
    "MIN_FRAMES_SPEARMAN",
    "TARGETS",
    "LabelledMolecule",
    "MoleculeErrors",
    "RelaxCase",
    "constant_baseline",
    "evaluate_molecules",
    "load_labelled_molecules",
    "load_relax_cases",
    "main",
    "molecule_errors",
    "moved_rmsd",
    "relative_energy_mae",
    "distance_to_reference_minima",
    "relaxation_moves",
    "subset_cases",
    "spearman",
    "summarize_errors",
]

log = logging.getLogger(__name__)

DEFAULT_SPICE_LABELS: Path = REPO_ROOT / "data" / "labels" / "spice_xtb"
DEFAULT_OUTPUT: Path = REPO_ROOT / "benchmarks" / "results" / "gnn_accuracy.json"
MIN_FRAMES_SPEARMAN = 3
"""Molecules with fewer frames get no Spearman correlation (with two it is always +-1)."""

TARGETS: dict[str, float] = {
    "energy_rel_mae": 1.0,  # kcal/mol, mean over molecules, at most
    "force_mae": 2.0,  # kcal/mol/angstrom per component, at most
    "spearman_median": 0.8,  # at least
    "relax_rmsd_median": 0.25,  # angstrom heavy-atom RMSD moved by a gnn relaxation of CREST minima, at most
}


# ---------------------------------------------------------------------------------------------- metrics


def relative_energy_mae(predicted: np.ndarray, reference: np.ndarray) -> float:
    """MAE (kcal/mol) of energies ``(K,)`` relative to their own mean: ``mean |(p - mean p) - (r - mean r)|``.

    Invariant to a constant shift of either argument; ``nan`` for ``K = 0``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    return float(np.abs((p - p.mean()) - (r - r.mean())).mean())


def spearman(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Spearman rank correlation of two ``(K,)`` arrays; ``nan`` when ``K < MIN_FRAMES_SPEARMAN`` or either is constant."""
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if p.size < MIN_FRAMES_SPEARMAN or np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    return float(spearmanr(p, r).statistic)


@dataclass(frozen=True)
class MoleculeErrors:
    """Errors of a model on the frames of one molecule.

    Attributes:
        energy_rel_mae: :func:`relative_energy_mae`, kcal/mol (``nan`` with fewer than 2 frames).
        spearman: :func:`spearman` of the energies.
        force_abs_error_sum: sum of |F_model - F_ref| over all components, kcal/mol/angstrom.
        force_components: number of components summed (frames x atoms x 3).
        energy_offset: for the frames of one source: the mean of reference minus model energy over them,
            both centred on the molecule's frames of every source (kcal/mol; positive: the model puts this
            source too low against the others); ``nan`` for a whole molecule.
    """

    mol_id: str
    num_frames: int
    energy_rel_mae: float
    spearman: float
    force_abs_error_sum: float
    force_components: int
    energy_offset: float = float("nan")


def molecule_errors(
    mol_id: str, energy: np.ndarray, reference_energy: np.ndarray, forces: np.ndarray, reference_forces: np.ndarray,
    energy_offset: float = float("nan"),
) -> MoleculeErrors:
    """Errors of model energies ``(K,)`` kcal/mol and forces ``(K, N, 3)`` kcal/mol/angstrom against the references
    (``energy_offset``: see :class:`MoleculeErrors`)."""
    energy = np.asarray(energy, dtype=np.float64)
    diff = np.abs(np.asarray(forces, dtype=np.float64) - np.asarray(reference_forces, dtype=np.float64))
    return MoleculeErrors(
        mol_id=mol_id,
        num_frames=int(energy.size),
        energy_rel_mae=relative_energy_mae(energy, reference_energy) if energy.size >= 2 else float("nan"),
        spearman=spearman(energy, reference_energy),
        force_abs_error_sum=float(diff.sum()),
        force_components=int(diff.size),
        energy_offset=float(energy_offset),
    )


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def summarize_errors(errors: Sequence[MoleculeErrors]) -> dict[str, Any]:
    """Figures over molecules: mean and median relative-energy MAE (molecules with >= 2 frames), force MAE
    per component (pooled over all frames), median and mean Spearman (molecules with
    >= ``MIN_FRAMES_SPEARMAN`` frames and non-constant energies), the counts behind each, and for the
    frames of one source the mean |energy offset| and the mean offset (``None`` for whole molecules)."""
    rel = _finite([e.energy_rel_mae for e in errors])
    offsets = _finite([e.energy_offset for e in errors])
    rho = _finite([e.spearman for e in errors])
    components = sum(e.force_components for e in errors)

    def stat(fn, values: np.ndarray) -> float | None:
        return float(fn(values)) if values.size else None

    return {
        "molecules": len(errors),
        "frames": int(sum(e.num_frames for e in errors)),
        "energy_rel_mae": stat(np.mean, rel),
        "energy_rel_mae_median": stat(np.median, rel),
        "energy_molecules": int(rel.size),
        "force_mae": sum(e.force_abs_error_sum for e in errors) / components if components else None,
        "spearman_median": stat(np.median, rho),
        "spearman_mean": stat(np.mean, rho),
        "spearman_molecules": int(rho.size),
        "energy_offset_mean_abs": stat(np.mean, np.abs(offsets)),
        "energy_offset_mean": stat(np.mean, offsets),
    }


def _meets(summary: dict[str, Any]) -> dict[str, bool | None]:
    def check(key: str, above: bool) -> bool | None:
        value = summary.get(key)
        if value is None:
            return None
        return bool(value >= TARGETS[key]) if above else bool(value <= TARGETS[key])

    return {"energy_rel_mae": check("energy_rel_mae", False), "force_mae": check("force_mae", False),
            "spearman_median": check("spearman_median", True)}


# ------------------------------------------------------------------------------------- labelled frames


@dataclass
class LabelledMolecule:
    """The labelled frames of one molecule (one atom order).

    Attributes:
        positions: ``(K, N, 3)`` angstrom; energy ``(K,)`` kcal/mol; forces ``(K, N, 3)`` kcal/mol/angstrom.
        sources: ``(K,)`` the source of each frame.
    """

    mol_id: str
    system: AtomicSystem
    sources: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.energy.shape[0])


def load_labelled_molecules(
    folder: str | Path, split: str = "test", max_molecules: int | None = None
) -> list[LabelledMolecule]:
    """Frames of ``split`` in ``<folder>/data/<split>/*.extxyz.gz`` grouped by molecule (sorted by id).

    Frames of one ``mol_id`` with another atom order or charge than its first frame form their own group.
    """
    molecules: list[LabelledMolecule] = []
    for frames in frames_by_molecule(sorted((Path(folder) / "data" / split).glob("*.extxyz.gz")), {split}):
        first = frames[0]
        numbers = torch.as_tensor(np.asarray(first.atomic_numbers), dtype=torch.long)
        molecules.append(LabelledMolecule(
            mol_id=first.mol_id,
            system=AtomicSystem(atomic_numbers=numbers, charge=int(first.charge), multiplicity=int(first.multiplicity),
                                key=first.mol_id),
            sources=np.array([f.source for f in frames]),
            positions=np.stack([f.positions for f in frames]),
            energy=np.array([f.energy_kcal_mol for f in frames], dtype=np.float64),
            forces=np.stack([f.forces_kcal_mol_a for f in frames]),
        ))
    return molecules[:max_molecules] if max_molecules is not None else molecules


def _errors(
    mol: LabelledMolecule, energy: np.ndarray, forces: np.ndarray, ok: np.ndarray, by_source: dict[str, list[MoleculeErrors]]
) -> MoleculeErrors:
    """Errors on all ``ok`` frames of ``mol``; appends the errors on each source's frames to ``by_source``."""
    residual = np.full(mol.num_frames, np.nan)
    if ok.any():
        residual[ok] = (mol.energy[ok] - mol.energy[ok].mean()) - (energy[ok] - energy[ok].mean())
    for source in sorted(set(mol.sources.tolist())):
        mask = ok & (mol.sources == source)
        offset = float(residual[mask].mean()) if mask.any() else float("nan")
        by_source.setdefault(source, []).append(
            molecule_errors(mol.mol_id, energy[mask], mol.energy[mask], forces[mask], mol.forces[mask], offset)
        )
    return molecule_errors(mol.mol_id, energy[ok], mol.energy[ok], forces[ok], mol.forces[ok])


def evaluate_molecules(model: EnergyModel, molecules: Sequence[LabelledMolecule]) -> dict[str, Any]:
    """Errors of ``model`` on ``molecules``: ``all`` and ``by_source`` summaries (:func:`summarize_errors`),
    per-molecule errors, refused molecules (unsupported elements / charges), failed frames, and the
    model's CPU milliseconds per frame."""
    errors: list[MoleculeErrors] = []
    by_source: dict[str, list[MoleculeErrors]] = {}
    refused: dict[str, str] = {}
    failed_frames = 0
    frames_done = 0
    cpu = 0.0
    for mol in molecules:
        tic = time.process_time()
        try:
            result = model.energy_and_forces(mol.system, torch.from_numpy(mol.positions))
        except AdjointSamplingError as exc:
            refused[mol.mol_id] = str(exc)
            continue
        cpu += time.process_time() - tic
        frames_done += mol.num_frames
        ok = result.ok.numpy().astype(bool)
        failed_frames += int((~ok).sum())
        errors.append(_errors(mol, result.energy.numpy(), result.forces.numpy(), ok, by_source))
    summary = summarize_errors(errors)
    return {
        "all": summary,
        "meets_targets": _meets(summary),
        "by_source": {source: summarize_errors(errs) for source, errs in sorted(by_source.items())},
        "refused_molecules": refused,
        "failed_frames": failed_frames,
        "model_cpu_ms_per_frame": 1e3 * cpu / frames_done if frames_done else None,
        "per_molecule": [asdict(e) for e in errors],
    }


def constant_baseline(molecules: Sequence[LabelledMolecule]) -> dict[str, Any]:
    """The figures of a model with constant energy and zero forces (what the metrics give for no
    knowledge at all): ``all`` and ``by_source`` summaries. Its relative-energy MAE is the mean absolute
    deviation of the reference energies, its force MAE the mean |F_ref| component."""
    by_source: dict[str, list[MoleculeErrors]] = {}
    errors = [
        _errors(mol, np.zeros(mol.num_frames), np.zeros_like(mol.forces), np.ones(mol.num_frames, dtype=bool), by_source)
        for mol in molecules
    ]
    return {"all": summarize_errors(errors),
            "by_source": {source: summarize_errors(errs) for source, errs in sorted(by_source.items())}}


# ----------------------------------------------------------------------------------------- relaxation


@dataclass
class RelaxCase:
    """CREST conformers of one test molecule to relax: ``positions`` ``(K, N, 3)`` angstrom (SMILES atom order)."""

    test_id: str
    system: AtomicSystem
    positions: np.ndarray
    heavy_atoms: np.ndarray


def load_relax_cases(
    test_list: str | Path, conformer_dir: str | Path, num_conformers: int = 8, max_molecules: int | None = None
) -> list[RelaxCase]:
    """Up to ``num_conformers`` CREST conformers per test molecule with a reference ensemble, evenly
    spaced through the file (the selection of :mod:`.gnn_reference_labels`)."""
    cases: list[RelaxCase] = []
    for molecule in read_test_list(test_list):
        if max_molecules is not None and len(cases) >= max_molecules:
            break
        if not reference_path(conformer_dir, molecule.mol_id).is_file():
            continue
        case = _relax_case(molecule, conformer_dir, num_conformers)
        if case is not None:
            cases.append(case)
    return cases


def _relax_case(molecule: BenchmarkMolecule, conformer_dir: str | Path, num_conformers: int) -> RelaxCase | None:
    try:
        reference = load_reference_ensemble(molecule, conformer_dir, ALL_REFERENCES)
        parsed = parse_smiles(molecule.smiles)
    except AdjointSamplingError as exc:
        log.warning("%s: no relaxation case: %s", molecule.mol_id, exc)
        return None
    chosen = evenly_spaced(reference.num_references, num_conformers)
    if chosen.size == 0:
        return None
    system = atomic_system(parsed)
    heavy = np.flatnonzero(system.atomic_numbers.numpy() > 1)
    return RelaxCase(molecule.mol_id, system, reference.positions[chosen], heavy)


def moved_rmsd(initial: np.ndarray, final: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """``(B,)`` RMSD (angstrom) of ``atoms`` between ``initial`` and ``final`` ``(B, N, 3)`` after optimal
    superposition, same atom order (no permutations)."""
    initial = np.asarray(initial, dtype=np.float64)[:, atoms]
    final = np.asarray(final, dtype=np.float64)[:, atoms]
    return np.array([symmetric_rmsd_matrix(final[b : b + 1], initial[b : b + 1])[0, 0] for b in range(len(initial))])


def relaxation_moves(
    cases: Sequence[RelaxCase],
    method: str | EnergyModel,
    max_steps: int = DEFAULT_MAX_STEPS,
    final: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Relax every case with ``method`` (``"mmff"``: RDKit's MMFF94 optimiser; ``"xtb"``: GFN2-xTB
    L-BFGS; an :class:`EnergyModel`: the batched L-BFGS of :func:`relax`; one thread each) and
    summarise the heavy-atom RMSD moved (angstrom; pooled over conformers), convergence and CPU seconds.

    Args:
        final: if given, filled with the relaxed positions ``(K, N, 3)`` of each case (``nan`` where
            the relaxation failed).
    """
    moved: dict[str, list[float]] = {}
    refused: dict[str, str] = {}
    failed = converged = total = 0
    cpu = 0.0
    options: dict[str, Any] = {"num_threads": 1} if method == "mmff" else {"num_workers": 1} if method == "xtb" else {}
    for case in cases:
        tic = time.process_time()
        try:
            result = relax(case.system, torch.from_numpy(case.positions), method, max_steps=max_steps, **options)
        except AdjointSamplingError as exc:
            refused[case.test_id] = str(exc)
            continue
        cpu += time.process_time() - tic
        ok = result.ok.numpy().astype(bool)
        total += len(ok)
        failed += int((~ok).sum())
        converged += int(result.converged.numpy()[ok].sum())
        positions = result.positions.numpy().copy()
        rmsd = moved_rmsd(case.positions[ok], positions[ok], case.heavy_atoms)
        moved[case.test_id] = [float(x) for x in rmsd]
        log.info("%s relaxed %s: median %.3f A moved, %.1f CPU s", getattr(method, "name", method), case.test_id,
                 float(np.median(rmsd)) if rmsd.size else float("nan"), time.process_time() - tic)
        if final is not None:
            positions[~ok] = np.nan
            final[case.test_id] = positions
    return _relax_summary(moved, total, failed, converged, cpu, max_steps, refused)


def _relax_summary(
    moved: dict[str, list[float]], total: int, failed: int, converged: int, cpu: float, max_steps: int,
    refused: dict[str, str],
) -> dict[str, Any]:
    pooled = np.array([x for values in moved.values() for x in values])
    per_molecule = np.array([np.median(v) for v in moved.values() if v])
    return {
        "molecules": len(moved),
        "conformers": total,
        "failed": failed,
        "converged_fraction": converged / max(total - failed, 1),
        "rmsd_median": float(np.median(pooled)) if pooled.size else None,
        "rmsd_mean": float(pooled.mean()) if pooled.size else None,
        "rmsd_p90": float(np.quantile(pooled, 0.9)) if pooled.size else None,
        "rmsd_max": float(pooled.max()) if pooled.size else None,
        "rmsd_median_of_molecule_medians": float(np.median(per_molecule)) if per_molecule.size else None,
        "cpu_s": cpu,
        "cpu_s_per_conformer": cpu / total if total else None,
        "max_steps": int(max_steps),
        "refused_molecules": refused,
        "per_molecule": moved,
    }


def subset_cases(cases: Sequence[RelaxCase], num_conformers: int) -> tuple[list[RelaxCase], dict[str, np.ndarray]]:
    """Up to ``num_conformers`` of each case's conformers (evenly spaced) and, per case, their indices."""
    subset: list[RelaxCase] = []
    indices: dict[str, np.ndarray] = {}
    for case in cases:
        chosen = evenly_spaced(len(case.positions), num_conformers)
        if chosen.size:
            indices[case.test_id] = chosen
            subset.append(RelaxCase(case.test_id, case.system, case.positions[chosen], case.heavy_atoms))
    return subset, indices


def distance_to_reference_minima(
    cases: Sequence[RelaxCase], final: dict[str, np.ndarray], reference_final: dict[str, np.ndarray],
    indices: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Heavy-atom RMSD (angstrom, aligned, atom order kept) between a model's relaxed conformers
    ``final[id][indices[id]]`` and the GFN2-xTB-relaxed ones ``reference_final[id]``: how far the
    model's minimum is from GFN2-xTB's, starting from the same CREST conformer."""
    values: list[float] = []
    for case in cases:
        if case.test_id not in final or case.test_id not in reference_final:
            continue
        mine, ref = final[case.test_id][indices[case.test_id]], reference_final[case.test_id]
        ok = np.isfinite(mine).reshape(len(mine), -1).all(1) & np.isfinite(ref).reshape(len(ref), -1).all(1)
        values += moved_rmsd(ref[ok], mine[ok], case.heavy_atoms).tolist()
    array = np.array(values)
    return {"conformers": int(array.size), "rmsd_median": float(np.median(array)) if array.size else None,
            "rmsd_mean": float(array.mean()) if array.size else None}


# ----------------------------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _tables(report: dict[str, Any]) -> str:
    lines = [
        "| checkpoint | set | molecules | frames | rel. E MAE (kcal/mol) | F MAE (kcal/mol/A) | median Spearman "
        "| gnn CPU ms/frame | source's energy offset, mean abs. / mean (kcal/mol) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    entries = [{"label": "(constant E, zero F)", "sets": {
        name: dict(base, model_cpu_ms_per_frame=None) for name, base in report["baselines"].items()
    }}] + report["checkpoints"]
    for ckpt in entries:
        for name, result in ckpt["sets"].items():
            rows = [(name, result["all"], result["model_cpu_ms_per_frame"])]
            rows += [(f"{name}: {src}", s, None) for src, s in result["by_source"].items()]
            for label, s, ms in rows:
                offsets = ("-" if s.get("energy_offset_mean_abs") is None
                           else f"{_fmt(s['energy_offset_mean_abs'], 2)} / {s['energy_offset_mean']:+.2f}")
                lines.append(
                    f"| {ckpt['label']} | {label} | {s['molecules']} | {s['frames']} | {_fmt(s['energy_rel_mae'])} "
                    f"| {_fmt(s['force_mae'])} | {_fmt(s['spearman_median'])} | {_fmt(ms, 2)} | {offsets} |"
                )
    relax_rows = [("mmff", report.get("mmff_relax"), None), ("xtb (GFN2, tblite)", report.get("xtb_relax"), None)]
    relax_rows += [(f"gnn {c['label']}", c.get("relax"), c.get("relax_vs_xtb")) for c in report["checkpoints"]]
    if any(r for _, r, _ in relax_rows):
        lines += [
            "",
            (
                f"| relaxation of the conformers of {Path(report['config']['conformer_dir']).name} | molecules "
                "| conformers | median heavy-atom RMSD moved (A) | mean "
                "| p90 | converged | CPU s/conformer | median RMSD to xtb-relaxed (A) |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, r, vs in relax_rows:
            if r:
                lines.append(
                    f"| {label} | {r['molecules']} | {r['conformers']} | {_fmt(r['rmsd_median'])} | {_fmt(r['rmsd_mean'])} "
                    f"| {_fmt(r['rmsd_p90'])} | {_fmt(r['converged_fraction'], 2)} | {_fmt(r['cpu_s_per_conformer'])} "
                    f"| {_fmt(vs['rmsd_median']) if vs else '-'} |"
                )
    return "\n".join(lines)


def _label(path: Path, paths: Sequence[Path]) -> str:
    names = [p.name for p in paths]
    return path.name if names.count(path.name) == 1 else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", required=True, help="GNN checkpoint (repeatable)")
    parser.add_argument("--spice-labels", type=Path, default=DEFAULT_SPICE_LABELS, help="labelling job folder")
    parser.add_argument("--spice-split", choices=("test", "validation", "train"), default="test",
                        help="split of the labelled frames to evaluate (validation: for choosing between models; "
                             "train against validation: whether more data or more capacity is wanted)")
    parser.add_argument("--crest-labels", type=Path, default=DEFAULT_OUT_DIR, help="gnn_reference_labels folder")
    parser.add_argument("--test-list", type=Path, default=SHARED_DATA_DIR / "spice_test.txt")
    parser.add_argument("--conformer-dir", type=Path, default=SHARED_DATA_DIR / "spice_test_conformers")
    parser.add_argument("--max-molecules", type=int, default=None, help="first molecules of each set only")
    parser.add_argument("--relax-conformers", type=int, default=8, help="CREST conformers relaxed per molecule (0: none)")
    parser.add_argument("--relax-steps", type=int, default=DEFAULT_MAX_STEPS)
    parser.add_argument(
        "--xtb-relax-conformers", type=int, default=0,
        help="relax this many of each molecule's CREST conformers with GFN2-xTB too (~10 CPU s each; 0: none): "
             "how far the references are from tblite GFN2-xTB minima, and how far the gnn minima are from those",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="gnn network dtype")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    from adjoint_sampling.energy.gnn import GNNEnergy

    sets = {
        f"spice_xtb {args.spice_split}": load_labelled_molecules(
            args.spice_labels, args.spice_split, args.max_molecules),
        "crest_test_xtb": load_labelled_molecules(args.crest_labels, "test", args.max_molecules),
    }
    for name, molecules in sets.items():
        if not molecules:
            log.warning("set %s has no frames; it is left out", name)
    cases = (
        load_relax_cases(args.test_list, args.conformer_dir, args.relax_conformers, args.max_molecules)
        if args.relax_conformers > 0 else []
    )
    report: dict[str, Any] = {
        "config": {
            "spice_labels": str(args.spice_labels), "spice_split": args.spice_split,
            "crest_labels": str(args.crest_labels), "test_list": str(args.test_list),
            "conformer_dir": str(args.conformer_dir),
            "max_molecules": args.max_molecules, "relax_conformers": args.relax_conformers,
            "relax_steps": args.relax_steps, "dtype": args.dtype, "torch_threads": args.threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "targets": TARGETS,
        "baselines": {name: constant_baseline(molecules) for name, molecules in sets.items() if molecules},
        "mmff_relax": relaxation_moves(cases, "mmff", args.relax_steps) if cases else None,
        "xtb_relax": None,
        "checkpoints": [],
    }
    xtb_cases, xtb_indices = subset_cases(cases, args.xtb_relax_conformers)
    xtb_final: dict[str, np.ndarray] = {}
    if xtb_cases:
        log.info("relaxing %d conformers with GFN2-xTB", sum(len(c.positions) for c in xtb_cases))
        report["xtb_relax"] = relaxation_moves(xtb_cases, "xtb", args.relax_steps, final=xtb_final)
    for path in args.checkpoint:
        model = GNNEnergy(checkpoint_path=path, dtype=args.dtype)
        entry: dict[str, Any] = {
            "checkpoint": str(path), "label": _label(path, args.checkpoint),
            "training_data": model.checkpoint.training_data, "sets": {},
        }
        for name, molecules in sets.items():
            if molecules:
                log.info("%s on %s: %d molecules", path, name, len(molecules))
                entry["sets"][name] = evaluate_molecules(model, molecules)
        if cases:
            log.info("%s: relaxing %d molecules' CREST conformers", path, len(cases))
            gnn_final: dict[str, np.ndarray] = {}
            entry["relax"] = relaxation_moves(cases, model, args.relax_steps, final=gnn_final)
            if xtb_cases:
                entry["relax_vs_xtb"] = distance_to_reference_minima(xtb_cases, gnn_final, xtb_final, xtb_indices)
            median = entry["relax"]["rmsd_median"]
            entry["relax"]["meets_target"] = None if median is None else bool(median <= TARGETS["relax_rmsd_median"])
        report["checkpoints"].append(entry)
    print(_tables(report))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(report, indent=1) + "\n")
    log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
