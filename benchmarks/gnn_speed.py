"""Speed of the GNN potential against tblite GFN2-xTB: energy + forces per conformer, one thread.

For each molecule: 64 ETKDG conformers, the `gnn` backend for each ``--checkpoint`` (trained models
of any architecture; without any, three NequIP sizes with random weights: speed does not depend on
them) timed over ``--repeats`` batched calls, and tblite on ``--xtb-conformers`` of the same
conformers, in the same process. Prints a table and writes ``--output`` (JSON).

    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.gnn_speed --output benchmarks/results/gnn_speed.json
    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.gnn_speed --checkpoint a/gnn.pt --checkpoint b/gnn.pt
    OMP_NUM_THREADS=1 python -m adjoint_sampling.benchmarks.gnn_speed --checkpoint models/shipped/energy.pt --compiled
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy.gnn import GNNCheckpoint, GNNEnergy, load_gnn_checkpoint
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential
from adjoint_sampling.energy.registry import build_energy

MOLECULES = (
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol, 20 atoms with hydrogens
    "CC(C)Cc1ccc(cc1)C(C)C(=O)NCc1ccc(N)cc1",  # 49 atoms
    "CC(C)Cc1ccc(cc1)C(C)C(=O)NCCCCCCNC(=O)C(C)c1ccc(CC(C)C)cc1CCOC",  # 94 atoms
)
SIZES = {
    "tiny: 16x0e+8x1o, 2 layers, lmax 1": GNNHParams(num_scalars=16, num_vectors=8, num_layers=2, lmax=1),
    "small: 32x0e+16x1o, 2 layers, lmax 1": GNNHParams(num_scalars=32, num_vectors=16, num_layers=2, lmax=1),
    "medium: 64x0e+16x1o, 3 layers, lmax 2": GNNHParams(num_scalars=64, num_vectors=16, num_layers=3, lmax=2),
}


def _ms_per_conformer(fn, positions: torch.Tensor, repeats: int) -> float:
    fn(positions[:2])  # warm-up (and, for a compiled model, its compilation)
    fn(positions)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(positions)
    return (time.perf_counter() - start) / repeats / len(positions) * 1e3


def _candidates(checkpoints: list[Path] | None) -> dict[str, GNNCheckpoint]:
    """Name -> checkpoint of each model to time (random-weight ``SIZES`` without ``checkpoints``)."""
    if checkpoints:
        return {f"{path.parent.name or path.stem}: {load_gnn_checkpoint(path).hparams.architecture}":
                load_gnn_checkpoint(path) for path in checkpoints}
    out = {}
    for name, hparams in SIZES.items():
        model = GNNPotential(hparams).eval()
        out[name] = GNNCheckpoint(hparams, model.state_dict(), hparams.elements, (hparams.min_charge, hparams.max_charge))
    return out


def measure(
    batch: int = 64, repeats: int = 3, xtb_conformers: int = 4, checkpoints: list[Path] | None = None,
    compiled: bool = False,
) -> list[dict[str, object]]:
    """One row per molecule: atoms, ms per conformer for each GNN and for tblite. With ``compiled``
    each GNN is timed twice, eager and with its e3nn code compiled (``NAME, compiled``; the
    compilation itself is left out of the time, as the warm-up call takes it)."""
    torch.set_num_threads(1)
    candidates = _candidates(checkpoints)
    backends = {}
    for name, checkpoint in candidates.items():
        backends[name] = GNNEnergy(checkpoint=checkpoint, compiled=False)
        if compiled:
            backends[f"{name}, compiled"] = GNNEnergy(checkpoint=checkpoint, compiled=True)
    rows = []
    for smiles in MOLECULES:
        parsed = parse_smiles(smiles)
        system = atomic_system(parsed)
        label = f"{system.num_atoms} atoms"
        conformers = rdkit_conformers(parsed.mol, batch, seed=0)
        positions = conformers[torch.arange(batch) % conformers.shape[0]]
        row: dict[str, object] = {"molecule": label, "smiles": smiles, "atoms": system.num_atoms, "batch": batch}
        for name, backend in backends.items():
            backend.max_train_atoms = None  # timing only: no size warning
            row[name] = _ms_per_conformer(lambda p: backend.energy_and_forces(system, p), positions, repeats)
            row[f"{name} parameters"] = sum(p.numel() for p in backend.model.network.parameters())
        xtb = build_energy("xtb", num_workers=1)
        row["tblite GFN2-xTB"] = _ms_per_conformer(
            lambda p: xtb.energy_and_forces(system, p), positions[:xtb_conformers], 1
        )
        rows.append(row)
    return rows


def _short(name: str) -> str:
    """``"nequip_xs: nequip, compiled"`` -> ``"nequip_xs, compiled"`` (the label printed per model)."""
    head, _, rest = name.partition(":")
    return head + (", compiled" if rest.endswith(", compiled") else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--xtb-conformers", type=int, default=4)
    parser.add_argument("--checkpoint", type=Path, action="append", default=None,
                        help="trained GNN checkpoint to time (repeatable; default: random-weight NequIP sizes)")
    parser.add_argument("--compiled", action="store_true",
                        help="also time each model with its e3nn code compiled (energy.gnn_compile)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = measure(args.batch, args.repeats, args.xtb_conformers, args.checkpoint, args.compiled)
    names = [k for k in rows[0] if k.endswith(" parameters")]
    for row in rows:
        xtb = row["tblite GFN2-xTB"]
        gnn = ", ".join(
            f"{_short(name[:-11])} {row[name[:-11]]:.2f} ms ({xtb / row[name[:-11]]:.0f}x)" for name in names
        )
        print(f"{row['molecule']} ({row['atoms']}): tblite {xtb:.1f} ms; gnn {gnn}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
