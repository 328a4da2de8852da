"""Synthetic benchmark: W2 of a trained sampler's samples against MCMC reference samples (DW-4, LJ)."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "run_reference_mcmc": ".mcmc",
        "energy_w2": ".metrics",
        "sample_checkpoint": ".sampling",
    },
)
