"""LJ-55 from the jittered grid start: T = 1 mean energy against gradients spent, MALA vs HMC.

100 chains, one temperature, step sizes adapted throughout; both runs get 3,000 gradients per chain
(MALA: 3,000 steps; HMC: 300 steps of 10 leapfrog steps). Prints the mean energy after every tenth
of the run.

Usage: OMP_NUM_THREADS=1 python kernel_comparison.py mala 1 3000
       OMP_NUM_THREADS=1 python kernel_comparison.py hmc 10 300
"""

import sys
import time

import torch

from adjoint_sampling.benchmarks.synthetic.mcmc import MCMCSettings, run_reference_mcmc
from adjoint_sampling.energy.synthetic import build_synthetic_energy

torch.set_num_threads(1)
kernel, leapfrog, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = MCMCSettings(num_chains=100, num_steps=steps, burn_in=steps, num_temperatures=1, max_temperature=1.0,
                        init="grid", init_scale=1.1, kernel=kernel, leapfrog_steps=leapfrog,
                        initial_step_size=0.01 if kernel == "mala" else 0.003)
start = time.perf_counter()
result = run_reference_mcmc(build_synthetic_energy("lj55"), settings)
print(kernel, leapfrog, f"{time.perf_counter() - start:.0f} s", "step sizes", result.step_sizes,
      "mean energy per tenth", [round(row[1], 1) for row in result.trace[9::10]])
