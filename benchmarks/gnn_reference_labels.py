"""GFN2-xTB labels of CREST reference conformers of the SPICE test molecules, for evaluating the GNN potential.

Per test molecule with a CREST ensemble: up to ``max_conformers`` matched reference conformers, evenly
spaced through the file (deterministic), plus one perturbed copy of each (Gaussian displacement of every
atom, ``sigma`` angstrom per coordinate, seed from the config seed and the molecule id), labelled with
GFN2-xTB energy and forces (tblite, the labelling job's settings; charge and multiplicity from the
SMILES). Frames have source ``crest`` / ``crest_perturbed``, split ``test`` and the extra
``crest_index`` (block index in ``crest_conformers.xyz``). Evaluation data only: never train on it.

Output folder (every file written atomically; a molecule is done once its record exists, so a killed
run resumes where it stopped and a rerun of a finished one does no work)::

    job.json                      the settings the folder was made with (a rerun must match)
    data/test/<test id>.extxyz.gz one molecule's frames (gzip extended XYZ, :mod:`labelling.extxyz`)
    records/<test id>.json        its record: counts, failed SCFs, CPU seconds (written after the frames)
    summary.json                  totals over all records, rewritten at the end of each run

    OMP_NUM_THREADS=1 nice -n 10 python -m adjoint_sampling.benchmarks.gnn_reference_labels
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adjoint_sampling.benchmarks.conformers.references import (
    BenchmarkMolecule,
    load_reference_ensemble,
    read_test_list,
    reference_path,
)
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.core.atomic_io import atomic_write_bytes, atomic_write_text
from adjoint_sampling.core.errors import AdjointSamplingError, ConfigError
from adjoint_sampling.core.paths import REPO_ROOT, SHARED_DATA_DIR
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.labelling.extxyz import POSITION_DECIMALS, LabelledFrame, write_frames_gz
from adjoint_sampling.labelling.molecules import canonical_smiles, molecule_id

__all__ = [
    "DEFAULT_OUT_DIR",
    "ReferenceLabelConfig",
    "ReferenceLabelSummary",
    "evenly_spaced",
    "label_reference_molecule",
    "main",
    "perturb",
    "run_reference_labels",
]

log = logging.getLogger(__name__)

DEFAULT_OUT_DIR: Path = REPO_ROOT / "data" / "labels" / "crest_test_xtb"
SPLIT = "test"
ALL_REFERENCES = 1 << 30
"""``max_references`` that keeps every matched conformer of an ensemble."""


@dataclass(frozen=True)
class ReferenceLabelConfig:
    """Settings of the reference labels (stored in ``job.json``; a rerun into the same folder must match).

    Attributes:
        test_list: ``spice_test.txt``-style list (rotatable bonds, SMILES, id).
        conformer_dir: folder of ``<id>/crest_conformers.xyz``.
        max_conformers: CREST conformers per molecule (evenly spaced through the file).
        sigma: standard deviation of the perturbation, angstrom per coordinate.
        seed: base seed of the perturbations.
        xtb_options: keyword arguments of the ``xtb`` backend (default: the labelling job's, GFN2-xTB).
    """

    test_list: str = str(SHARED_DATA_DIR / "spice_test.txt")
    conformer_dir: str = str(SHARED_DATA_DIR / "spice_test_conformers")
    max_conformers: int = 24
    sigma: float = 0.05
    seed: int = 0
    xtb_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_conformers < 1:
            raise ConfigError(f"max_conformers must be >= 1, got {self.max_conformers}")
        if self.sigma < 0:
            raise ConfigError(f"sigma must be >= 0, got {self.sigma}")


@dataclass
class ReferenceLabelSummary:
    """What one run did.

    Attributes:
        molecules: test molecules with a reference ensemble (after ``max_molecules``).
        missing_reference: test molecules without one (not labelled).
        already_done: molecules done before this run.
        labelled: molecules labelled by this run.
        frames: frames written by this run.
        failed_scf: GFN2-xTB calculations of this run that failed (their frames are skipped).
        cpu_s: CPU seconds of the molecules labelled by this run.
    """

    molecules: int = 0
    missing_reference: int = 0
    already_done: int = 0
    labelled: int = 0
    frames: int = 0
    failed_scf: int = 0
    cpu_s: float = 0.0


def evenly_spaced(num_available: int, num_wanted: int) -> np.ndarray:
    """Sorted indices ``(min(num_available, num_wanted),)`` spread evenly over ``0 .. num_available - 1``
    (first and last included)."""
    if num_available <= 0 or num_wanted <= 0:
        return np.zeros(0, dtype=np.int64)
    if num_wanted >= num_available:
        return np.arange(num_available, dtype=np.int64)
    if num_wanted == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.linspace(0, num_available - 1, num_wanted)).astype(np.int64)


def _seed_of(base: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{base}:{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def perturb(positions: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``positions`` ``(B, N, 3)`` angstrom plus i.i.d. Gaussian noise of standard deviation ``sigma`` angstrom."""
    rng = np.random.default_rng(seed)
    return np.asarray(positions, dtype=np.float64) + rng.normal(0.0, sigma, size=np.shape(positions))


def label_reference_molecule(
    molecule: BenchmarkMolecule, config: ReferenceLabelConfig, energy: EnergyModel
) -> tuple[list[LabelledFrame], dict[str, Any]]:
    """Frames (``crest`` then ``crest_perturbed``) and record of one test molecule.

    Failed SCFs are counted in the record and their frames skipped. Raises what
    :func:`load_reference_ensemble` raises for a missing or malformed ensemble or a refused SMILES.
    """
    start = time.process_time()
    reference = load_reference_ensemble(molecule, config.conformer_dir, ALL_REFERENCES)
    parsed = parse_smiles(molecule.smiles)
    system = atomic_system(parsed)
    canonical = canonical_smiles(molecule.smiles)
    mol_id = molecule_id(canonical)
    chosen = evenly_spaced(reference.num_references, config.max_conformers)
    crest = np.round(reference.positions[chosen], POSITION_DECIMALS)
    noisy = np.round(perturb(crest, config.sigma, _seed_of(config.seed, molecule.mol_id)), POSITION_DECIMALS)
    block_index = reference.source_indices[chosen]
    record: dict[str, Any] = {
        "test_id": molecule.mol_id, "mol_id": mol_id, "smiles": molecule.smiles, "canonical": canonical,
        "rotatable_bonds": molecule.rotatable_bonds, "num_atoms": system.num_atoms, "charge": system.charge,
        "multiplicity": system.multiplicity, "num_blocks": reference.num_blocks,
        "num_matched": reference.num_references, "unmatched": reference.unmatched_counts(),
        "crest_indices": block_index.tolist(), "xtb_calls": 0, "failed_scf": 0, "failure_reasons": [],
        "frames": {}, "num_frames": 0, "cpu_s": 0.0,
    }
    frames: list[LabelledFrame] = []
    numbers = system.atomic_numbers.numpy().astype(np.int64)
    for source, positions in (("crest", crest), ("crest_perturbed", noisy)):
        kept = 0
        if len(positions):
            result = energy.energy_and_forces(system, torch.from_numpy(positions))
            ok = result.ok.numpy().astype(bool)
            record["xtb_calls"] += len(positions)
            record["failed_scf"] += int((~ok).sum())
            record["failure_reasons"] += list(result.failure_reasons)
            for b in np.flatnonzero(ok).tolist():
                frames.append(LabelledFrame(
                    atomic_numbers=numbers, positions=positions[b], energy_kcal_mol=float(result.energy[b]),
                    forces_kcal_mol_a=result.forces[b].numpy().astype(np.float64), smiles=canonical,
                    charge=system.charge, multiplicity=system.multiplicity, source=source, split=SPLIT,
                    mol_id=mol_id, conf_id=len(frames), extras={"crest_index": int(block_index[b])},
                ))
                kept += 1
        record["frames"][source] = kept
    record["num_frames"] = len(frames)
    record["cpu_s"] = time.process_time() - start
    return frames, record


def _config_dict(config: ReferenceLabelConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))


