"""Energy backends behind one batched interface (kcal/mol, angstrom): MMFF94, GFN2-xTB, fairchem,
our GNN potential, the bond-structure penalty, synthetic DW-4 / LJ energies; built by name, and
relaxation on any of them. Backends with heavy imports (tblite, fairchem) load only when built."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "BondStructurePenalty": ".penalty",
        "ENERGY_BACKENDS": ".registry",
        "EnergyModel": ".base",
        "EnergyResult": ".base",
        "GNNEnergy": ".gnn",
        "ParticleEnergy": ".synthetic",
        "PenalizedEnergy": ".penalty",
        "RelaxResult": ".relax",
        "SYNTHETIC_SYSTEMS": ".synthetic",
        "build_energy": ".registry",
        "build_synthetic_energy": ".synthetic",
        "relax": ".relax",
    },
)
