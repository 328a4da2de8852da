"""The CLI loads only the module of the subcommand it runs (some import torch, which takes seconds)."""

from __future__ import annotations

import subprocess
import sys

from adjoint_sampling.cli.entry import SUBCOMMANDS, build_parser, main


def _imports_torch(argv: list[str]) -> bool:
    code = (
        "import sys; from adjoint_sampling.cli import build_parser; "
        f"build_parser({argv!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_serve_and_sample_parsers_do_not_import_torch() -> None:
    assert not _imports_torch(["serve"])
    assert not _imports_torch(["sample", "CCO"])
    assert not _imports_torch(["train", "config.yaml"])
    assert _imports_torch(["bench", "synthetic"])  # the check itself can see torch being imported


def test_every_subcommand_parses_and_unknown_input_exits_2(capsys) -> None:
    parser = build_parser([])
    assert set(parser._subparsers._group_actions[0].choices) == set(SUBCOMMANDS)
    assert main(["sample", "not a smiles [[", "--model", "etkdg"]) == 2
    assert "error" in capsys.readouterr().err
