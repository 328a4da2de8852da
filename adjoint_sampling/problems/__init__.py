"""Training problems: what the trainer samples (synthetic particle systems, molecules) behind one
protocol. The molecular problems are in :mod:`adjoint_sampling.problems.molecular`."""

from adjoint_sampling.problems.base import TerminalEvaluation, TrainingProblem
from adjoint_sampling.problems.synthetic import SyntheticProblem, SyntheticProblemParams

__all__ = [
    "SyntheticProblem",
    "SyntheticProblemParams",
    "TerminalEvaluation",
    "TrainingProblem",
]
