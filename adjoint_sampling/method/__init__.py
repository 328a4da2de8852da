"""The method's pieces: the lean adjoint, the RAM and bridge-matching losses, the replay buffer,
importance weights and the posterior-mean target."""

from adjoint_sampling.method.adjoint import clip_per_row, terminal_adjoint
from adjoint_sampling.method.importance import effective_sample_fraction, selection_probabilities, terminal_log_weight
from adjoint_sampling.method.losses import bridge_matching_loss, per_system_mean_sq, ram_loss
from adjoint_sampling.method.posterior_target import ParticleSymmetry, batch_posterior_adjoint, posterior_mean_adjoint
from adjoint_sampling.method.replay_buffer import BufferItem, ReplayBuffer

__all__ = [
    "BufferItem",
    "ParticleSymmetry",
    "ReplayBuffer",
    "batch_posterior_adjoint",
    "bridge_matching_loss",
    "clip_per_row",
    "effective_sample_fraction",
    "per_system_mean_sq",
    "posterior_mean_adjoint",
    "ram_loss",
    "selection_probabilities",
    "terminal_adjoint",
    "terminal_log_weight",
]
