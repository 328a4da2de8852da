"""Speed and sanity figures of molecule handling, structure checks, energy backends and relaxation.

Run: ``OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.molecules_energy --out benchmarks/results/molecules_energy.json``

Prints a table and writes the numbers as JSON:
    * structure checks on RDKit ETKDG conformers of the SPICE test molecules (raw and after MMFF
      relaxation: how many pass, i.e. the checker's false-alarm rate on valid conformers), and the
      bond-structure penalty on the relaxed ones (should be zero);
    * rotatable bonds found vs the count column of ``spice_test.txt`` (RDKit's strict count);
    * seconds per energy+forces call per conformer for mmff, xtb and a random 2-layer eSEN (CPU);
    * seconds per conformer for MMFF (RDKit) and xTB (L-BFGS) relaxation;
    * set_torsions + torsion_gradient and check_conformers throughput.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.embedding import embed_etkdg, local_structure
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.chemistry.torsions import find_torsions, set_torsions, torsion_gradient
from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.core.paths import SHARED_DATA_DIR
from adjoint_sampling.core.timing import best_seconds
from adjoint_sampling.energy.penalty import BondStructurePenalty
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.energy.relax import relax

logger = logging.getLogger(__name__)

DEFAULT_DATA = SHARED_DATA_DIR / "spice_test.txt"


def _read_molecules(path: Path) -> list[tuple[int, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0].isdigit():
            rows.append((int(fields[0]), fields[1], fields[2]))
    return rows


def _etkdg(parsed, num: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(embed_etkdg(parsed.mol, num, seed))


def structure_figures(rows, conformers_per_molecule: int) -> dict:
    raw_ok = raw_total = relaxed_ok = relaxed_total = penalty_zero = 0
    torsion_match = parsed_count = 0
    reasons: dict[str, int] = {}
    penalty = BondStructurePenalty()
    for count, smiles, mol_id in rows:
        try:
            parsed = parse_smiles(smiles)
        except InvalidMoleculeError as exc:
            logger.warning("%s skipped: %s", mol_id, exc)
            continue
        parsed_count += 1
        torsion_match += int(find_torsions(parsed.mol).num_torsions == count)
        pos = _etkdg(parsed, conformers_per_molecule, seed=0)
        for check in check_conformers(parsed.mol, pos):
            raw_total += 1
            raw_ok += int(check.ok)
            if not check.ok:
                reasons[f"etkdg:{check.reason}"] = reasons.get(f"etkdg:{check.reason}", 0) + 1
        system = atomic_system(parsed)
        relaxed = relax(system, pos, "mmff", max_steps=2000)
        for check in check_conformers(parsed.mol, relaxed.positions):
            relaxed_total += 1
            relaxed_ok += int(check.ok)
            if not check.ok:
                reasons[f"mmff:{check.reason}"] = reasons.get(f"mmff:{check.reason}", 0) + 1
        penalty_zero += int((penalty.energy(system, relaxed.positions) == 0).sum())
    return {
        "molecules": parsed_count,
        "etkdg_conformers": raw_total,
        "etkdg_pass_rate": raw_ok / max(raw_total, 1),
        "mmff_relaxed_conformers": relaxed_total,
        "mmff_relaxed_pass_rate": relaxed_ok / max(relaxed_total, 1),
        "mmff_relaxed_zero_penalty_rate": penalty_zero / max(relaxed_total, 1),
        "check_failures": reasons,
        "rotatable_bonds_equal_to_file_count": torsion_match / max(parsed_count, 1),
    }


def speed_figures(smiles: str, xtb_workers: int) -> dict:
    parsed = parse_smiles(smiles)
    system = atomic_system(parsed)
    pos = _etkdg(parsed, 8, seed=1)
    figures: dict[str, float | int | str] = {"molecule": smiles, "atoms": parsed.num_atoms}
    batch64 = pos.repeat(8, 1, 1)
    mmff = build_energy("mmff")
    figures["mmff_s_per_conformer"] = best_seconds(lambda: mmff.energy_and_forces(system, batch64)) / 64
    for workers in sorted({1, xtb_workers}):
        xtb = build_energy("xtb", num_workers=workers)
        figures[f"xtb_{workers}workers_s_per_conformer"] = best_seconds(lambda: xtb.energy_and_forces(system, pos), 1) / 8
    with tempfile.TemporaryDirectory() as tmp:
        from adjoint_sampling.energy.fairchem_backend import save_random_esen_checkpoint

        path = save_random_esen_checkpoint(Path(tmp) / "esen.pt", num_layers=2, channels=32)
        esen = build_energy("fairchem", checkpoint_path=path)
        figures["esen_2x32_cpu_s_per_conformer"] = best_seconds(lambda: esen.energy_and_forces(system, pos), 2) / 8
    figures["relax_mmff_s_per_conformer"] = best_seconds(lambda: relax(system, batch64, "mmff", max_steps=2000), 2) / 64
    xtb = build_energy("xtb", num_workers=xtb_workers)
    start = time.perf_counter()
    result = relax(system, pos[:4], xtb, max_steps=300)
    figures["relax_xtb_s_per_conformer"] = (time.perf_counter() - start) / 4
    figures["relax_xtb_mean_steps"] = float(result.num_steps.double().mean())
    figures["relax_xtb_converged"] = int(result.converged.sum())

    topology = find_torsions(parsed.mol)
    local = local_structure(parsed, 0)
    angles = (torch.rand(512, topology.num_torsions, dtype=torch.float64) * 2 - 1) * np.pi
    forces = torch.randn(512, parsed.num_atoms, 3, dtype=torch.float64)
    figures["torsions"] = topology.num_torsions
    figures["set_torsions_512_s"] = best_seconds(lambda: set_torsions(local, topology, angles))
    placed = set_torsions(local, topology, angles)
    figures["torsion_gradient_512_s"] = best_seconds(lambda: torsion_gradient(placed, forces, topology))
    many = pos.repeat(128, 1, 1)
    figures["check_conformers_1024_s"] = best_seconds(lambda: check_conformers(parsed.mol, many))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="spice_test.txt")
    parser.add_argument("--conformers", type=int, default=8, help="ETKDG conformers per molecule")
    parser.add_argument("--xtb-workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/molecules_energy.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    rows = _read_molecules(args.data)
    largest = max(rows, key=lambda r: parse_smiles(r[1]).num_atoms if _parses(r[1]) else 0)
    typical = min(rows, key=lambda r: abs(parse_smiles(r[1]).num_atoms - 49) if _parses(r[1]) else 1e9)
    results = {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_cores": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
        "structure": structure_figures(rows, args.conformers),
        "speed": speed_figures(typical[1], args.xtb_workers),
        "largest_molecule_atoms": parse_smiles(largest[1]).num_atoms,
        "load_average_end": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


def _parses(smiles: str) -> bool:
    try:
        parse_smiles(smiles)
    except InvalidMoleculeError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
