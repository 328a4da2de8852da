"""Summary of relaxed_oracle.py records: mean COV-R / COV-P at 0.5 / 0.75 / 1.0 A per variant, CPU of base and F x K."""
import json, sys, numpy as np
recs = [json.loads(l) for l in open(sys.argv[1])]
print(len(recs), "molecules; cpu base", sum(r["cpu_base"] for r in recs), "big", sum(r["cpu_big"] for r in recs), "K total", sum(r["K"] for r in recs))
keys = [k for k in recs[0] if isinstance(recs[0][k], list)]
print(f"{'variant':14s} COV-R 0.5/0.75/1.0   COV-P 0.5/0.75/1.0")
for k in keys:
    m = np.mean([r[k] for r in recs], axis=0) * 100
    print(f"{k:14s} " + " ".join(f"{x:5.1f}" for x in m))
