"""Capacity check: fit EGNN variants by the RAM loss on fixed independent reference samples, report
the held-out residual per particle at fixed t (the share of the target the network explains).

python benchmarks/results/synthetic_lj13_output_scale/capacity_fit.py '{"output_scale": 10.0}' 3000 OUT.jsonl \
    [TEMPLATE.pt SAMPLES.pt BATCH [WINDOW_LO WINDOW_HI WINDOW_FRACTION]]
Defaults: the bounded LJ-13 controller and runs/lj13_indep_seed7.pt (independent PT-MALA samples, seed 7),
batch 64 (benchmarks/RESULTS.md, "LJ-13: the control's output bound"). The first 80 % of the samples
are fitted, the rest held out. LJ-55: a width-32 run's model.pt and
benchmarks/results/synthetic_lj55_reference/reference_seed1.pt (RESULTS, twenty-seventh session).
"""
import json
import os
import sys
import time

import torch

from adjoint_sampling.benchmarks.synthetic.oracle_fit import FitSettings, fit_on_samples
from adjoint_sampling.method.adjoint import terminal_adjoint
from adjoint_sampling.models.checkpoint import load_model_checkpoint
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.problems.synthetic import SyntheticProblem

torch.set_num_threads(int(os.environ.get("CAPACITY_FIT_THREADS", "1")))  # one thread unless told
variant, steps, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# hparams: the template's (by default the bounded LJ-13 controller), updated by the variant
template_path = sys.argv[4] if len(sys.argv) > 4 else "benchmarks/synthetic/models/archive/lj13_bound30_seed0.pt"
samples_path = sys.argv[5] if len(sys.argv) > 5 else "runs/lj13_indep_seed7.pt"
batch_size = int(sys.argv[6]) if len(sys.argv) > 6 else 64
tmpl = load_model_checkpoint(template_path)
s = torch.load(samples_path, weights_only=False)["samples"].double()
n_fit = int(0.8 * len(s))
train, held = s[:n_fit], s[n_fit:]
t0 = time.time()
window = (float(sys.argv[7]), float(sys.argv[8])) if len(sys.argv) > 9 else None
window_fraction = float(sys.argv[9]) if len(sys.argv) > 9 else 0.0
settings = FitSettings(steps=steps, batch_size=batch_size, adjoint_clip=100.0, loss_time_window=window,
                       loss_time_window_fraction=window_fraction)
fitted, losses = fit_on_samples(tmpl, train, settings, variant)
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
res = {"template": template_path, "variant": variant, "steps": steps, "batch_size": batch_size,
       "loss_time_window": window, "loss_time_window_fraction": window_fraction,
       "fit_s": round(fit_s, 1), "target_sq": round(float(a.pow(2).sum(-1).mean()), 1)}
for t in (0.3, 0.7, 0.9, 0.99):
    xt = batch.space.sample_bridge(held.reshape(k * n, d).float(), torch.full((k,), t), sched, gen)
    with torch.no_grad():
        f = ctrl(torch.full((k,), t), xt, batch)
    res[f"resid_sq_t{t}"] = round(float((f.double() + a).pow(2).sum(-1).mean()), 1)
res["final_losses"] = [round(x, 1) for x in losses[-5:]]
print(json.dumps(res))
with open(out, "a") as fh:
    fh.write(json.dumps(res) + "\n")
