"""The LJ-55 metrics' noise floor: W2 and energy W2 between two independent reference runs (1,000
samples each), and between the two halves of the committed one (500 each).

What two exact sample sets of this size score is the floor under any sampler's W2; the papers' LJ-55
figures (W2 4.04 / energy W2 30.83) are to be read against it.

Usage: OMP_NUM_THREADS=1 python noise_floor.py benchmarks/synthetic/references/lj55.pt runs/lj55_ref_seed1.pt OUT.json
"""

import json
import sys
import time

import torch

from adjoint_sampling.benchmarks.synthetic.metrics import aligned_sq_distances, energy_w2, wasserstein2_from_cost

torch.set_num_threads(1)


def _load(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.load(path, map_location="cpu", weights_only=False)
    return data["samples"].double(), data["energies"].double()


def _pair(xa: torch.Tensor, ea: torch.Tensor, xb: torch.Tensor, eb: torch.Tensor) -> dict[str, float]:
    start = time.perf_counter()
    w2 = wasserstein2_from_cost(aligned_sq_distances(xa, xb))
    return {"w2": w2, "energy_w2": energy_w2(ea, eb), "mean_energy_a": float(ea.mean()),
            "mean_energy_b": float(eb.mean()), "samples_each": int(xa.shape[0]),
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    first, second, out = sys.argv[1], sys.argv[2], sys.argv[3]
    xa, ea = _load(first)
    xb, eb = _load(second)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(xa.shape[0], generator=generator)
    half = xa.shape[0] // 2
    lo, hi = order[:half], order[half: 2 * half]
    result = {"references": [first, second],
              "halves_of_first": _pair(xa[lo], ea[lo], xa[hi], ea[hi]),
              "first_vs_second": _pair(xa, ea, xb, eb)}
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
