"""Energies of a torsional model's conformers vs uniformly random torsions on the same local structures.

For each test molecule the script runs ``adjoint-sampling sample`` (the CLI, exactly as a user
would) with the checkpoint, then draws the same number of uniformly random torsion vectors on the
local structures the sampler used (same seed, same RDKit recipe, same split), applies the same structure
checks, and compares energies under the checkpoint's backend (kcal/mol). It also compares all raw
samples (before the checks drop clashes), and counts distinct conformers (greedy heavy-atom RMSD
pruning at 0.5 angstrom) among the kept ones. Results: a JSON file and a Markdown table.

    python -m adjoint_sampling.benchmarks.torsional_vs_random --model runs/torsional_spice/model.pt -n 50 --seed 0 \\
        --num-molecules 10 --output benchmarks/results/torsional_vs_random
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from adjoint_sampling.chemistry.checks import check_conformers
from adjoint_sampling.chemistry.rmsd import prune_by_rmsd
from adjoint_sampling.chemistry.torsions import set_torsions
from adjoint_sampling.core.paths import SHARED_DATA_DIR
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.problems.molecular.dataset import read_smiles_file

DEFAULT_TEST_FILE = SHARED_DATA_DIR / "spice_test.txt"


def pick_molecules(path: Path, count: int) -> list[str]:
    """``count`` SMILES spread evenly over the file (it is sorted by rotatable-bond count)."""
    smiles = read_smiles_file(path)
    step = max(1, len(smiles) // count)
    return smiles[::step][:count]


def run_sample_cli(smi_file: Path, model: str, num: int, seed: int, out_sdf: Path) -> list[str]:
    """Run ``adjoint-sampling sample``; returns the command line used."""
    cmd = [sys.executable, "-m", "adjoint_sampling.cli", "sample", str(smi_file), "-n", str(num), "--seed", str(seed),
           "-o", str(out_sdf), "--model", model]
    subprocess.run(cmd, check=False)
    return cmd


def sdf_conformers(path: Path) -> dict[str, tuple[list[float], list[np.ndarray]]]:
    """Energies (kcal/mol) and positions ``(N, 3)`` of the SDF records, grouped by ``smiles`` tag."""
    out: dict[str, tuple[list[float], list[np.ndarray]]] = {}
    for mol in Chem.SDMolSupplier(str(path), removeHs=False):
        if mol is not None and mol.HasProp("energy_kcal_mol"):
            energies, positions = out.setdefault(mol.GetProp("smiles"), ([], []))
            energies.append(float(mol.GetProp("energy_kcal_mol")))
            positions.append(mol.GetConformer().GetPositions())
    return out


def num_distinct(mol: Chem.Mol, positions: np.ndarray, threshold: float) -> int:
    """Conformers left after greedy heavy-atom RMSD pruning at ``threshold`` angstrom."""
    return int(len(prune_by_rmsd(mol, positions, threshold))) if len(positions) else 0


def _stats(values: list[float]) -> dict[str, float | int | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"n": 0, "mean": None, "median": None, "min": None}
    return {"n": len(finite), "mean": statistics.fmean(finite), "median": statistics.median(finite), "min": min(finite)}


def compare_molecule(
    sampler: Sampler, smiles: str, num: int, seed: int, model_kept: tuple[list[float], list[np.ndarray]]
) -> dict:
    """Model vs uniform random torsions for one molecule (kept after checks, and all raw samples)."""
    record = sampler.prepare(GenerationRequest(smiles, seed=seed))
    energy = sampler.energy_model()
    generator = torch.Generator().manual_seed(10_000 + seed)
    random_parts = []
    for structure, count in sampler.local_structure_plan(record, num, seed):  # the sampler's structures
        angles = (torch.rand(count, record.num_torsions, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
        random_parts.append(set_torsions(structure.local_positions, record.topology, angles))
    random_pos = torch.cat(random_parts)
    random_energy = energy.energy_and_forces(record.system, random_pos).energy.tolist()
    random_ok = [c.ok for c in check_conformers(record.parsed.mol, random_pos)]
    model_pos = torch.from_numpy(sampler.sample_positions(record, num, seed))  # the CLI's raw samples
    model_raw = energy.energy_and_forces(record.system, model_pos).energy.tolist()
    random_kept_pos = random_pos.numpy()[np.asarray(random_ok, dtype=bool)]
    model_kept_pos = np.asarray(model_kept[1]).reshape(-1, record.num_atoms, 3)
    return {
        "smiles": smiles,
        "num_atoms": record.num_atoms,
        "num_torsions": record.num_torsions,
        "model_kept": _stats(model_kept[0]),
        "random_kept": _stats([e for e, ok in zip(random_energy, random_ok) if ok]),
        "model_distinct_0.5A": num_distinct(record.parsed.mol, model_kept_pos, 0.5),
        "random_distinct_0.5A": num_distinct(record.parsed.mol, random_kept_pos, 0.5),
        "model_all": _stats(model_raw),
        "random_all": _stats(random_energy),
    }


def _fmt(value: float | int | None) -> str:
    return "-" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def markdown(rows: list[dict], num: int) -> str:
    lines = [
        "| molecule | atoms | torsions | model kept | random kept | model mean E (kept) | random mean E (kept) "
        "| model median E (all) | random median E (all) | model distinct | random distinct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['smiles']}` | {r['num_atoms']} | {r['num_torsions']} | {r['model_kept']['n']}/{num} "
            f"| {r['random_kept']['n']}/{num} | {_fmt(r['model_kept']['mean'])} | {_fmt(r['random_kept']['mean'])} "
            f"| {_fmt(r['model_all']['median'])} | {_fmt(r['random_all']['median'])} "
            f"| {r['model_distinct_0.5A']} | {r['random_distinct_0.5A']} |"
        )
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> dict[str, float | int]:
    """Averages over molecules of per-molecule differences (model - random), kcal/mol."""
    kept = [r["model_kept"]["mean"] - r["random_kept"]["mean"] for r in rows
            if r["model_kept"]["mean"] is not None and r["random_kept"]["mean"] is not None]
    med = [r["model_all"]["median"] - r["random_all"]["median"] for r in rows]
    return {
        "molecules": len(rows),
        "mean_diff_kept_mean": statistics.fmean(kept) if kept else float("nan"),
        "molecules_model_lower_kept_mean": sum(d < 0 for d in kept),
        "mean_diff_all_median": statistics.fmean(med),
        "molecules_model_lower_all_median": sum(d < 0 for d in med),
        "model_kept_mean_count": statistics.fmean(r["model_kept"]["n"] for r in rows),
        "random_kept_mean_count": statistics.fmean(r["random_kept"]["n"] for r in rows),
        "model_distinct_mean": statistics.fmean(r["model_distinct_0.5A"] for r in rows),
        "random_distinct_mean": statistics.fmean(r["random_distinct_0.5A"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--test-file", type=Path, default=DEFAULT_TEST_FILE)
    parser.add_argument("--num-molecules", type=int, default=10)
    parser.add_argument("-n", "--num-conformers", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/torsional_vs_random"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    smiles = pick_molecules(args.test_file, args.num_molecules)
    smi_file = args.output / "molecules.smi"
    smi_file.write_text("\n".join(smiles) + "\n")
    sdf = args.output / "model_conformers.sdf"
    cmd = run_sample_cli(smi_file, args.model, args.num_conformers, args.seed, sdf)
    kept = sdf_conformers(sdf)
    sampler = Sampler.from_checkpoint(args.model)
    rows = [compare_molecule(sampler, s, args.num_conformers, args.seed, kept.get(s, ([], []))) for s in smiles]
    result = {"command": " ".join(cmd), "model": args.model, "model_version": sampler.version,
              "energy": sampler.checkpoint.problem["energy"], "temperature_k": sampler.temperature_k,
              "num_conformers": args.num_conformers, "seed": args.seed, "summary": summary(rows), "molecules": rows}
    (args.output / "results.json").write_text(json.dumps(result, indent=2))
    table = markdown(rows, args.num_conformers)
    (args.output / "results.md").write_text(table)
    print(table)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
