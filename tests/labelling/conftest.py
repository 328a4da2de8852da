"""Shared fixtures of the labelling tests."""

from __future__ import annotations

import pytest
import torch

from adjoint_sampling.chemistry.embedding import rdkit_conformers
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.labelling.extxyz import LabelledFrame, write_frames_gz


@pytest.fixture(scope="session")
def data_file(tmp_path_factory):
    """12 xTB-labelled, slightly displaced ETKDG conformers of ethanol (8 train, 4 validation)."""
    parsed = parse_smiles("CCO")
    system = atomic_system(parsed)
    pos = rdkit_conformers(parsed.mol, 12, seed=0)
    pos = pos + 0.05 * torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pos = pos.round(decimals=6)
    result = build_energy("xtb", num_workers=1).energy_and_forces(system, pos)
    assert result.ok.all()
    frames = [
        LabelledFrame(atomic_numbers=system.atomic_numbers.numpy(), positions=pos[k].numpy(),
                      energy_kcal_mol=float(result.energy[k]), forces_kcal_mol_a=result.forces[k].numpy(),
                      smiles="CCO", charge=0, multiplicity=1, source="etkdg",
                      split="train" if k < 8 else "validation", mol_id="mol-ethanol", conf_id=k)
        for k in range(pos.shape[0])
    ]
    path = tmp_path_factory.mktemp("labelled") / "chunk-000000.extxyz.gz"
    path.write_bytes(write_frames_gz(frames))
    return path


