"""Oracle 2 (twenty-first session): relaxed selection with a cheap MMFF94 prescreen of F x K draws: relax them by at
most S iterations, keep K by energy (0.25 A apart), relax those to the end (S = 0: every draw relaxed fully).

    OMP_NUM_THREADS=1 python benchmarks/results/relaxed_selection_validation/relaxed_oracle_prescreen.py \
        models/shipped/default.pt 0/2 2 OUT_0.jsonl 0,20,50     # and 1/2; stopped after 27 of 48 molecules:
                                                              # relaxed_oracle_prescreen_f2_partial.jsonl
"""
import json, sys, time
import numpy as np, torch
from adjoint_sampling.benchmarks.conformers.runner import _conformer_positions
from adjoint_sampling.chemistry.rmsd import rmsd_matrix
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy.relax import relax
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.selection import select_low_energy_distinct
from adjoint_sampling.generation.types import GenerationRequest
from relaxed_oracle import coverage, shard_molecules  # beside this script

def main(model, shard_text, factor, out_path, prescreens):
    torch.set_num_threads(1)
    sampler = Sampler.from_checkpoint(model, None, reuse_samples=False)
    with open(out_path, "a") as out:
        for mol, ref, sym, k in shard_molecules(shard_text):
            big_n = int(np.ceil(factor * k))
            rec = {"mol_id": mol.mol_id, "K": k}
            t = time.process_time()
            base = sampler.generate(GenerationRequest(smiles=mol.smiles, num_conformers=k, seed=0, relax="mmff"))
            rec["cpu_base"] = time.process_time() - t
            rec["base"] = coverage(rmsd_matrix(sym, _conformer_positions(ref, base), ref.positions))
            for steps in prescreens:
                t = time.process_time()
                req = GenerationRequest(smiles=mol.smiles, num_conformers=big_n, seed=0, relax="mmff",
                                        relax_steps=None if steps == 0 else steps)
                big = sampler.generate(req)
                pos = np.stack([c.positions for c in big.conformers])
                energy = np.array([np.nan if c.energy is None else c.energy for c in big.conformers])
                chosen = select_low_energy_distinct(big.mol, pos, energy, k, 0.25)
                pos = pos[chosen]
                if steps:
                    parsed = parse_smiles(mol.smiles)
                    system = atomic_system(parsed)
                    res = relax(system, torch.from_numpy(pos), "mmff")
                    pos = res.positions.numpy()
                rec[f"cpu_p{steps}"] = time.process_time() - t
                # positions are in the parsed molecule's atom order, as the conformer sets'
                from adjoint_sampling.generation.types import Conformer
                big.conformers = [Conformer(positions=p, energy=None, index=i) for i, p in enumerate(pos)]
                rec[f"p{steps}"] = coverage(rmsd_matrix(sym, _conformer_positions(ref, big), ref.positions))
            out.write(json.dumps(rec) + "\n"); out.flush()

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], [int(x) for x in sys.argv[5].split(",")])
