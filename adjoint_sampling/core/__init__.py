"""The bottom layer: typed errors, units, atomic file writes, random seeds, small geometry helpers,
the molecule description every energy backend takes, paths of a source checkout, lazy exports.

Every package imports ``core``, and some of its modules import torch: exports are lazy."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "atomic_torch_save": ".atomic_io",
        "atomic_write_bytes": ".atomic_io",
        "atomic_write_text": ".atomic_io",
        "AtomicSystem": ".atomic_system",
        "available_cores": ".cpu",
        "resolve_device": ".devices",
        "AdjointSamplingError": ".errors",
        "CheckpointError": ".errors",
        "ConfigError": ".errors",
        "EnergyCalculationError": ".errors",
        "InvalidMoleculeError": ".errors",
        "InvalidOptionError": ".errors",
        "TrainingError": ".errors",
        "TWO_PI": ".geometry",
        "random_orthogonal": ".geometry",
        "wrap_angle": ".geometry",
        "lazy_exports": ".lazy",
        "REPO_ROOT": ".paths",
        "SHARED_DATA_DIR": ".paths",
        "make_generator": ".rng",
        "rank_seed": ".rng",
        "Registry": ".registry",
        "kelvin_to_tau": ".units",
        "__version__": ".version",
    },
)
