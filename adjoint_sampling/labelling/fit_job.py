"""The GNN potential training job: ``adjoint-sampling train configs/energy_*.yaml``.

A YAML config with the sections ``data`` (glob patterns of labelled extxyz files, relative to the
working directory unless absolute), ``fit`` (:class:`~adjoint_sampling.labelling.fit.FitConfig`),
``run_dir`` and ``num_threads``. Running the same command again resumes the run; under ``torchrun``
every process trains on its own draws and gradients are averaged.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.labelling.fit import FitConfig, fit_potential
from adjoint_sampling.training.config import parse_dataclass, read_yaml
from adjoint_sampling.training.distributed import init_distributed, shutdown_distributed

__all__ = ["EnergyFitJob", "energy_fit_job_from_dict", "is_energy_fit_config", "load_energy_fit_job", "run_energy_fit_job"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnergyFitJob:
    """A GNN potential training job.

    Attributes:
        data: glob patterns of gzip extxyz files written by the labelling job.
        fit: the fit options.
        run_dir: default run directory (``--run-dir`` overrides).
        num_threads: torch intra-op threads per process.
    """

    data: tuple[str, ...] = ()
    fit: FitConfig = field(default_factory=FitConfig)
    run_dir: str | None = None
    num_threads: int = 1

    def data_files(self, root: Path | None = None) -> list[Path]:
        """The files matched by ``data`` (sorted, each once; relative patterns from ``root``, default the
        working directory).

        Raises:
            ConfigError: no pattern given, or a pattern that matches nothing.
        """
        if not self.data:
            raise ConfigError("energy fit config: data lists no files")
        files: set[Path] = set()
        for pattern in self.data:
            full = pattern if Path(pattern).is_absolute() else str((root or Path.cwd()) / pattern)
            matched = sorted(glob.glob(full, recursive=True))
            if not matched:
                raise ConfigError(f"energy fit config: data pattern {pattern!r} matches no file")
            files.update(Path(m) for m in matched)
        return sorted(files)


def is_energy_fit_config(data: Any) -> bool:
    """Whether a parsed YAML document is a potential training job (it has a ``fit`` section)."""
    return isinstance(data, dict) and "fit" in data


def energy_fit_job_from_dict(data: Any) -> EnergyFitJob:
    """An :class:`EnergyFitJob` from a parsed YAML document (``ConfigError`` naming a bad key or value)."""
    return parse_dataclass(EnergyFitJob, data, "config")


def load_energy_fit_job(path: str | Path) -> EnergyFitJob:
    """Read an :class:`EnergyFitJob` YAML file (``ConfigError`` naming a bad key or value)."""
    return energy_fit_job_from_dict(read_yaml(path))


def run_energy_fit_job(
    config: str | Path | EnergyFitJob, run_dir: str | Path | None = None, device: str | None = None
) -> Path:
    """Train (or resume) the potential of ``config``; returns the final checkpoint path."""
    job = config if isinstance(config, EnergyFitJob) else load_energy_fit_job(config)
    out_dir = Path(run_dir or job.run_dir or "")
    if str(out_dir) in ("", "."):
        raise ConfigError("no run directory: pass --run-dir or set run_dir in the config")
    files = job.data_files()
    torch.set_num_threads(job.num_threads)
    dist = init_distributed()
    try:
        logger.info("fitting a GNN potential on %d file(s) into %s", len(files), out_dir)
        return fit_potential(files, job.fit, out_dir, device=device, dist=dist)
    finally:
        shutdown_distributed()
