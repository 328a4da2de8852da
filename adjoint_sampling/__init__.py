"""Adjoint Sampling: amortized conformer sampling with a neural SDE trained from energies only.

The public API is imported on first use (``import adjoint_sampling`` stays light); the layers
behind it are described in ARCHITECTURE.md.
"""

from adjoint_sampling.core.lazy import lazy_exports
from adjoint_sampling.core.version import __version__

_all, __getattr__ = lazy_exports(
    __name__,
    {
        "Conformer": ".generation.types",
        "ConformerGenerator": ".generation.types",
        "ConformerSet": ".generation.types",
        "EtkdgGenerator": ".generation.etkdg",
        "GenerationRequest": ".generation.types",
        "Sampler": ".generation.sampler",
        "conformers_to_sdf": ".generation.formats",
        "conformers_to_xyz": ".generation.formats",
        "generate": ".generation.api",
        "load_generator": ".generation.loading",
    },
)
__all__ = ["__version__", *_all]
