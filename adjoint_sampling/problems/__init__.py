"""Training problems: what the trainer samples (synthetic particle systems, molecules) behind one
protocol. The molecular problems are in :mod:`adjoint_sampling.problems.molecular`."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "SyntheticProblem": ".synthetic",
        "SyntheticProblemParams": ".synthetic",
        "TerminalEvaluation": ".base",
        "TrainingProblem": ".base",
    },
)
