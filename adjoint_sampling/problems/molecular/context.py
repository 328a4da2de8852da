"""What a molecular controller sees of a batch: the disjoint union of B molecular graphs.

A batch holds B systems (one conformer sample each). Systems of the same molecule that follow
each other form a :class:`SystemGroup`; atoms (and, in torsional mode, torsions) of the batch are
stored system after system, so every group covers contiguous rows. Positions are in angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from adjoint_sampling.chemistry.torsions import TorsionTopology, set_torsions


@dataclass(frozen=True)
class SystemGroup:
    """Consecutive systems of one molecule.

    Attributes:
        key: index of the molecule in its dataset.
        system_start / num_systems: systems ``system_start .. system_start + num_systems - 1``.
        atom_start / num_atoms: first atom row of the group and atoms per system.
        torsion_start / num_torsions: first torsion row of the group and torsions per system
            (torsional mode; zero torsions in Cartesian mode).
    """

    key: int
    system_start: int
    num_systems: int
    atom_start: int
    num_atoms: int
    torsion_start: int = 0
    num_torsions: int = 0

    @property
    def atom_rows(self) -> slice:
        return slice(self.atom_start, self.atom_start + self.num_systems * self.num_atoms)

    @property
    def torsion_rows(self) -> slice:
        return slice(self.torsion_start, self.torsion_start + self.num_systems * self.num_torsions)


@dataclass(frozen=True)
class MolecularGraphBatch:
    """B molecular graphs as one disjoint graph (``A`` atoms, ``E`` directed bond edges).

    Attributes:
        atom_features: ``(A, F)`` float node features.
        atomic_numbers: ``(A,)`` long.
        atom_system: ``(A,)`` long, the system (0..B-1) of every atom.
        bond_index: ``(2, E)`` long, global atom indices, both directions of every bond.
        bond_features: ``(E, Fb)`` float.
        groups: the runs of consecutive systems of one molecule.
    """

    atom_features: Tensor
    atomic_numbers: Tensor
    atom_system: Tensor
    bond_index: Tensor
    bond_features: Tensor
    groups: tuple[SystemGroup, ...]

    @property
    def num_systems(self) -> int:
        return sum(g.num_systems for g in self.groups)

    @property
    def num_atoms(self) -> int:
        return int(self.atom_system.shape[0])


@dataclass(frozen=True)
class CartesianContext:
    """Context of a Cartesian batch: the state rows are the atoms, ``x`` is ``(A, 3)`` angstrom.

    Attributes:
        graph: the molecular graphs.
        pair_index: ``(2, P)`` long, all directed atom pairs within each system.
        pair_features: ``(P, Fb + HOP_CLASSES)`` float: bond features (zero for non-bonded pairs)
            and the one-hot graph distance (1, 2, 3, >= 4 bonds).
    """

    graph: MolecularGraphBatch
    pair_index: Tensor
    pair_features: Tensor

    def positions(self, x: Tensor) -> Tensor:
        """Atom positions ``(A, 3)`` for the state ``x`` ``(A, 3)`` (the identity)."""
        return x


@dataclass(frozen=True)
class TorsionBlock:
    """All systems of one molecule in a torsional batch (wherever they sit in the batch).

    Attributes:
        key: index of the molecule in its dataset.
        local_positions: ``(N, 3)`` angstrom, the local structure.
        topology: its rotatable bonds (m torsions).
        systems: ``(n,)`` long, the systems of this molecule.
        torsion_rows: ``(n * m,)`` long, their torsion rows, system after system.
        atom_rows: ``(n * N,)`` long, their atom rows, system after system.
    """

    key: int
    local_positions: Tensor
    topology: TorsionTopology
    systems: Tensor
    torsion_rows: Tensor
    atom_rows: Tensor

    @property
    def num_systems(self) -> int:
        return int(self.systems.shape[0])


@dataclass(frozen=True)
class TorsionalContext:
    """Context of a torsional batch: the state rows are the torsions, ``x`` is ``(M, 1)`` radians.

    Attributes:
        graph: the molecular graphs.
        torsion_bonds: ``(M, 2)`` long, global atom indices (b, c) of the rotatable bond of each
            torsion row.
        torsion_system: ``(M,)`` long, the system of every torsion row.
        blocks: one :class:`TorsionBlock` per distinct molecule of the batch.
    """

    graph: MolecularGraphBatch
    torsion_bonds: Tensor
    torsion_system: Tensor
    blocks: tuple[TorsionBlock, ...]

    def block_positions(self, block: TorsionBlock, x: Tensor) -> Tensor:
        """Positions ``(n, N, 3)`` of the systems of ``block`` with torsions from ``x`` ``(M, 1)``."""
        local = block.local_positions.to(x.dtype)
        m = block.topology.num_torsions
        if m == 0:
            return local.expand(block.num_systems, -1, -1)
        angles = x[block.torsion_rows].reshape(block.num_systems, m)
        return set_torsions(local, block.topology, angles)

    def positions(self, x: Tensor) -> Tensor:
        """Atom positions ``(A, 3)`` angstrom with the torsions set to ``x`` ``(M, 1)`` radians."""
        out = x.new_empty((self.graph.num_atoms, 3))
        for block in self.blocks:
            out[block.atom_rows] = self.block_positions(block, x).reshape(-1, 3)
        return out
