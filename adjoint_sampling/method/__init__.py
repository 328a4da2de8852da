"""The method's pieces: Adjoint Sampling's terminal adjoint, Adjoint Matching's lean adjoint ODE
(base drift) and its base's flow matching, the RAM, bridge-matching and Adjoint Matching losses,
the replay buffer, importance weights and the posterior-mean target."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "AdjointMatchingTargets": ".adjoint_matching",
        "BufferItem": ".replay_buffer",
        "ParticleSymmetry": ".posterior_target",
        "ReplayBuffer": ".replay_buffer",
        "adjoint_matching_loss": ".losses",
        "adjoint_matching_targets": ".adjoint_matching",
        "batch_posterior_adjoint": ".posterior_target",
        "bridge_matching_loss": ".losses",
        "clip_per_row": ".adjoint",
        "drift_vjp": ".adjoint_matching",
        "effective_sample_fraction": ".importance",
        "flow_matching_loss": ".flow_matching",
        "interpolant_sample": ".flow_matching",
        "lean_adjoint": ".adjoint_matching",
        "per_system_mean_sq": ".losses",
        "posterior_mean_adjoint": ".posterior_target",
        "ram_loss": ".losses",
        "reward_terminal_adjoint": ".adjoint_matching",
        "selection_probabilities": ".importance",
        "terminal_adjoint": ".adjoint",
        "terminal_log_weight": ".importance",
    },
)
