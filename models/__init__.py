"""Controllers (EGNN for particles and Cartesian molecules, the e3nn torsional controller), their
registry, the self-describing model checkpoint, and the equivariance checks every controller is
tested with. ``shipped/`` holds the shipped weights and their card (data, not code)."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "EGNNController": ".egnn",
        "FORMAT_VERSION": ".checkpoint",
        "ModelCheckpoint": ".checkpoint",
        "MolecularEGNNController": ".molecular_egnn",
        "TorsionalController": ".torsional",
        "available_controllers": ".registry",
        "build_controller": ".registry",
        "equivariance_errors": ".equivariance",
        "load_controller_weights": ".checkpoint",
        "load_model_checkpoint": ".checkpoint",
        "max_abs_error": ".equivariance",
        "permute_system_batch": ".equivariance",
        "random_permutation_within_systems": ".equivariance",
        "register_controller": ".registry",
        "save_model_checkpoint": ".checkpoint",
    },
)
