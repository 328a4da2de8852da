"""Job configuration: YAML read into typed dataclasses (unknown keys raise ``ConfigError``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.training.trainer_config import TrainerConfig

__all__ = ["METHOD_KINDS", "JobConfig", "ControllerSpec", "parse_dataclass", "read_yaml", "load_job_config", "job_config_from_dict"]

T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: cannot read {value!r} as {tp}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    return value


def parse_dataclass(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping; ``where`` names the section in error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(names)})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


METHOD_KINDS = ("adjoint_sampling", "flow_matching", "adjoint_matching")
"""``method.kind`` of a training job."""


@dataclass
class ControllerSpec:
    """``controller:`` section: registered name and constructor kwargs."""

    name: str = "egnn"
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobConfig:
    """A training job.

    Attributes:
        problem: ``{kind: ..., ...}``, parsed by the builder registered for ``kind``.
        controller: controller name and hyper-parameters.
        schedule: ``{kind: geometric|linear, ...params}``.
        trainer: :class:`TrainerConfig`.
        run_dir: default run directory (``--run-dir`` overrides).
        num_threads: torch intra-op threads per process.
        init_from: a model checkpoint (``model.pt``) whose controller weights start a new run
            (fine-tuning); its controller name and hyper-parameters must equal this config's.
            A resumed run continues from its own state instead.
        method: ``{kind: adjoint_sampling}`` (the default: ``trainer:`` holds its settings), or
            ``flow_matching`` / ``adjoint_matching`` with their settings in this section
            (:mod:`adjoint_sampling.training.flow_job`).
    """

    problem: dict[str, Any] = field(default_factory=lambda: {"kind": "synthetic", "system": "dw4"})
    controller: ControllerSpec = field(default_factory=ControllerSpec)
    schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "geometric", "sigma_min": 1e-3, "sigma_max": 1.0})
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    run_dir: str | None = None
    num_threads: int = 1
    init_from: str | None = None
    method: dict[str, Any] = field(default_factory=lambda: {"kind": "adjoint_sampling"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def job_config_from_dict(data: Any) -> JobConfig:
    cfg = parse_dataclass(JobConfig, data, "config")
    for section in ("problem", "schedule", "method"):
        if "kind" not in getattr(cfg, section):
            raise ConfigError(f"config.{section}: missing key 'kind'")
    if cfg.method["kind"] not in METHOD_KINDS:
        raise ConfigError(f"config.method.kind: {cfg.method['kind']!r} is not one of {', '.join(METHOD_KINDS)}")
    return cfg


def read_yaml(path: str | Path) -> Any:
    """The YAML document of ``path`` (``ConfigError`` with a one-line reason if missing or not YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from exc


def load_job_config(path: str | Path) -> JobConfig:
    """Read a YAML job config (``ConfigError`` for bad YAML, unknown keys or bad values)."""
    return job_config_from_dict(read_yaml(path))
