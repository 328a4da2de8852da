"""Conformer benchmark: CREST references, symmetric heavy-atom RMSD, coverage and AMR, reports."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "BenchmarkConfig": ".runner",
        "run_benchmark": ".runner",
        "parse_methods": ".methods",
        "write_report": ".report",
        "coverage_metrics": ".metrics",
    },
)
