"""The labelling job: resumable, sharded, multi-process.

Output folder::

    job.json                                  the config the folder was made with (a rerun must match)
    parts/chunk-CCCCC/<mol_id>.extxyz.gz      one molecule's frames, then its record <mol_id>.json
    data/<split>/chunk-CCCCC.extxyz.gz        a finished chunk's frames of that split (molecule order)
    chunks/chunk-CCCCC.json                   a finished chunk's molecule records and files
    DATA_CARD.md, data_card.json              written by ``--card`` (:mod:`adjoint_sampling.labelling.card`)

Every file is written atomically (temporary file, fsync, rename). A molecule is done when its record
exists (written after its frames); a chunk is done when its ``chunks/`` record exists (written after
its data files, after which the parts are removed). So a SIGKILL at any moment loses at most the
molecules in progress, and a rerun of the same command skips what is done. Molecules, chunks,
shards, splits and seeds are fixed by the config alone (:mod:`adjoint_sampling.labelling.molecules`),
so a resumed run writes the same bytes as an uninterrupted one, for any ``--workers``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import multiprocessing
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adjoint_sampling.core.atomic_io import atomic_write_bytes, atomic_write_text
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.labelling.config import SPLITS, LabelConfig
from adjoint_sampling.labelling.extxyz import write_frames_gz
from adjoint_sampling.labelling.molecules import MoleculeEntry, molecule_entries

__all__ = ["JobSummary", "run_label_job", "chunk_name", "part_paths"]

log = logging.getLogger(__name__)


@dataclass
class JobSummary:
    """What one run of the job did.

    Attributes:
        molecules: molecules of this shard.
        already_done: of those, done before this run (finished chunks or parts).
        labelled: molecules labelled by this run.
        frames: frames written by this run.
        cpu_s: CPU seconds of the molecules labelled by this run (all workers).
        chunks_packed: chunk files finished by this run.
    """

    molecules: int = 0
    already_done: int = 0
    labelled: int = 0
    frames: int = 0
    cpu_s: float = 0.0
    chunks_packed: int = 0


def chunk_name(chunk: int) -> str:
    return f"chunk-{chunk:05d}"


def part_paths(out: Path, entry: MoleculeEntry) -> tuple[Path, Path]:
    """The frames file and the record file of one molecule before its chunk is packed."""
    folder = out / "parts" / chunk_name(entry.chunk)
    return folder / f"{entry.mol_id}.extxyz.gz", folder / f"{entry.mol_id}.json"


def _config_dict(config: LabelConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data.pop("out_dir")
    return data


def _check_job_file(out: Path, config: LabelConfig) -> None:
    path = out / "job.json"
    wanted = _config_dict(config)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != json.loads(json.dumps(wanted)):
            raise ConfigError(f"{out} was made with a different config ({path}); use another --out")
    else:
        atomic_write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")


_RESOURCES = None


def _init_worker(config: LabelConfig) -> None:
    import torch

    from adjoint_sampling.labelling.sources import Resources

    global _RESOURCES
    torch.set_num_threads(1)
    _RESOURCES = Resources(config)


def _label_and_write(task: tuple[MoleculeEntry, str]) -> dict[str, Any]:
    """Label one molecule in this process and write its part files; returns its record."""
    from adjoint_sampling.labelling.labeller import label_molecule

    entry, out = task
    assert _RESOURCES is not None
    frames, record = label_molecule(entry, _RESOURCES)
    frames_path, record_path = part_paths(Path(out), entry)
    atomic_write_bytes(frames_path, write_frames_gz(frames))
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def _pack_chunk(out: Path, chunk: int, entries: list[MoleculeEntry]) -> None:
    """Write a finished chunk's data files and record, then remove its parts."""
    texts: dict[str, list[str]] = {name: [] for name in SPLITS}
    frames: dict[str, int] = dict.fromkeys(SPLITS, 0)
    records = []
    for entry in entries:
        frames_path, record_path = part_paths(out, entry)
        records.append(json.loads(record_path.read_text()))
        texts[entry.split].append(gzip.decompress(frames_path.read_bytes()).decode("utf-8"))
        frames[entry.split] += records[-1]["num_frames"]
    files = {}
    for split, parts in texts.items():
        path = out / "data" / split / f"{chunk_name(chunk)}.extxyz.gz"
        if not frames[split]:
            path.unlink(missing_ok=True)
            continue
        data = gzip.compress("".join(parts).encode("utf-8"), compresslevel=9, mtime=0)
        atomic_write_bytes(path, data)
        files[split] = {"path": str(path.relative_to(out)), "bytes": len(data), "frames": frames[split]}
    summary = {"chunk": chunk, "molecules": records, "files": files}
    atomic_write_text(out / "chunks" / f"{chunk_name(chunk)}.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(out / "parts" / chunk_name(chunk), ignore_errors=True)


def _results(tasks: list[tuple[MoleculeEntry, str]], config: LabelConfig, workers: int) -> Iterator[dict[str, Any]]:
    if not tasks:
        return
    if workers == 1 or len(tasks) == 1:
        _init_worker(config)
        for task in tasks:
            yield _label_and_write(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(config,)) as pool:
        yield from pool.imap_unordered(_label_and_write, tasks)


def run_label_job(
    config: LabelConfig, out_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1), workers: int = 1
) -> JobSummary:
    """Label the molecules of shard ``shard = (i, n)`` (the chunks ``c`` with ``c % n == i``).

    Raises:
        ConfigError: ``workers < 1``, or ``out_dir`` was made with another config.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out_dir or config.out_dir)
    entries = [e for e in molecule_entries(config) if e.chunk % shard[1] == shard[0]]
    _check_job_file(out, config)
    by_chunk: dict[int, list[MoleculeEntry]] = {}
    for entry in entries:
        by_chunk.setdefault(entry.chunk, []).append(entry)
    summary = JobSummary(molecules=len(entries))
    pending: dict[int, set[int]] = {}
    tasks: list[tuple[MoleculeEntry, str]] = []
    for chunk, members in by_chunk.items():
        if (out / "chunks" / f"{chunk_name(chunk)}.json").is_file():
            summary.already_done += len(members)
            continue
        todo = [e for e in members if not part_paths(out, e)[1].is_file()]
        summary.already_done += len(members) - len(todo)
        if not todo:
            _pack_chunk(out, chunk, members)
            summary.chunks_packed += 1
            continue
        pending[chunk] = {e.index for e in todo}
        tasks += [(e, str(out)) for e in todo]
    log.info("shard %d/%d: %d molecules, %d done before, %d to label", shard[0], shard[1], len(entries),
             summary.already_done, len(tasks))
    for record in _results(tasks, config, workers):
        summary.labelled += 1
        summary.frames += record["num_frames"]
        summary.cpu_s += record["cpu_s"]
        log.info("[%d/%d] %s: %s, %d frames, %.1f CPU s", summary.labelled, len(tasks), record["canonical"],
                 record["status"] if record["reason"] is None else record["reason"], record["num_frames"],
                 record["cpu_s"])
        chunk = record["index"] // config.molecules_per_file
        pending[chunk].discard(record["index"])
        if not pending[chunk]:
            _pack_chunk(out, chunk, by_chunk[chunk])
            summary.chunks_packed += 1
    return summary
