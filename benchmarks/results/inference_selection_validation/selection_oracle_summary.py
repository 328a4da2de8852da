"""Means over molecules of selection_oracle.py's records: python selection_oracle_summary.py 'GLOB'."""
import json
import glob
import numpy as np
r = [json.loads(line) for f in sorted(glob.glob(__import__("sys").argv[1])) for line in open(f)]
print(len(r), "molecules; self-RMSD s total", round(sum(x["self_rmsd_s"] for x in r), 1))
keys = [k for k in r[0] if isinstance(r[0][k], list) and len(r[0][k]) == 6]
print("%-22s  COV-R .5/.75/1.0   COV-P .5/.75/1.0" % "")
for k in keys:
    m = 100 * np.mean([x[k] for x in r], axis=0)
    print("%-22s " % k + " ".join("%5.1f" % v for v in m))
for key in (k for k in r[0] if k.startswith("n_distinct_")):
    print("distinct share", key[len("n_distinct_"):], round(np.mean([x[key] / x["K"] for x in r]), 3))
print("nn rmsd median of medians", np.median([x["nn_rmsd_quartiles"][1] for x in r]))
