"""`adjoint-sampling sample` (not available yet)."""

from __future__ import annotations

import argparse

from adjoint_sampling.errors import AdjointSamplingError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise AdjointSamplingError("'sample' is not available yet")
