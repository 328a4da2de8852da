"""Bond-structure penalty for Cartesian sampling (DESIGN.md section 2).

    E_pen(x) = alpha * [ sum_{bonded i<j} relu(d_ij - u_ij) + sum_{non-bonded i<j} relu(l_ij - d_ij) ]

with u_ij = ``bond_factor * (r_i + r_j)`` and l_ij = ``nonbond_factor * (r_i + r_j)`` from RDKit's
covalent radii r (angstrom); pairs two bonds apart (1-3) use the smaller ``one_three_factor``
(in four-membered rings they sit at about 1.2 (r_i + r_j)). ``alpha`` is in kcal/mol/angstrom,
so E_pen is in kcal/mol and the forces in kcal/mol/angstrom. The defaults follow the structure check's rule (bonded iff
d < 1.3 (r_i + r_j), :mod:`adjoint_sampling.molecules.checks`): non-bonded pairs are pushed
out to exactly that limit and bonds are held inside it with a margin (1.2), so a sample without
penalty has the input's connectivity, and relaxed molecules have zero penalty.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from adjoint_sampling.chemistry.checks import BOND_TOLERANCE, covalent_radii
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.energy.base import EnergyModel, EnergyResult

DEFAULT_ALPHA: float = 20.0
DEFAULT_BOND_FACTOR: float = 1.2
DEFAULT_NONBOND_FACTOR: float = BOND_TOLERANCE
DEFAULT_ONE_THREE_FACTOR: float = 1.0


def bonds_of(mol: object) -> torch.Tensor:
    """Bonds ``(E, 2)`` long (each bond once) of an RDKit molecule."""
    pairs = [[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()]
    return torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), 2)


def bond_structure_penalty(
    positions: torch.Tensor,
    bonded: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """Penalty ``(B,)`` kcal/mol of ``positions`` ``(B, N, 3)`` angstrom (differentiable).

    Args:
        bonded: ``(N, N)`` bool symmetric bond matrix.
        upper: ``(N, N)`` longest allowed bonded distance (angstrom).
        lower: ``(N, N)`` shortest allowed non-bonded distance (angstrom).
        alpha: weight in kcal/mol/angstrom.
    """
    n = positions.shape[-2]
    i, j = torch.triu_indices(n, n, offset=1, device=positions.device)
    dist = (positions[:, i] - positions[:, j]).norm(dim=-1)  # (B, P)
    is_bond = bonded[i, j]
    stretch = torch.relu(dist - upper[i, j].to(dist))
    overlap = torch.relu(lower[i, j].to(dist) - dist)
    return alpha * torch.where(is_bond, stretch, overlap).sum(dim=-1)


class BondStructurePenalty(EnergyModel):
    """The bond-structure penalty as an :class:`EnergyModel` (energy in kcal/mol).

    Args:
        bonds: ``(E, 2)`` bonds of one fixed molecule; ``None`` takes the bonds from each
            system's ``rdkit_mol`` (cached per ``system.key``), which suits many molecules.
        alpha: weight in kcal/mol/angstrom.
        bond_factor / nonbond_factor / one_three_factor: limits as multiples of the
            covalent-radius sum (bonded maximum, non-bonded minimum, 1-3 pair minimum).
    """

    name = "bond_penalty"

    def __init__(
        self,
        bonds: torch.Tensor | None = None,
        alpha: float = DEFAULT_ALPHA,
        bond_factor: float = DEFAULT_BOND_FACTOR,
        nonbond_factor: float = DEFAULT_NONBOND_FACTOR,
        one_three_factor: float = DEFAULT_ONE_THREE_FACTOR,
        cache_size: int = 512,
    ) -> None:
        if alpha < 0 or bond_factor <= 0 or nonbond_factor <= 0 or one_three_factor <= 0:
            raise ValueError("alpha must be >= 0 and the distance factors > 0")
        self.bonds = None if bonds is None else torch.as_tensor(bonds, dtype=torch.long).reshape(-1, 2)
        self.alpha = float(alpha)
        self.bond_factor = float(bond_factor)
        self.nonbond_factor = float(nonbond_factor)
        self.one_three_factor = float(one_three_factor)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def limits(self, system: AtomicSystem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(bonded, upper, lower)``, each ``(N, N)``, for ``system`` (see :func:`bond_structure_penalty`)."""
        with self._lock:
            cached = self._cache.get(system.key) if system.key else None
            if cached is not None:
                self._cache.move_to_end(system.key)
                return cached
        n = system.num_atoms
        if self.bonds is not None:
            bonds = self.bonds
        elif system.rdkit_mol is not None:
            bonds = bonds_of(system.rdkit_mol)
        else:
            raise ValueError("BondStructurePenalty needs bonds: pass them or give the system an rdkit_mol")
        if bonds.numel() and int(bonds.max()) >= n:
            raise ValueError(f"bond atom index {int(bonds.max())} out of range for {n} atoms")
        bonded = torch.zeros(n, n, dtype=torch.bool)
        bonded[bonds[:, 0], bonds[:, 1]] = True
        bonded[bonds[:, 1], bonds[:, 0]] = True
        radii = torch.from_numpy(covalent_radii(system.atomic_numbers))
        radius_sum = radii[:, None] + radii[None, :]
        one_three = ((bonded.double() @ bonded.double()) > 0) & ~bonded & ~torch.eye(n, dtype=torch.bool)
        lower_factor = torch.full((n, n), self.nonbond_factor, dtype=torch.float64)
        lower_factor[one_three] = self.one_three_factor
        entry = (bonded, self.bond_factor * radius_sum, lower_factor * radius_sum)
        if system.key:
            with self._lock:
                self._cache[system.key] = entry
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return entry

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Penalty ``(B,)`` kcal/mol and its forces ``(B, N, 3)`` kcal/mol/angstrom."""
        if positions.dim() != 3 or tuple(positions.shape[1:]) != (system.num_atoms, 3):
            raise ValueError(f"positions must be (B, {system.num_atoms}, 3), got {tuple(positions.shape)}")
        bonded, upper, lower = self.limits(system)
        pos = positions.detach().to("cpu", torch.float64).requires_grad_(True)
        with torch.enable_grad():
            energy = bond_structure_penalty(pos, bonded, upper, lower, self.alpha)
            (grad,) = torch.autograd.grad(energy.sum(), pos)
        ok = torch.isfinite(energy)
        return EnergyResult(
            energy=torch.where(ok, energy.detach(), torch.full_like(energy.detach(), float("nan"))),
            forces=torch.where(ok[:, None, None], -grad, torch.zeros_like(grad)),
            ok=ok,
            failure_reasons=tuple("non-finite positions" for _ in range(int((~ok).sum()))),
        )


class PenalizedEnergy(EnergyModel):
    """``base`` energy plus a :class:`BondStructurePenalty` (ok only where ``base`` is ok)."""

    def __init__(self, base: EnergyModel, penalty: BondStructurePenalty | None = None) -> None:
        self.base = base
        self.penalty = penalty if penalty is not None else BondStructurePenalty()
        self.name = f"{base.name}+{self.penalty.name}"

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Sum of both terms, ``(B,)`` kcal/mol and ``(B, N, 3)`` kcal/mol/angstrom."""
        base = self.base.energy_and_forces(system, positions)
        extra = self.penalty.energy_and_forces(system, positions)
        ok = base.ok & extra.ok
        energy = torch.where(ok, base.energy + extra.energy.to(base.energy), torch.full_like(base.energy, float("nan")))
        total_forces = base.forces + extra.forces.to(base.forces)
        forces = torch.where(ok[:, None, None], total_forces, torch.zeros_like(base.forces))
        return EnergyResult(energy=energy, forces=forces, ok=ok, failure_reasons=_merged_reasons(base, extra))

    def check_system(self, system: AtomicSystem) -> None:
        """The base energy's refusals (the penalty handles every system)."""
        self.base.check_system(system)

    def applicability_warnings(self, system: AtomicSystem) -> tuple[str, ...]:
        """The base energy's notes on ``system``."""
        return self.base.applicability_warnings(system)


def _merged_reasons(first: EnergyResult, second: EnergyResult) -> tuple[str, ...]:
    """One reason per conformer failed in either result, in batch order."""
    first_reasons, second_reasons = iter(first.failure_reasons), iter(second.failure_reasons)
    merged = []
    for ok_first, ok_second in zip(first.ok.tolist(), second.ok.tolist()):
        reasons = []
        if not ok_first:
            reasons.append(next(first_reasons, "failed"))
        if not ok_second:
            reasons.append(next(second_reasons, "failed"))
        if reasons:
            merged.append("; ".join(reasons))
    return tuple(merged)
