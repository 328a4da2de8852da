"""One-off record (seventeenth session): the MMFF94 energy decrease per torsional-polish step over 40
steps, for 32 raw draws (no polish) of the sixteenth session's default on every 6th validation molecule.
The energy after k steps comes from ``torsional_descent`` run for k steps (deterministic), so the
decrease in step k is the difference of two such runs.

    git show c7ca43e:models/shipped/default.pt > runs/variants/s16_committed.pt
    OMP_NUM_THREADS=1 python benchmarks/results/inference_polish_validation/polish_convergence.py \
        > benchmarks/results/inference_polish_validation/polish_convergence.txt
"""
import numpy as np
import torch

from adjoint_sampling.energy.mmff import MMFFEnergy
from adjoint_sampling.energy.torsional_descent import torsional_descent
from adjoint_sampling.generation.sampler import Sampler
from adjoint_sampling.generation.types import GenerationRequest

STEPS = 40
torch.set_num_threads(1)
sampler = Sampler.from_checkpoint("runs/variants/s16_committed.pt")
lines = open("data/validation_ensembles/validation.txt").read().splitlines()[1:]
mmff = MMFFEnergy()
decreases = []
for line in lines[::6]:
    record = sampler.prepare(GenerationRequest(line.split("\t")[1], num_conformers=32, seed=0))
    pos = torch.from_numpy(sampler.sample_positions(record, 32, 0))
    energies = [torsional_descent(mmff, record.system, pos, record.topology, k, 0.01).energy.numpy()
                for k in range(STEPS + 1)]
    decreases.append(-np.diff(np.stack(energies), axis=0))  # (STEPS, 32)
de = np.concatenate(decreases, axis=1)
for k in (0, 4, 9, 14, 19, 24, 29, 39):
    print(k + 1, f"mean dE {de[k].mean():.3f}", f"share < 0.01: {(de[k] < 0.01).mean():.2f}",
          f"share < 0.05: {(de[k] < 0.05).mean():.2f}",
          f"remaining gain after this step {de[k + 1:].sum(0).mean():.2f}")
