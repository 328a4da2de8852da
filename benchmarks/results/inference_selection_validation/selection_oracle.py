"""Diagnostic (eighteenth session, before the sampler could select): would drawing F x K conformers
with the shipped model and keeping K of them lift coverage on the validation ensembles?

Per molecule: the shipped model's K draws ("base"), F x K draws (the sampler's reported MMFF94
energies), and subsets of K of them: random ("random_half"), greedy by RMSD in random order
("greedy_rand_t") or from the lowest energy up ("greedy_energy_t", what generation.selection does);
"all2K": all F x K draws. The F x K draws used local structures for F x K samples (the shipped
selection uses those of K).

    python -m adjoint_sampling.benchmarks.sampling_variant models/archive/torsional_spice_gnn/model.pt \
        runs/seventeenth.pt --sde-steps 5 --output-energy mmff --clash-repair-steps 20 --polish-steps 20 --polish-step 0.01
    OMP_NUM_THREADS=1 python selection_oracle.py runs/seventeenth.pt 0/2 1.5 runs/prune &   # and 1/2
    python selection_oracle_summary.py 'runs/prune/f1.5_*.jsonl'

oracle_select_from_2.jsonl was made with F = 2 and thresholds t in (0.25, 0.5, 0.75);
oracle_select_from_1.5.jsonl with F = 1.5 and t in (0.0, 0.15, 0.25, 0.5) (as below).
"""
import json
import sys
import time

import numpy as np
import torch

from adjoint_sampling.benchmarks.conformers.metrics import coverage_metrics
from adjoint_sampling.benchmarks.conformers.references import load_reference_ensemble, read_test_list
from adjoint_sampling.benchmarks.conformers.runner import _conformer_positions
from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest

THRESHOLDS = (0.0, 0.15, 0.25, 0.5)


def coverage(distances: np.ndarray) -> list[float]:
    """COV-R at 0.5 / 0.75 / 1.0 A, then COV-P at the same."""
    m = coverage_metrics(distances)
    return [m.recall_at(t) for t in (0.5, 0.75, 1.0)] + [m.precision_at(t) for t in (0.5, 0.75, 1.0)]


def greedy(self_rmsd: np.ndarray, order: list[int], k: int, limit: float) -> tuple[list[int], int]:
    """k indices: distinct ones (RMSD > limit) in ``order``, then the rest in order; and how many were distinct."""
    kept: list[int] = []
    for i in order:
        if len(kept) == k:
            break
        if not kept or self_rmsd[i, kept].min() > limit:
            kept.append(i)
    taken = set(kept)
    rest = [i for i in order if i not in taken]
    return kept + rest[: k - len(kept)], len(kept)


def main(model: str, shard_text: str, factor: float, out_dir: str) -> None:
    torch.set_num_threads(1)
    shard, num_shards = map(int, shard_text.split("/"))
    sampler = Sampler.from_checkpoint(model, None, reuse_samples=False)
    molecules = read_test_list("data/validation_ensembles/validation.txt")
    with open(f"{out_dir}/f{factor}_{shard}.jsonl", "a") as out:
        for j, mol in enumerate(molecules):
            if j % num_shards != shard:
                continue
            ref = load_reference_ensemble(mol, "data/validation_ensembles", 512)
            symmetry = heavy_atom_symmetry(ref.mol)
            k = 2 * ref.num_references
            base = sampler.generate(GenerationRequest(smiles=mol.smiles, num_conformers=k, seed=0, relax="none"))
            big = sampler.generate(GenerationRequest(smiles=mol.smiles, num_conformers=int(np.ceil(factor * k)), seed=0,
                                                     relax="none"))
            rec = {"mol_id": mol.mol_id, "K": k}
            positions = _conformer_positions(ref, big)
            rec["base"] = coverage(rmsd_matrix(symmetry, _conformer_positions(ref, base), ref.positions))
            to_refs = rmsd_matrix(symmetry, positions, ref.positions)
            tic = time.process_time()
            self_rmsd = rmsd_matrix(symmetry, positions, positions)
            rec["self_rmsd_s"] = time.process_time() - tic
            order = np.random.default_rng(0).permutation(len(positions))
            rec["random_half"] = coverage(to_refs[order[:k]])
            rec["all2K"] = coverage(to_refs)
            energy = np.array([np.inf if c.energy is None else c.energy for c in big.conformers])
            for limit in THRESHOLDS:
                chosen, distinct = greedy(self_rmsd, list(order), k, limit)
                rec[f"greedy_rand_{limit}"], rec[f"n_distinct_{limit}"] = coverage(to_refs[chosen]), distinct
                chosen, _ = greedy(self_rmsd, list(np.argsort(energy)), k, limit)
                rec[f"greedy_energy_{limit}"] = coverage(to_refs[chosen])
            nearest = np.sort(self_rmsd + np.eye(len(positions)) * 99, axis=1)[:, 0]
            rec["nn_rmsd_quartiles"] = np.quantile(nearest, [0.25, 0.5, 0.75]).tolist()
            out.write(json.dumps(rec) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
