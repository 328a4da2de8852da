"""Tiny molecular training jobs shared by the sampler, CLI and training tests (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_SMILES = ["CCCCO", "N[C@@H](Cc1ccccc1)C(=O)O"]


def random_torsion_conformers(smiles: str, num: int, seed: int = 0):
    """``(parsed molecule, torsion topology, positions (num, N, 3) float64 A)``: the molecule's local
    structure (RDKit, seed 0) with uniformly random torsions."""
    import math

    import torch

    from adjoint_sampling.chemistry.embedding import local_structure
    from adjoint_sampling.chemistry.parsing import parse_smiles
    from adjoint_sampling.chemistry.torsions import find_torsions, set_torsions

    parsed = parse_smiles(smiles)
    topology = find_torsions(parsed.mol)
    local = local_structure(parsed, seed=0).to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand((num, topology.num_torsions), generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    return parsed, topology, set_torsions(local, topology, angles)


def tiny_job(mode: str = "torsional", iterations: int = 2, run_dir: Path | None = None) -> dict[str, Any]:
    """A job config dict (as read from YAML) training on two small molecules for a few seconds."""
    controller = (
        {"name": "torsional", "hparams": {"scalars": 8, "vectors": 2, "num_layers": 2}}
        if mode == "torsional"
        else {"name": "molecular_egnn", "hparams": {"hidden": 16, "num_layers": 2}}
    )
    return {
        "problem": {"kind": "molecules", "mode": mode, "smiles": list(TINY_SMILES), "samples_per_molecule": 4,
                    "temperature_k": 300.0, "warm_start_pool": 2},
        "controller": controller,
        "schedule": {"kind": "geometric", "sigma_min": 0.02, "sigma_max": 3.0 if mode == "torsional" else 1.0},
        "trainer": {"iterations": iterations, "samples_per_refresh": 8, "grad_steps_per_refresh": 3, "batch_size": 8,
                    "buffer_capacity": 64, "initial_buffer_fill": 8, "sample_batch_size": 16, "sde_steps": 10,
                    "adjoint_clip": 100.0, "warm_start_steps": 2, "checkpoint_interval": 1, "seed": 0},
        "run_dir": None if run_dir is None else str(run_dir),
        "num_threads": 1,
    }


def write_tiny_gnn_checkpoint(path: Path, elements: tuple[int, ...] = (1, 6, 7, 8), max_atoms: int = 10) -> Path:
    """A GNN energy checkpoint with small random weights (a nearly flat potential, so a few relaxation
    steps keep every bond) for ``elements`` only, whose training data had at most ``max_atoms`` atoms."""
    import torch

    from adjoint_sampling.energy.gnn import save_gnn_checkpoint
    from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential

    torch.manual_seed(0)
    model = GNNPotential(GNNHParams(elements=elements, num_scalars=8, num_vectors=4, num_layers=1, radial_hidden=8))
    model.energy_scale.fill_(1e-3)
    model.atom_reference.copy_(torch.linspace(-300.0, -10.0, len(elements), dtype=torch.float64))
    save_gnn_checkpoint(path, model, charge_range=(-1, 1), training_data={"max_atoms": max_atoms})
    return path
