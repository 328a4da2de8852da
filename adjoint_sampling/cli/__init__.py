"""The ``adjoint-sampling`` command line: one module per subcommand (``add_arguments`` and ``run``),
imported only when that subcommand is asked for; :mod:`adjoint_sampling.cli.entry` dispatches."""

from adjoint_sampling.cli.entry import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
