"""CPU per conformer of relaxed requests at test-set-like sizes (K = 300), 8 validation molecules, no references.

    OMP_NUM_THREADS=1 python benchmarks/results/relaxed_selection_validation/cost_probe.py 300 models/shipped/default.pt runs/sel3.pt runs/rsr15s2.pt
    (and runs/rsr2.pt runs/sel3np.pt runs/rsr2np.pt in a second process; output: cost_probe_k300.txt)
"""
import sys, time, torch
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.etkdg import EtkdgGenerator
from adjoint_sampling.generation.types import GenerationRequest
from adjoint_sampling.benchmarks.conformers.references import read_test_list
torch.set_num_threads(1)
k = int(sys.argv[1]); paths = sys.argv[2:]
mols = read_test_list("data/validation_ensembles/validation.txt")[::6]
gens = {"etkdg": EtkdgGenerator(num_threads=1)}
for p in paths:
    gens[p] = Sampler.from_checkpoint(p, None)
for name, g in gens.items():
    for relax in ("none", "mmff"):
        cpu = 0.0; n = 0
        for m in mols:
            t = time.process_time()
            r = g.generate(GenerationRequest(smiles=m.smiles, num_conformers=k, seed=0, relax=relax, max_draw_multiple=1))
            cpu += time.process_time() - t; n += k
        print(f"{name:30s} {relax:5s} {cpu/n*1000:.2f} ms/conf", flush=True)
