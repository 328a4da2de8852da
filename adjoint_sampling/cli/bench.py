"""`adjoint-sampling bench SUITE ...`: dispatches to the benchmark suites in :mod:`benchmarks`.

Each suite module has ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

SUITES: dict[str, tuple[str, str]] = {
    "synthetic": ("adjoint_sampling.benchmarks.synthetic.cli", "DW-4 / LJ-13 / LJ-55: W2 against MCMC reference samples"),
    "conformers": ("adjoint_sampling.benchmarks.conformers.cli", "conformer coverage/AMR against CREST references"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    for name, (module_name, help_text) in SUITES.items():
        module = importlib.import_module(module_name)
        suite_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(suite_parser)
        suite_parser.set_defaults(_suite_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._suite_run(args) or 0)
