"""Benchmarks: conformers against CREST references (:mod:`.conformers`), the sampler on synthetic
energies (:mod:`.synthetic`), the service load test and energy comparisons."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
    },
)
