"""Oracle (twenty-first session): would relaxing F x K draws with MMFF94 and keeping K distinct low-energy ones lift
relaxed coverage on validation? Variants: "base" (K relaxed), "all" (F x K), "first_k", and K chosen greedily at
RMSD thresholds from the lowest energy up ("energy_t") or in draw order ("order_t").

    OMP_NUM_THREADS=1 python benchmarks/results/relaxed_selection_validation/relaxed_oracle.py \
        models/shipped/default.pt 0/1 2 relaxed_oracle_f2.jsonl
    python benchmarks/results/relaxed_selection_validation/relaxed_oracle_summary.py relaxed_oracle_f2.jsonl
"""
import json, sys, time
import numpy as np, torch
from adjoint_sampling.benchmarks.conformers.metrics import coverage_metrics
from adjoint_sampling.benchmarks.conformers.references import load_reference_ensemble, read_test_list
from adjoint_sampling.benchmarks.conformers.runner import _conformer_positions
from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest

def coverage(d):
    m = coverage_metrics(d)
    return [m.recall_at(t) for t in (0.5, 0.75, 1.0)] + [m.precision_at(t) for t in (0.5, 0.75, 1.0)]

def greedy(self_rmsd, order, k, limit):
    kept = []
    for i in order:
        if len(kept) == k: break
        if not kept or self_rmsd[i, kept].min() > limit: kept.append(i)
    taken = set(kept); rest = [i for i in order if i not in taken]
    return kept + rest[: k - len(kept)], len(kept)

def shard_molecules(shard_text):
    """(molecule, reference ensemble, heavy-atom symmetry, K = 2 x references) of shard i/n of the validation list."""
    shard, n = map(int, shard_text.split("/"))
    for j, mol in enumerate(read_test_list("data/validation_ensembles/validation.txt")):
        if j % n == shard:
            ref = load_reference_ensemble(mol, "data/validation_ensembles", 512)
            yield mol, ref, heavy_atom_symmetry(ref.mol), 2 * ref.num_references

def main(model, shard_text, factor, out_path):
    torch.set_num_threads(1)
    sampler = Sampler.from_checkpoint(model, None, reuse_samples=False)
    with open(out_path, "a") as out:
        for mol, ref, sym, k in shard_molecules(shard_text):
            t0 = time.process_time()
            base = sampler.generate(GenerationRequest(smiles=mol.smiles, num_conformers=k, seed=0, relax="mmff"))
            t1 = time.process_time()
            big = sampler.generate(GenerationRequest(smiles=mol.smiles, num_conformers=int(np.ceil(factor * k)), seed=0, relax="mmff"))
            t2 = time.process_time()
            rec = {"mol_id": mol.mol_id, "K": k, "cpu_base": t1 - t0, "cpu_big": t2 - t1}
            rec["base"] = coverage(rmsd_matrix(sym, _conformer_positions(ref, base), ref.positions))
            pos = _conformer_positions(ref, big)
            to_refs = rmsd_matrix(sym, pos, ref.positions)
            self_rmsd = rmsd_matrix(sym, pos, pos)
            rec["all"] = coverage(to_refs)
            energy = np.array([np.inf if c.energy is None else c.energy for c in big.conformers])
            rec["first_k"] = coverage(to_refs[:k])
            for limit in (0.1, 0.25, 0.5, 0.75):
                chosen, distinct = greedy(self_rmsd, list(np.argsort(energy)), k, limit)
                rec[f"energy_{limit}"], rec[f"n_distinct_{limit}"] = coverage(to_refs[chosen]), distinct
                chosen, distinct = greedy(self_rmsd, list(range(len(pos))), k, limit)
                rec[f"order_{limit}"] = coverage(to_refs[chosen])
            out.write(json.dumps(rec) + "\n"); out.flush()

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