_CHECKED = ("max_conformers", "sigma", "seed", "xtb_options")
"""Settings a rerun must share with ``job.json`` (the input paths may differ between checkouts)."""


def _check_job_file(out: Path, config: ReferenceLabelConfig) -> None:
    path = out / "job.json"
    wanted = _config_dict(config)
    if path.is_file():
        stored = json.loads(path.read_text())
        if any(stored.get(key) != wanted[key] for key in _CHECKED):
            raise ConfigError(f"{out} was made with other settings ({path}); use another --out")
    else:
        atomic_write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")


def frames_path(out: Path, test_id: str) -> Path:
    """The frames file of one test molecule."""
    return out / "data" / SPLIT / f"{test_id}.extxyz.gz"


def record_path(out: Path, test_id: str) -> Path:
    """The record of one test molecule (it exists once the molecule is done)."""
    return out / "records" / f"{test_id}.json"


def _write_summary(out: Path) -> dict[str, Any]:
    records = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    data_bytes = sum(p.stat().st_size for p in (out / "data" / SPLIT).glob("*.extxyz.gz"))
    summary = {
        "molecules": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "skipped": {r["test_id"]: r["reason"] for r in records if r["status"] != "ok"},
        "frames": sum(r["num_frames"] for r in records),
        "frames_by_source": {
            s: sum(r.get("frames", {}).get(s, 0) for r in records) for s in ("crest", "crest_perturbed")
        },
        "xtb_calls": sum(r.get("xtb_calls", 0) for r in records),
        "failed_scf": sum(r.get("failed_scf", 0) for r in records),
        "cpu_s": sum(r["cpu_s"] for r in records),
        "data_bytes": data_bytes,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def run_reference_labels(
    config: ReferenceLabelConfig,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    max_molecules: int | None = None,
    energy: EnergyModel | None = None,
) -> ReferenceLabelSummary:
    """Label the test molecules with a reference ensemble (the first ``max_molecules`` of them) into
    ``out_dir``, skipping those already done.

    Args:
        energy: the labelling backend; default ``build_energy("xtb", num_workers=1, **config.xtb_options)``.

    Raises:
        ConfigError: ``out_dir`` was made with other settings.
    """
    out = Path(out_dir)
    molecules = read_test_list(config.test_list)
    present = [m for m in molecules if reference_path(config.conformer_dir, m.mol_id).is_file()]
    summary = ReferenceLabelSummary(missing_reference=len(molecules) - len(present))
    if max_molecules is not None:
        present = present[:max_molecules]
    summary.molecules = len(present)
    _check_job_file(out, config)
    todo = [m for m in present if not record_path(out, m.mol_id).is_file()]
    summary.already_done = len(present) - len(todo)
    log.info("%d test molecules with references, %d done before, %d to label", len(present),
             summary.already_done, len(todo))
    if todo and energy is None:
        from adjoint_sampling.energy.registry import build_energy

        energy = build_energy("xtb", **{"num_workers": 1, **config.xtb_options})
    for k, molecule in enumerate(todo, start=1):
        try:
            assert energy is not None
            frames, record = label_reference_molecule(molecule, config, energy)
            record["status"], record["reason"] = "ok", None
        except AdjointSamplingError as exc:
            log.warning("%s skipped: %s", molecule.mol_id, exc)
            frames = []
            record = {"test_id": molecule.mol_id, "smiles": molecule.smiles, "status": "skipped",
                      "reason": f"{type(exc).__name__}: {exc}", "num_frames": 0, "cpu_s": 0.0}
        atomic_write_bytes(frames_path(out, molecule.mol_id), write_frames_gz(frames))
        atomic_write_text(record_path(out, molecule.mol_id), json.dumps(record, indent=1, sort_keys=True) + "\n")
        summary.labelled += 1
        summary.frames += record["num_frames"]
        summary.failed_scf += record.get("failed_scf", 0)
        summary.cpu_s += record["cpu_s"]
        log.info("[%d/%d] %s: %d frames, %d failed SCF, %.1f CPU s", k, len(todo), molecule.mol_id,
                 record["num_frames"], record.get("failed_scf", 0), record["cpu_s"])
    totals = _write_summary(out)
    log.info("folder %s: %d molecules, %d frames, %d failed SCF, %.0f CPU s, %.2f MB", out, totals["molecules"],
             totals["frames"], totals["failed_scf"], totals["cpu_s"], totals["data_bytes"] / 1e6)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ReferenceLabelConfig()
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--test-list", default=defaults.test_list)
    parser.add_argument("--conformer-dir", default=defaults.conformer_dir)
    parser.add_argument("--max-conformers", type=int, default=defaults.max_conformers)
    parser.add_argument("--sigma", type=float, default=defaults.sigma, help="perturbation, angstrom")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-molecules", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    config = ReferenceLabelConfig(
        test_list=str(args.test_list), conformer_dir=str(args.conformer_dir), max_conformers=args.max_conformers,
        sigma=args.sigma, seed=args.seed,
    )
    summary = run_reference_labels(config, args.out, max_molecules=args.max_molecules)
    print(json.dumps(dataclasses.asdict(summary)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
