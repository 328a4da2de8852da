"""Wall time of single requests, one thread: the seventeenth session's default against the shipped one.

    python -m adjoint_sampling.benchmarks.sampling_variant models/archive/torsional_spice_gnn/model.pt \
        runs/seventeenth.pt --sde-steps 5 --output-energy mmff --clash-repair-steps 20 --polish-steps 20 --polish-step 0.01
    OMP_NUM_THREADS=1 python request_latency.py runs/seventeenth.pt models/shipped/default.pt
"""
import sys
import time

import torch

from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest

torch.set_num_threads(1)
for path in sys.argv[1:]:
    sampler = Sampler.from_checkpoint(path)
    sampler.generate(GenerationRequest(smiles="CCO", num_conformers=4, seed=0))  # warm-up
    for smiles in ("CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)NCCOCCOC"):
        for num in (10, 100):
            tic = time.perf_counter()
            sampler.generate(GenerationRequest(smiles=smiles, num_conformers=num, seed=0))
            print(f"{path}\t{smiles}\t{num}\t{time.perf_counter() - tic:.3f} s")
