"""Typed errors shared by the library, the CLI and the service.

Every error a user can trigger derives from :class:`AdjointSamplingError`; the CLI turns it
into a one-line message with a non-zero exit, the service into an HTTP 4xx with the reason.
"""

from __future__ import annotations


class AdjointSamplingError(Exception):
    """Base class of all errors raised on purpose by this project."""


class ConfigError(AdjointSamplingError):
    """A configuration file or option is invalid (names the field and the reason)."""


class InvalidOptionError(ConfigError):
    """A generation option is invalid; front ends name the field in their own terms.

    Attributes:
        field: the option's name in :class:`~adjoint_sampling.generation.types.GenerationRequest`.
        reason: a short machine-readable code (``out_of_range``, ``above_cap``, ``needs_relax``,
            ``unknown_choice``).
        detail: the rule, phrased to follow the field's name (``"must be >= 1, got 0"``).
    """

    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(f"{field} {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail


class CheckpointError(AdjointSamplingError):
    """A checkpoint is missing, corrupt or incompatible."""


class InvalidMoleculeError(AdjointSamplingError):
    """A molecule cannot be handled.

    Attributes:
        reason: a short machine-readable code, one of ``REASONS``.
        detail: a human-readable sentence naming the problem.
    """

    REASONS = (
        "invalid_smiles",
        "empty",
        "unsupported_element",
        "radical",
        "too_many_atoms",
        "multiple_fragments",
        "no_conformer",
        "charge_mismatch",
        "multiplicity_mismatch",
        "unsupported_charge",
        "invalid_input",
    )

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown molecule error reason {reason!r}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class EnergyCalculationError(AdjointSamplingError):
    """An energy backend failed for a reason that is not per-sample (bad setup, missing file)."""


class TrainingError(AdjointSamplingError):
    """Training cannot go on (for example every gradient step of an iteration was non-finite)."""
