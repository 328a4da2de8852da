"""The method's pieces: the lean adjoint, the RAM and bridge-matching losses, the replay buffer,
importance weights and the posterior-mean target."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "BufferItem": ".replay_buffer",
        "ParticleSymmetry": ".posterior_target",
        "ReplayBuffer": ".replay_buffer",
        "batch_posterior_adjoint": ".posterior_target",
        "bridge_matching_loss": ".losses",
        "clip_per_row": ".adjoint",
        "effective_sample_fraction": ".importance",
        "per_system_mean_sq": ".losses",
        "posterior_mean_adjoint": ".posterior_target",
        "ram_loss": ".losses",
        "selection_probabilities": ".importance",
        "terminal_adjoint": ".adjoint",
        "terminal_log_weight": ".importance",
    },
)
