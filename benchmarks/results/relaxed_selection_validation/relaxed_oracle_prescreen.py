"""Oracle 2: relaxed selection with a cheap MMFF prescreen of F x K draws."""
import json, sys, time
import numpy as np, torch
from adjoint_sampling.benchmarks.conformers.metrics import coverage_metrics
from adjoint_sampling.benchmarks.conformers.references import load_reference_ensemble, read_test_list
from adjoint_sampling.benchmarks.conformers.runner import _conformer_positions
from adjoint_sampling.chemistry.rmsd import heavy_atom_symmetry, rmsd_matrix
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy.relax import relax
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.selection import select_low_energy_distinct
from adjoint_sampling.generation.types import GenerationRequest

def coverage(d):
    m = coverage_metrics(d)
    return [m.recall_at(t) for t in (0.5, 0.75, 1.0)] + [m.precision_at(t) for t in (0.5, 0.75, 1.0)]

def main(model, shard_text, factor, out_path, prescreens):
    torch.set_num_threads(1)
    shard, n = map(int, shard_text.split("/"))
    sampler = Sampler.from_checkpoint(model, None, reuse_samples=False)
    mols = read_test_list("data/validation_ensembles/validation.txt")
    with open(out_path, "a") as out:
        for j, mol in enumerate(mols):
            if j % n != shard: continue
            ref = load_reference_ensemble(mol, "data/validation_ensembles", 512)
            sym = heavy_atom_symmetry(ref.mol)
            k = 2 * ref.num_references
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
