"""The cost of "n in, n out": CPU time per returned conformer when failed draws are replaced.

For every molecule of a SMILES list (default: the SPICE test list, SMILES only, no reference
conformers) the same generator is asked for ``n`` conformers with ``max_draw_multiple`` 1 (draw once,
return what passes) and 4 (replace failed draws), same seed. Prints and writes (``--output``)
conformers returned, draws and CPU seconds (``time.process_time`` of this process) per returned
conformer, and the molecules that still came back short.

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.n_in_n_out --output benchmarks/results/n_in_n_out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from adjoint_sampling.core.errors import InvalidMoleculeError
from adjoint_sampling.core.paths import SHARED_DATA_DIR
from adjoint_sampling.generation.loading import load_generator
from adjoint_sampling.generation.types import RELAX_METHODS, GenerationRequest
from adjoint_sampling.problems.molecular.dataset import read_smiles_file

log = logging.getLogger(__name__)

MULTIPLES = (1, 4)


def measure(model: str | None, smiles: list[str], n: int, seed: int, relax: str) -> dict[str, object]:
    """Per-multiple totals and per-molecule rows (see the module docstring)."""
    generator = load_generator(model)
    generator.generate(GenerationRequest("CCO", num_conformers=2))  # warm-up: lazy imports, first-call costs
    rows: list[dict[str, object]] = []
    for smi in smiles:
        row: dict[str, object] = {"smiles": smi}
        for multiple in MULTIPLES:
            request = GenerationRequest(smi, num_conformers=n, seed=seed, relax=relax, max_draw_multiple=multiple)
            cpu = time.process_time()
            try:
                cs = generator.generate(request)
            except InvalidMoleculeError as exc:
                row[f"x{multiple}"] = {"error": exc.reason}
                continue
            row[f"x{multiple}"] = {
                "returned": len(cs.conformers), "drawn": cs.num_generated, "cpu_s": time.process_time() - cpu,
            }
        rows.append(row)
    totals = {}
    for multiple in MULTIPLES:
        ok = [r[f"x{multiple}"] for r in rows if "returned" in r[f"x{multiple}"]]
        returned = sum(o["returned"] for o in ok)
        totals[f"x{multiple}"] = {
            "molecules": len(ok),
            "requested": n * len(ok),
            "returned": returned,
            "drawn": sum(o["drawn"] for o in ok),
            "short_molecules": sum(o["returned"] < n for o in ok),
            "cpu_s": sum(o["cpu_s"] for o in ok),
            "cpu_s_per_returned": sum(o["cpu_s"] for o in ok) / max(returned, 1),
        }
    return {"model": generator.name, "version": generator.version, "n": n, "seed": seed, "relax": relax,
            "totals": totals, "molecules": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smiles-file", type=Path, default=SHARED_DATA_DIR / "spice_test.txt")
    parser.add_argument("--model", default=None, help="checkpoint path or 'etkdg' (default: the shipped model)")
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--relax", default="none", choices=RELAX_METHODS)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.model, read_smiles_file(args.smiles_file), args.n, args.seed, args.relax)
    for key, t in result["totals"].items():
        print(f"max_draw_multiple {key[1:]}: {t['returned']}/{t['requested']} conformers returned over {t['molecules']} "
              f"molecules ({t['short_molecules']} short), {t['drawn']} drawn, "
              f"{t['cpu_s_per_returned'] * 1000:.1f} CPU ms per returned conformer")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
