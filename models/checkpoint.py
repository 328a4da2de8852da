"""Self-describing model checkpoints: enough to sample without the training config.

The resumable training state (optimizer, buffer, random state) is separate: see
:mod:`adjoint_sampling.trainer`.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adjoint_sampling.core.atomic_io import atomic_torch_save
from adjoint_sampling.core.errors import CheckpointError
from adjoint_sampling.core.version import __version__
from adjoint_sampling.models.registry import build_controller
from adjoint_sampling.sde.schedules import NoiseSchedule, build_schedule
from adjoint_sampling.sde.time_grids import time_grid

__all__ = ["ModelCheckpoint", "save_model_checkpoint", "load_model_checkpoint", "load_controller_weights",
           "FORMAT_VERSION", "MODEL_KINDS"]

FORMAT_VERSION = 1
MODEL_KINDS = ("adjoint_sampling", "flow", "adjoint_matching")
"""What a checkpoint's network is: an Adjoint Sampling controller (base drift 0, Dirac start), a
flow's velocity (pre-trained by flow matching, sampled on its memoryless SDE), or an Adjoint Matching
control on top of a flow (the flow's velocity in ``base``)."""

_REQUIRED = ("format_version", "controller_name", "controller_hparams", "state_dict", "schedule_kind",
             "schedule_params", "sde_steps", "grid_kind", "tau")


@dataclass
class ModelCheckpoint:
    """A trained controller and everything needed to sample from it.

    Attributes:
        controller_name / controller_hparams / state_dict: rebuild with ``build_controller``.
        schedule_kind / schedule_params: the noise schedule.
        sde_steps / grid_kind / grid_power: the Euler-Maruyama time grid.
        tau: temperature in energy units the controller was trained at.
        output_energy: energy backend of the energies a sampler reports for unrelaxed conformers
            (``None``: the training backend ``problem["energy"]``). Set when a model trained on an
            expensive energy (xTB: about 0.15 s per conformer) should report a cheap one.
        problem: free-form description filled by the problem (elements, energy backend, system).
        config: the training job config as a dict (informational).
        counters: training counters (iterations, gradient steps, energy evaluations, ...).
        versions: package versions at save time.
        kind: one of :data:`MODEL_KINDS` (checkpoints written before kinds existed are
            ``adjoint_sampling``).
        base: ``adjoint_matching`` only: the frozen flow the control fine-tunes, as
            ``{"controller_name", "controller_hparams", "state_dict"}``.
        solver: how a ``flow`` / ``adjoint_matching`` model is sampled: ``sde`` (its memoryless
            SDE) or ``ode`` (its ODE), on the grid above; Adjoint Sampling models: ``sde``.
        control_from: ``adjoint_matching`` only: the control acts from this time on, the base flow
            alone before it (``method.control_window``; 0: everywhere, as in checkpoints without it).
        quiet_steps: ``adjoint_sampling`` only: the last that many Euler-Maruyama steps of sampling
            add no noise (``sde.integrate.integrate``; 0: the SDE as trained, as in checkpoints
            without it). Training never uses it.
        descent_steps / descent_step: ``adjoint_sampling`` only: after the last SDE step, that many
            noise-free steps along the control at t = 1 (a learned gradient descent on the energy,
            ``sde.integrate.descend``) of that size in ``nu`` units (0: none). Training never uses it.
        clash_repair_steps: torsional models only: at most that many torsional repulsion steps on each
            sample with a close non-bonded contact (``chemistry.clash_repair``; 0: none, as in
            checkpoints without it). Training never uses it.
        polish_steps / polish_step / polish_energy: torsional models only: after the SDE (and before
            the clash repair), at most that many monotone torsion-space descent steps of initial size
            ``polish_step`` (rad per kcal/mol/rad) on the backend ``polish_energy``
            (``energy.torsional_descent``; 0 steps: none, as in checkpoints without it). A draw stops
            early after a step that gained less than ``polish_tolerance`` kcal/mol (0: never, as in
            checkpoints without it). Training never uses it.
        select_from / select_rmsd: ``select_from`` > 1: a sampler draws ``ceil(select_from * n)``
            samples for ``n`` requested and returns the ``n`` lowest in energy on ``polish_energy``
            that are at least ``select_rmsd`` angstrom heavy-atom RMSD apart
            (``generation.selection``; 1: every draw, as in checkpoints without it). Training never
            uses it.
        relaxed_select_from / relaxed_select_rmsd / relaxed_prescreen_steps / relaxed_raw_select_from: for a
            request with an MMFF94 relaxation (``generation.sampler.RELAXED_SELECTION_METHODS``),
            ``relaxed_select_from`` > 1: ``ceil(relaxed_select_from * n)``
            samples are drawn for ``n`` requested (each chosen by the raw selection above), all relaxed,
            and the ``n`` lowest in relaxed energy that are at least ``relaxed_select_rmsd`` angstrom
            heavy-atom RMSD apart returned (relaxed draws often end in the same minimum).
            ``relaxed_prescreen_steps`` > 0: the draws are first relaxed by at most that many optimiser
            iterations, the ``n`` are chosen on those energies, and only they are relaxed to the end.
            ``relaxed_raw_select_from`` > 0: the raw selection of such a request takes this in place of
            ``select_from`` (more draws per relaxed conformer without changing unrelaxed requests).
            (1 / 0 / 0: off, as in checkpoints without them.)
        conformers_per_local_structure / max_local_structures: torsional models only: a sampler
            builds ``min(max_local_structures, ceil(n / conformers_per_local_structure))`` local
            structures (RDKit ETKDG + MMFF94 conformers) for ``n`` samples (4 / 16, as in checkpoints
            without them). Training never uses them.
        format_version: checkpoint layout version.
    """

    controller_name: str
    controller_hparams: dict[str, Any]
    state_dict: dict[str, Tensor]
    schedule_kind: str
    schedule_params: dict[str, Any]
    sde_steps: int
    grid_kind: str
    tau: float
    grid_power: float = 2.0
    output_energy: str | None = None
    problem: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    kind: str = "adjoint_sampling"
    base: dict[str, Any] | None = None
    solver: str = "sde"
    control_from: float = 0.0
    quiet_steps: int = 0
    descent_steps: int = 0
    descent_step: float = 0.0
    clash_repair_steps: int = 0
    polish_steps: int = 0
    polish_step: float = 0.01
    polish_energy: str = "mmff"
    polish_tolerance: float = 0.0
    select_from: float = 1.0
    select_rmsd: float = 0.25
    relaxed_select_from: float = 1.0
    relaxed_select_rmsd: float = 0.25
    relaxed_prescreen_steps: int = 0
    relaxed_raw_select_from: float = 0.0
    conformers_per_local_structure: int = 4
    max_local_structures: int = 16
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise CheckpointError(f"checkpoint kind {self.kind!r} is not one of {', '.join(MODEL_KINDS)}")
        if (self.kind == "adjoint_matching") != (self.base is not None):
            raise CheckpointError("an adjoint_matching checkpoint, and only one, carries its base flow")
        if self.solver not in ("sde", "ode") or (self.solver == "ode" and self.kind == "adjoint_sampling"):
            raise CheckpointError(f"solver {self.solver!r} does not sample a {self.kind} model")
        if not 0.0 <= float(self.control_from) < 1.0 or (self.control_from and self.kind != "adjoint_matching"):
            raise CheckpointError(f"control_from {self.control_from!r} needs an adjoint_matching checkpoint and [0, 1)")
        if not 0 <= int(self.quiet_steps) <= int(self.sde_steps) or (self.quiet_steps and self.kind != "adjoint_sampling"):
            raise CheckpointError(f"quiet_steps {self.quiet_steps!r} needs an adjoint_sampling checkpoint and "
                                  f"[0, sde_steps = {self.sde_steps}]")
        if int(self.descent_steps) < 0 or float(self.descent_step) < 0 or (
                self.descent_steps and (self.kind != "adjoint_sampling" or not self.descent_step > 0)):
            raise CheckpointError(f"descent_steps {self.descent_steps!r} / descent_step {self.descent_step!r}: "
                                  "an adjoint_sampling checkpoint takes steps >= 0 of a size > 0")
        if int(self.clash_repair_steps) < 0 or (self.clash_repair_steps and self.problem.get("mode") != "torsional"):
            raise CheckpointError(f"clash_repair_steps {self.clash_repair_steps!r}: a torsional model takes steps >= 0")
        if int(self.polish_steps) < 0 or not float(self.polish_step) > 0 or not self.polish_energy or (
                not float(self.polish_tolerance) >= 0) or (
                self.polish_steps and self.problem.get("mode") != "torsional"):
            raise CheckpointError(f"polish_steps {self.polish_steps!r} / polish_step {self.polish_step!r} / "
                                  f"polish_energy {self.polish_energy!r} / polish_tolerance {self.polish_tolerance!r}: "
                                  "a torsional model takes steps >= 0 of a size > 0 on a named backend, tolerance >= 0")
        if not float(self.select_from) >= 1.0 or not float(self.select_rmsd) >= 0.0:  # polish_energy checked above
            raise CheckpointError(f"select_from {self.select_from!r} / select_rmsd {self.select_rmsd!r}: a checkpoint "
                                  "takes select_from >= 1 and select_rmsd >= 0 angstrom (energies on polish_energy)")
        raw = float(self.relaxed_raw_select_from)
        if not float(self.relaxed_select_from) >= 1.0 or not float(self.relaxed_select_rmsd) >= 0.0 or (
                int(self.relaxed_prescreen_steps) < 0) or not (raw == 0.0 or raw >= 1.0):
            raise CheckpointError(f"relaxed_select_from {self.relaxed_select_from!r} / relaxed_select_rmsd "
                                  f"{self.relaxed_select_rmsd!r} / relaxed_prescreen_steps "
                                  f"{self.relaxed_prescreen_steps!r} / relaxed_raw_select_from {raw!r}: a checkpoint "
                                  "takes relaxed_select_from >= 1, relaxed_select_rmsd >= 0 angstrom, "
                                  "relaxed_prescreen_steps >= 0 and relaxed_raw_select_from 0 (off) or >= 1")
        if int(self.conformers_per_local_structure) < 1 or int(self.max_local_structures) < 1:
            raise CheckpointError(f"conformers_per_local_structure {self.conformers_per_local_structure!r} / "
                                  f"max_local_structures {self.max_local_structures!r}: a checkpoint takes both >= 1")

    def build_controller(self) -> nn.Module:
        """The controller (for a ``flow``: its velocity) with trained weights, in eval mode."""
        return _built(self.controller_name, self.controller_hparams, self.state_dict)

    def build_base_velocity(self) -> nn.Module:
        """The base flow's velocity of an ``adjoint_matching`` checkpoint, in eval mode."""
        if self.base is None:
            raise CheckpointError(f"a {self.kind} checkpoint has no base flow")
        return _built(self.base["controller_name"], self.base["controller_hparams"], self.base["state_dict"])

    def build_schedule(self) -> NoiseSchedule:
        return build_schedule(self.schedule_kind, **self.schedule_params)

    def time_grid(self) -> Tensor:
        """The sampling grid; a memoryless schedule's starts at its ``t_start``."""
        start = float(self.schedule_params.get("t_start", 0.0)) if self.schedule_kind == "memoryless" else 0.0
        return time_grid(self.sde_steps, self.grid_kind, power=self.grid_power, start=start)


def _built(name: str, hparams: dict[str, Any], state_dict: dict[str, Tensor]) -> nn.Module:
    model = build_controller(name, dict(hparams))
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit controller {name!r}: {exc}") from exc
    return model.eval()


def save_model_checkpoint(path: str | Path, checkpoint: ModelCheckpoint) -> None:
    """Write ``checkpoint`` atomically to ``path`` (package versions are filled in)."""
    data = asdict(checkpoint)
    data["state_dict"] = {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()}
    if checkpoint.base is not None:
        data["base"] = {**checkpoint.base,
                        "state_dict": {k: v.detach().cpu() for k, v in checkpoint.base["state_dict"].items()}}
    data["versions"] = {"adjoint_sampling": str(__version__), "torch": str(torch.__version__), **checkpoint.versions}
    data["format_version"] = FORMAT_VERSION
    atomic_torch_save(data, path)


def load_model_checkpoint(path: str | Path) -> ModelCheckpoint:
    """Read a checkpoint; ``CheckpointError`` if missing, corrupt or of an unknown format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} is not a model checkpoint")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks fields {missing}")
    if data["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {data['format_version']}, this code reads {FORMAT_VERSION}"
        )
    known = set(ModelCheckpoint.__dataclass_fields__)
    return ModelCheckpoint(**{k: v for k, v in data.items() if k in known})


def load_controller_weights(controller: nn.Module, path: str | Path, name: str) -> None:
    """Copy the weights of the model checkpoint at ``path`` into ``controller`` (registered as ``name``).

    ``CheckpointError`` if the checkpoint is unreadable or was made for another controller (other name
    or other hyper-parameters, compared with the controller's full ``hparams``).
    """
    ckpt = load_model_checkpoint(path)
    hparams = dict(getattr(controller, "hparams", {}))
    if ckpt.controller_name != name or dict(ckpt.controller_hparams) != hparams:
        raise CheckpointError(
            f"checkpoint {path} holds controller {ckpt.controller_name!r} {dict(ckpt.controller_hparams)}, "
            f"the config builds {name!r} {hparams}"
        )
    try:
        controller.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} weights do not fit controller {name!r}: {exc}") from exc
