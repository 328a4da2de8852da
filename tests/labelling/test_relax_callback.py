"""``relax_with_model(on_evaluation=...)`` reports every point the optimiser evaluates."""

from __future__ import annotations

import numpy as np
import torch

from adjoint_sampling.chemistry.embedding import embed_etkdg
from adjoint_sampling.chemistry.graph import atomic_system
from adjoint_sampling.chemistry.parsing import parse_smiles
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.energy.relax import relax_with_model


def test_callback_sees_every_evaluation_and_changes_nothing():
    parsed = parse_smiles("CCCO")
    system = atomic_system(parsed)
    start = torch.from_numpy(embed_etkdg(parsed.mol, 2, seed=1))
    model = build_energy("mmff")
    seen = []
    with_cb = relax_with_model(model, system, start, max_steps=15,
                               on_evaluation=lambda idx, pos, res: seen.append((idx, pos.clone(), res)))
    plain = relax_with_model(model, system, start, max_steps=15)
    torch.testing.assert_close(with_cb.positions, plain.positions)
    assert seen and all(len(idx) == len(pos) == len(res.energy) for idx, pos, res in seen)
    torch.testing.assert_close(seen[0][1], start)
    for b in range(2):
        visited = [pos[list(idx).index(b)] for idx, pos, _ in seen if b in idx]
        assert any(np.allclose(v.numpy(), with_cb.positions[b].numpy()) for v in visited)
        energies = [float(res.energy[list(idx).index(b)]) for idx, _, res in seen if b in idx]
        assert min(energies) == float(with_cb.energy[b])
