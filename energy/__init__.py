"""Energy backends behind one batched interface (kcal/mol, angstrom): MMFF94, GFN2-xTB, fairchem,
the bond-structure penalty, synthetic DW-4 / LJ energies; built by name, and relaxation on any of
them. Backends with heavy imports (tblite, fairchem) load only when built."""

from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.penalty import BondStructurePenalty, PenalizedEnergy
from adjoint_sampling.energy.registry import ENERGY_BACKENDS, build_energy
from adjoint_sampling.energy.relax import RelaxResult, relax
from adjoint_sampling.energy.synthetic import SYNTHETIC_SYSTEMS, ParticleEnergy, build_synthetic_energy

__all__ = [
    "BondStructurePenalty",
    "ENERGY_BACKENDS",
    "EnergyModel",
    "EnergyResult",
    "ParticleEnergy",
    "PenalizedEnergy",
    "RelaxResult",
    "SYNTHETIC_SYSTEMS",
    "build_energy",
    "build_synthetic_energy",
    "relax",
]
