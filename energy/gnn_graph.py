"""Conformers of one or more molecules as one flat graph, the input of every GNN potential network.

Atoms of all conformers are concatenated: positions ``(A, 3)`` angstrom, embedding rows ``(A,)``,
the conformer each atom belongs to ``(A,)`` and each conformer's total charge ``(C,)``. Edges are
all ordered pairs of atoms of the same conformer closer than the cutoff, found with plain torch
(``cdist`` per molecule; no radius-graph library). The edge selection is not differentiated: the
networks' smooth cutoff envelopes make energies continuous where pairs enter or leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ConformerGraph", "conformer_graph", "concat_graphs"]


@dataclass
class ConformerGraph:
    """A batch of conformers as one graph.

    Attributes:
        positions: ``(A, 3)`` angstrom (keeps the autograd link to the caller's positions).
        species: ``(A,)`` long, embedding row of each atom's element.
        conformer: ``(A,)`` long, index of the conformer of each atom, in ``0..C-1``, non-decreasing.
        charge: ``(C,)`` long, total charge of each conformer.
        src / dst: ``(E,)`` long, edge ``src -> dst`` (messages flow to ``dst``).
        molecule: ``(C,)`` long, index of the molecule of each conformer (groups for centring energies).
    """

    positions: Tensor
    species: Tensor
    conformer: Tensor
    charge: Tensor
    src: Tensor
    dst: Tensor
    molecule: Tensor

    @property
    def num_conformers(self) -> int:
        return int(self.charge.numel())

    @property
    def num_atoms(self) -> int:
        return int(self.species.numel())

    def edge_vectors(self) -> Tensor:
        """``(E, 3)`` angstrom, ``positions[dst] - positions[src]``."""
        return self.positions[self.dst] - self.positions[self.src]


def conformer_graph(positions: Tensor, species: Tensor, charge: int, cutoff: float, molecule: int = 0) -> ConformerGraph:
    """The graph of ``B`` conformers ``(B, N, 3)`` angstrom of one molecule with embedding rows ``(N,)``."""
    batch, n, _ = positions.shape
    device = positions.device
    with torch.no_grad():
        mask = torch.cdist(positions, positions) < cutoff
        mask &= ~torch.eye(n, dtype=torch.bool, device=device)
        b, i, j = mask.nonzero(as_tuple=True)
    return ConformerGraph(
        positions=positions.reshape(batch * n, 3),
        species=species.to(device).repeat(batch),
        conformer=torch.arange(batch, device=device).repeat_interleave(n),
        charge=torch.full((batch,), int(charge), dtype=torch.long, device=device),
        src=b * n + j,
        dst=b * n + i,
        molecule=torch.full((batch,), int(molecule), dtype=torch.long, device=device),
    )


def concat_graphs(graphs: Sequence[ConformerGraph]) -> ConformerGraph:
    """One graph of several (atom, conformer and molecule indices offset; edges never cross graphs)."""
    atom_offset = conf_offset = 0
    src, dst, conformer = [], [], []
    for g in graphs:
        src.append(g.src + atom_offset)
        dst.append(g.dst + atom_offset)
        conformer.append(g.conformer + conf_offset)
        atom_offset += g.num_atoms
        conf_offset += g.num_conformers
    return ConformerGraph(
        positions=torch.cat([g.positions for g in graphs]),
        species=torch.cat([g.species for g in graphs]),
        conformer=torch.cat(conformer),
        charge=torch.cat([g.charge for g in graphs]),
        src=torch.cat(src),
        dst=torch.cat(dst),
        molecule=torch.cat([g.molecule for g in graphs]),
    )
