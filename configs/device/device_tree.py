"""What a device-tool call sends, and a slimmed git index so that it fits (64 MiB in all).

The device tool copies the checkout's tracked and untracked-not-ignored files plus the ``carry``
paths, at most 64 MiB together. The committed labels, benchmark records and archived models are far
more than that, so a device call first takes the heavy folders out of the index (the files stay on
disk, excluded through ``.git/info/exclude``) and carries back in only what the run reads:

    python configs/device/device_tree.py slim            # SLIM_PATHS, or name the paths
    python configs/device/device_tree.py size --carry .device          # must print "fits"
    ... device run with carry [".device", ...] ...
    python configs/device/device_tree.py restore                       # the index as before

While slimmed, a pre-commit hook refuses every commit (it would delete the folders from the
repository); ``restore`` puts the index entries back from ``HEAD`` and removes the hook. ``size``
exits 2 when what would travel is over the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

LIMIT_BYTES = 64 * 2**20
SLIM_PATHS = ("data/labels", "benchmarks/results", "benchmarks/synthetic/models")
"""What ``slim`` leaves out when given no path: the committed labels (a pack carries what a fit
reads), the benchmark records and the synthetic models (about 100 of the tree's MiB)."""
CARRY_ROOM_BYTES = 40 * 2**20
"""Room the slimmed tree must leave under the limit for carried paths (the label pack, 31 MiB, and wheels)."""
STATE_FILE = "device-slim.json"
EXCLUDE_BEGIN = "# device_tree slim: begin"
EXCLUDE_END = "# device_tree slim: end"
HOOK_MARK = "# device_tree guard"
HOOK = f"""#!/bin/sh
{HOOK_MARK}
if [ -f "$(git rev-parse --git-dir)/{STATE_FILE}" ]; then
  echo "device_tree: the index is slimmed for a device call;" \
       "run 'python configs/device/device_tree.py restore' first" >&2
  exit 1
fi
"""


class DeviceTreeError(RuntimeError):
    """A slim or restore that cannot be done as asked (the message names why)."""


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeviceTreeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _git_dir(root: Path) -> Path:
    return (root / _git(root, "rev-parse", "--git-dir").strip()).resolve()


def travelling_files(root: Path) -> list[str]:
    """Paths (relative to ``root``) of the tracked and untracked-not-ignored files that exist."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sorted({p for p in listed if p and os.path.lexists(root / p)})


def is_under(rel: str, paths: list[str] | tuple[str, ...]) -> bool:
    """Whether the relative path ``rel`` is one of ``paths`` or lies inside one of them."""
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in paths)


def _size(path: Path) -> int:
    return path.lstat().st_size if path.is_symlink() or path.is_file() else 0


def _files_under(path: Path) -> list[Path]:
    if path.is_file() or path.is_symlink():
        return [path]
    return [p for p in path.rglob("*") if p.is_file() or p.is_symlink()]


def travel_size(root: Path, carry: list[str]) -> tuple[int, Counter[str]]:
    """Bytes a call would send (the carried paths replace what is under them) and bytes per folder
    (two levels deep)."""
    per_folder: Counter[str] = Counter()
    carried = [c.rstrip("/") for c in carry]

    def add(rel: str, size: int) -> None:
        parts = rel.split("/")
        per_folder["/".join(parts[:2]) if len(parts) > 2 else parts[0]] += size

    for rel in travelling_files(root):
        if not is_under(rel, carried):
            add(rel, _size(root / rel))
    for c in carried:
        if not (root / c).exists():
            raise DeviceTreeError(f"carry path {c} does not exist")
        for path in _files_under(root / c):
            add(path.relative_to(root).as_posix(), _size(path))
    return sum(per_folder.values()), per_folder


def _exclude_file(root: Path) -> Path:
    path = _git_dir(root) / "info" / "exclude"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _without_block(text: str) -> str:
    lines, inside = [], False
    for line in text.splitlines():
        if line == EXCLUDE_BEGIN:
            inside = True
        elif line == EXCLUDE_END:
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def slim(root: Path, paths: list[str]) -> None:
    """Take ``paths`` (tracked folders or files) out of the index and exclude them; install the guard."""
    git_dir = _git_dir(root)
    if (git_dir / STATE_FILE).exists():
        raise DeviceTreeError("already slimmed: run restore first")
    if not paths:
        raise DeviceTreeError("name at least one tracked path to leave out")
    clean = [p.strip("/") for p in paths]
    for p in clean:
        if not _git(root, "ls-files", "--", p).strip():
            raise DeviceTreeError(f"{p} holds no tracked file")
    if _git(root, "diff", "--cached", "--name-only", "--", *clean).strip():
        raise DeviceTreeError("staged changes under the paths to leave out: commit or unstage them first")
    hook = git_dir / "hooks" / "pre-commit"
    if hook.exists() and HOOK_MARK not in hook.read_text(errors="replace"):
        raise DeviceTreeError(f"{hook} exists and is not this tool's guard; move it away first")
    (git_dir / STATE_FILE).write_text(json.dumps({"paths": clean}, indent=1) + "\n")
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(HOOK)
    hook.chmod(0o755)
    exclude = _exclude_file(root)
    kept = _without_block(exclude.read_text() if exclude.exists() else "")
    exclude.write_text(kept + "\n".join([EXCLUDE_BEGIN, *(f"/{p}" for p in clean), EXCLUDE_END]) + "\n")
    _git(root, "rm", "-r", "-q", "--cached", "--", *clean)


def restore(root: Path) -> list[str]:
    """Put the slimmed paths back into the index from ``HEAD``; remove the exclusion and the guard."""
    git_dir = _git_dir(root)
    state = git_dir / STATE_FILE
    if not state.exists():
        raise DeviceTreeError("not slimmed: nothing to restore")
    paths = json.loads(state.read_text())["paths"]
    _git(root, "reset", "-q", "HEAD", "--", *paths)
    exclude = _exclude_file(root)
    if exclude.exists():
        exclude.write_text(_without_block(exclude.read_text()))
    hook = git_dir / "hooks" / "pre-commit"
    if hook.exists() and HOOK_MARK in hook.read_text(errors="replace"):
        hook.unlink()
    state.unlink()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout (default: here)")
    sub = parser.add_subparsers(dest="command", required=True)
    size = sub.add_parser("size", help="bytes a device call would send, largest folders first")
    size.add_argument("--carry", action="append", default=[], help="a carried path (repeatable)")
    size.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / 2**20)
    size.add_argument("--top", type=int, default=8)
    slim_parser = sub.add_parser("slim", help="leave tracked paths out of what travels")
    slim_parser.add_argument("paths", nargs="*", help=f"default: {' '.join(SLIM_PATHS)}")
    sub.add_parser("restore", help="undo slim")
    args = parser.parse_args(argv)
    try:
        if not args.root.is_dir():
            raise DeviceTreeError(f"{args.root} is not a folder")
        root = Path(_git(args.root, "rev-parse", "--show-toplevel").strip())
        if args.command == "size":
            total, per_folder = travel_size(root, args.carry)
            limit = int(args.limit_mib * 2**20)
            for folder, nbytes in per_folder.most_common(args.top):
                print(f"{nbytes / 2**20:9.2f} MiB  {folder}")
            verdict = "fits" if total <= limit else "over the limit"
            print(f"{total / 2**20:.2f} MiB would travel, limit {limit / 2**20:.0f} MiB: {verdict}")
            return 0 if total <= limit else 2
        if args.command == "slim":
            paths = args.paths or list(SLIM_PATHS)
            slim(root, paths)
            print(f"left out of the index: {' '.join(paths)} (restore before committing)")
            return 0
        print(f"restored: {' '.join(restore(root))}")
        return 0
    except DeviceTreeError as exc:
        print(f"device_tree: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
