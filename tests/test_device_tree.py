"""configs/device/device_tree.py on a throw-away git repository: what would travel to the device machine,
and a slimmed index that leaves heavy folders behind, refuses commits, and restores exactly."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from adjoint_sampling.core.paths import REPO_ROOT

_spec = importlib.util.spec_from_file_location("device_tree", REPO_ROOT / "configs" / "device" / "device_tree.py")
device_tree = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(device_tree)


def _git(repo, *args, check=True):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)


@pytest.fixture()
def repo(tmp_path):
    """A repository with 3 MiB of committed data, 1 KiB of code, an ignored and an untracked file."""
    root = tmp_path / "repo"
    (root / "data" / "labels").mkdir(parents=True)
    (root / "code").mkdir()
    (root / "data" / "labels" / "a.bin").write_bytes(b"\1" * 2 * 2**20)
    (root / "data" / "labels" / "b.bin").write_bytes(b"\2" * 2**20)
    (root / "code" / "main.py").write_bytes(b"#" * 1024)
    (root / ".gitignore").write_text("runs/\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    (root / "runs").mkdir()
    (root / "runs" / "big.bin").write_bytes(b"\3" * 4 * 2**20)  # ignored: does not travel
    (root / "notes.txt").write_bytes(b"n" * 100)  # untracked, not ignored: travels
    return root


def _size(repo, carry=()):
    return device_tree.travel_size(repo, list(carry))[0]


def test_size_counts_tracked_and_untracked_files_and_the_carried_paths(repo, capsys):
    tracked = 3 * 2**20 + 1024 + len("runs/\n")
    assert _size(repo) == tracked + 100
    assert _size(repo, ["runs"]) == tracked + 100 + 4 * 2**20
    assert device_tree.main(["--root", str(repo), "size", "--limit-mib", "4"]) == 0
    assert "fits" in capsys.readouterr().out
    assert device_tree.main(["--root", str(repo), "size", "--limit-mib", "2"]) == 2
    out = capsys.readouterr().out
    assert "over the limit" in out and "data/labels" in out.splitlines()[0]
    assert device_tree.main(["--root", str(repo), "size", "--carry", "nowhere"]) == 1
    assert "carry path nowhere does not exist" in capsys.readouterr().err


def test_slim_leaves_folders_behind_refuses_commits_and_restore_puts_everything_back(repo, capsys):
    head = _git(repo, "rev-parse", "HEAD").stdout
    assert device_tree.main(["--root", str(repo), "slim", "data/labels"]) == 0
    assert (repo / "data" / "labels" / "a.bin").exists()  # the files stay on disk
    assert _size(repo) == 1024 + len("runs/\n") + 100
    assert _size(repo, ["data/labels/b.bin"]) == 1024 + len("runs/\n") + 100 + 2**20
    assert _git(repo, "ls-files", "data").stdout == ""

    (repo / "code" / "main.py").write_text("changed")
    _git(repo, "add", "code/main.py")
    refused = _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-m", "x", check=False)
    assert refused.returncode != 0 and "restore" in refused.stderr
    assert _git(repo, "rev-parse", "HEAD").stdout == head

    assert device_tree.main(["--root", str(repo), "slim", "code"]) == 1
    assert "already slimmed" in capsys.readouterr().err
    assert device_tree.main(["--root", str(repo), "restore"]) == 0
    status = _git(repo, "status", "--porcelain").stdout.splitlines()
    assert status == ["M  code/main.py", "?? notes.txt"]  # the data is tracked again, nothing deleted
    assert _size(repo) == 3 * 2**20 + len("changed") + len("runs/\n") + 100
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert "device_tree" not in (repo / ".git" / "info" / "exclude").read_text()
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    assert device_tree.main(["--root", str(repo), "restore"]) == 1
    assert "not slimmed" in capsys.readouterr().err


def test_slim_refuses_what_it_cannot_undo(repo, capsys):
    assert device_tree.main(["--root", str(repo), "slim", "runs"]) == 1
    assert "runs holds no tracked file" in capsys.readouterr().err
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 0\n")
    assert device_tree.main(["--root", str(repo), "slim", "data"]) == 1
    assert "not this tool's guard" in capsys.readouterr().err
    assert _git(repo, "ls-files", "data").stdout  # nothing was changed
    assert device_tree.main(["--root", str(repo / "missing"), "size"]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_this_repository_slimmed_leaves_room_for_the_label_pack():
    """The slim of a device call must keep working as the repository grows: the tracked files outside
    SLIM_PATHS leave CARRY_ROOM_BYTES under the limit for the pack and the wheels."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    size = sum(
        (REPO_ROOT / rel).lstat().st_size
        for rel in device_tree.travelling_files(REPO_ROOT)
        if not device_tree.is_under(rel, device_tree.SLIM_PATHS)
    )
    assert size <= device_tree.LIMIT_BYTES - device_tree.CARRY_ROOM_BYTES, f"{size / 2**20:.1f} MiB"
    assert size < device_tree.travel_size(REPO_ROOT, [])[0]  # the slim does leave something out
