"""The ``adjoint-sampling`` console command: ``train``, ``sample``, ``serve``, ``bench``.

Each subcommand lives in :mod:`adjoint_sampling.commands` as a module with
``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can cause
(:class:`AdjointSamplingError`, missing files, bad values) end in a one-line message on stderr
and exit status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from adjoint_sampling.core.errors import AdjointSamplingError
from adjoint_sampling.core.version import __version__

SUBCOMMANDS: dict[str, str] = {
    "train": "train a sampler from a YAML config (resumes if the run directory has a checkpoint)",
    "sample": "sample conformers for SMILES with a trained checkpoint",
    "serve": "run the REST service (FastAPI + uvicorn)",
    "worker": "compute jobs from the shared PostgreSQL job queue (AS_DB_URL)",
    "bench": "run benchmarks (synthetic energies, conformers)",
    "label": "label conformers of the SPICE training molecules with GFN2-xTB energies and forces",
}

log = logging.getLogger("adjoint_sampling")


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is one), if any."""
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI parser. Only the module of the subcommand named in ``argv`` is imported (some import
    torch, which takes seconds); with no subcommand in ``argv`` every module is loaded."""
    parser = argparse.ArgumentParser(prog="adjoint-sampling", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    requested = _requested_command(sys.argv[1:] if argv is None else argv)
    for name, help_text in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if requested is not None and name != requested:
            continue
        module = importlib.import_module(f"adjoint_sampling.cli.{name}")
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except AdjointSamplingError as exc:
        print(f"adjoint-sampling {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"adjoint-sampling {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"adjoint-sampling {args.command}: interrupted", file=sys.stderr)
        return 130

