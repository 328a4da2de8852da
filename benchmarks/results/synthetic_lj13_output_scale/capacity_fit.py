"""Capacity check: fit LJ-13 EGNN variants by the RAM loss on fixed independent PT-MALA samples (seed 7),
report the held-out residual per particle at fixed t (the share of the target the network explains).

python benchmarks/results/synthetic_lj13_output_scale/capacity_fit.py '{"output_scale": 10.0}' 3000 OUT.jsonl
(needs runs/lj13_indep_seed7.pt; see benchmarks/RESULTS.md, "LJ-13: the control's output bound")
"""
import json
import sys
import time

import torch

from adjoint_sampling.benchmarks.synthetic.oracle_fit import FitSettings, fit_on_samples
from adjoint_sampling.method.adjoint import terminal_adjoint
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.synthetic import SyntheticProblem

torch.set_num_threads(1)
variant, steps, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# hparams: the variant's base (the bounded LJ-13 controller), updated by the variant
tmpl = load_model_checkpoint("benchmarks/synthetic/models/archive/lj13_bound30_seed0.pt")
s = torch.load("runs/lj13_indep_seed7.pt", weights_only=False)["samples"].double()
train, held = s[:800], s[800:]
t0 = time.time()
fitted, losses = fit_on_samples(tmpl, train, FitSettings(steps=steps, batch_size=64, adjoint_clip=100.0), variant)
fit_s = time.time() - t0
prob = SyntheticProblem.from_description(tmpl.problem)
ctrl = build_controller(fitted.controller_name, fitted.controller_hparams)
ctrl.load_state_dict(fitted.state_dict)
sched = tmpl.build_schedule()
k, n, d = held.shape
batch = prob.make_batch([0] * k)
ev = prob.evaluate(batch, held.reshape(k * n, d))
a = terminal_adjoint(ev.energy_grad, held.reshape(k * n, d), batch.space, sched, prob.tau, 100.0)
gen = torch.Generator().manual_seed(0)
res = {"variant": variant, "steps": steps, "fit_s": round(fit_s, 1),
       "target_sq": round(float(a.pow(2).sum(-1).mean()), 1)}
for t in (0.3, 0.7, 0.9, 0.99):
    xt = batch.space.sample_bridge(held.reshape(k * n, d).float(), torch.full((k,), t), sched, gen)
    with torch.no_grad():
        f = ctrl(torch.full((k,), t), xt, batch)
    res[f"resid_sq_t{t}"] = round(float((f.double() + a).pow(2).sum(-1).mean()), 1)
res["final_losses"] = [round(x, 1) for x in losses[-5:]]
print(json.dumps(res))
with open(out, "a") as fh:
    fh.write(json.dumps(res) + "\n")
