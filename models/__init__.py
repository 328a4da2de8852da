"""Controllers (EGNN for particles and Cartesian molecules, the e3nn torsional controller), their
registry, the self-describing model checkpoint, and the equivariance checks every controller is
tested with. ``shipped/`` holds the shipped weights and their card (data, not code)."""

from adjoint_sampling.models.checkpoint import (
    FORMAT_VERSION,
    ModelCheckpoint,
    load_controller_weights,
    load_model_checkpoint,
    save_model_checkpoint,
)
from adjoint_sampling.models.egnn import EGNNController
from adjoint_sampling.models.equivariance import (
    equivariance_errors,
    max_abs_error,
    permute_system_batch,
    random_permutation_within_systems,
)
from adjoint_sampling.models.molecular_egnn import MolecularEGNNController
from adjoint_sampling.models.registry import available_controllers, build_controller, register_controller
from adjoint_sampling.models.torsional import TorsionalController

__all__ = [
    "EGNNController",
    "FORMAT_VERSION",
    "ModelCheckpoint",
    "MolecularEGNNController",
    "TorsionalController",
    "available_controllers",
    "build_controller",
    "equivariance_errors",
    "load_controller_weights",
    "load_model_checkpoint",
    "max_abs_error",
    "permute_system_batch",
    "random_permutation_within_systems",
    "register_controller",
    "save_model_checkpoint",
]
