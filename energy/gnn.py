"""Energy backend of our own GNN potential (:mod:`energy.gnn_model`, distilled from GFN2-xTB).

A checkpoint is a self-describing ``torch.save`` dict: hyper-parameters, weights, the elements and
total-charge range it supports, a description of its training data and the library versions; it
loads without any config. Units: angstrom in, kcal/mol and kcal/mol/angstrom out (float64).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adjoint_sampling.core.atomic_io import atomic_torch_save
from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import CheckpointError, ConfigError, InvalidMoleculeError
from adjoint_sampling.core.version import __version__
from adjoint_sampling.energy.base import EnergyModel, EnergyResult
from adjoint_sampling.energy.gnn_compile import compile_e3nn_codegen
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential, energy_and_forces

__all__ = [
    "COMPILE_ENV", "EXTRAPOLATION_WARNING", "GNN_FORMAT", "GNNCheckpoint", "GNNEnergy", "load_gnn_checkpoint", "save_gnn_checkpoint",
]

logger = logging.getLogger(__name__)

GNN_FORMAT = "adjoint_sampling.gnn_potential"
COMPILE_ENV = "AS_GNN_COMPILE"
"""``1``: backends built without an explicit ``compiled`` compile their e3nn code."""
EXTRAPOLATION_WARNING = "gnn_extrapolation"
"""Code of the warning for a molecule larger than any in the training data."""
GNN_FORMAT_VERSION = 2
"""2: ``nequip`` messages vanish smoothly at the cutoff (``smooth_messages``); format 1 files load without it."""
_REQUIRED = ("format", "format_version", "hparams", "state_dict", "elements", "charge_range")
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe"
).split()


def element_symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (``Z=<z>`` beyond xenon)."""
    return _SYMBOLS[z] if 0 < z < len(_SYMBOLS) else f"Z={z}"


@dataclass
class GNNCheckpoint:
    """Contents of a GNN potential checkpoint.

    Attributes:
        hparams: the architecture.
        state_dict: weights and fitted buffers (``atom_reference``, ``energy_scale``).
        elements: atomic numbers the potential may be used for.
        charge_range: ``(min, max)`` total charges it may be used for.
        training_data: free description (files, frames, molecules, ``max_atoms``, level of theory).
        metrics: last training / validation metrics, if any.
        versions: library versions at save time.
    """

    hparams: GNNHParams
    state_dict: dict[str, torch.Tensor]
    elements: tuple[int, ...]
    charge_range: tuple[int, int]
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def build_model(self) -> GNNPotential:
        """The :class:`GNNPotential` with these weights, in eval mode."""
        model = GNNPotential(self.hparams)
        model.load_state_dict(self.state_dict)
        return model.eval()


def _versions() -> dict[str, str]:
    import e3nn

    return {"adjoint_sampling": str(__version__), "torch": str(torch.__version__), "e3nn": str(e3nn.__version__)}


def save_gnn_checkpoint(
    path: str | Path,
    model: GNNPotential,
    elements: tuple[int, ...] | None = None,
    charge_range: tuple[int, int] | None = None,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` atomically to ``path`` as a self-describing checkpoint.

    ``elements`` / ``charge_range`` default to everything the architecture embeds; pass the ones
    the training data covered.
    """
    hp = model.hparams
    elements = tuple(int(z) for z in (elements if elements is not None else hp.elements))
    charge_range = tuple(int(c) for c in (charge_range if charge_range is not None else (hp.min_charge, hp.max_charge)))
    if not set(elements) <= set(hp.elements):
        raise ConfigError(f"elements {sorted(set(elements) - set(hp.elements))} are not embedded by the model")
    if not hp.min_charge <= charge_range[0] <= charge_range[1] <= hp.max_charge:
        raise ConfigError(f"charge range {charge_range} is outside the model's [{hp.min_charge}, {hp.max_charge}]")
    payload = {
        "format": GNN_FORMAT,
        "format_version": GNN_FORMAT_VERSION,
        "hparams": hp.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "elements": list(elements),
        "charge_range": list(charge_range),
        "training_data": dict(training_data or {}),
        "metrics": dict(metrics or {}),
        "versions": _versions(),
    }
    atomic_torch_save(payload, path)


def load_gnn_checkpoint(path: str | Path) -> GNNCheckpoint:
    """Read a checkpoint written by :func:`save_gnn_checkpoint`.

    Raises:
        CheckpointError: missing file, unreadable or not a GNN potential checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GNN checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means a corrupt file
        raise CheckpointError(f"cannot read GNN checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != GNN_FORMAT:
        raise CheckpointError(f"{path} is not a GNN potential checkpoint")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"GNN checkpoint {path} lacks {', '.join(missing)}")
    if int(data["format_version"]) > GNN_FORMAT_VERSION:
        version = data["format_version"]
        raise CheckpointError(f"GNN checkpoint {path} has format version {version}, newer than this code")
    low, high = (int(c) for c in data["charge_range"])
    return GNNCheckpoint(
        hparams=GNNHParams.from_dict(
            data["hparams"] if int(data["format_version"]) >= 2 else {**data["hparams"], "smooth_messages": False}
        ),
        state_dict=data["state_dict"],
        elements=tuple(int(z) for z in data["elements"]),
        charge_range=(low, high),
        training_data=dict(data.get("training_data", {})),
        metrics=dict(data.get("metrics", {})),
        versions=dict(data.get("versions", {})),
    )


class GNNEnergy(EnergyModel):
    """Energies and forces of :class:`GNNPotential` behind the batched backend interface.

    Args:
        checkpoint_path: a checkpoint of :func:`save_gnn_checkpoint`; or
        checkpoint: an already loaded :class:`GNNCheckpoint` (for example random weights in tests).
        dtype: ``"float32"`` (default, fast) or ``"float64"`` for the network.
        max_batch: conformers per network call (bounds memory).
        compiled: compile the network's e3nn tensor products and linear maps (:mod:`energy.gnn_compile`:
            1.5 to 2.5x faster on a CPU after a first call of seconds); ``None`` reads
            ``AS_GNN_COMPILE`` (``1`` to compile), default off.

    Conformers with non-finite positions get ``ok=False``; everything else is computed.
    """

    name = "gnn"

    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        checkpoint: GNNCheckpoint | None = None,
        dtype: str = "float32",
        max_batch: int = 64,
        compiled: bool | None = None,
    ) -> None:
        if (checkpoint_path is None) == (checkpoint is None):
            raise ConfigError("gnn energy needs exactly one of checkpoint_path or checkpoint")
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"gnn dtype must be float32 or float64, got {dtype!r}")
        if max_batch < 1:
            raise ConfigError(f"gnn max_batch must be >= 1, got {max_batch}")
        self.checkpoint = checkpoint if checkpoint is not None else load_gnn_checkpoint(checkpoint_path)
        self.model = self.checkpoint.build_model()
        self.model.network.to(getattr(torch, dtype))  # the fitted float64 buffers stay float64
        for p in self.model.parameters():
            p.requires_grad_(False)
        if compiled is None:
            compiled = os.environ.get(COMPILE_ENV, "").strip().lower() in ("1", "true", "yes")
        self.compiled = bool(compiled) and compile_e3nn_codegen(self.model) > 0
        self.max_batch = int(max_batch)
        self.max_train_atoms = self.checkpoint.training_data.get("max_atoms")
        self._warned: set[str] = set()

    def warm_up(self) -> None:
        """One small batched call (a bent triatomic of the first supported element, or water), so that a
        compiled model compiles now rather than in its first caller's request."""
        numbers = (8, 1, 1) if {1, 8} <= set(self.checkpoint.elements) else (self.checkpoint.elements[0],) * 3
        system = AtomicSystem(atomic_numbers=torch.tensor(numbers), key="warm-up")
        bent = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
        self.energy_and_forces(system, torch.stack([bent, 1.05 * bent]))

    def check_system(self, system: AtomicSystem) -> None:
        """Refuse elements and charges the checkpoint does not support; warn for large molecules.

        Raises:
            InvalidMoleculeError: ``unsupported_element``, naming the elements; ``unsupported_charge``,
                a total charge outside the checkpoint's range, naming it.
        """
        present = {int(z) for z in system.atomic_numbers.tolist()}
        unsupported = sorted(present - set(self.checkpoint.elements))
        if unsupported:
            names = ", ".join(element_symbol(z) for z in unsupported)
            allowed = " ".join(element_symbol(z) for z in self.checkpoint.elements)
            raise InvalidMoleculeError(
                "unsupported_element", f"the GNN potential does not support element(s) {names} (supported: {allowed})"
            )
        low, high = self.checkpoint.charge_range
        if not low <= int(system.charge) <= high:
            raise InvalidMoleculeError(
                "unsupported_charge",
                f"the GNN potential does not support total charge {system.charge} (supported: {low}..{high})",
            )
        if self._extrapolates(system):
            key = system.key or str(system.num_atoms)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "molecule with %d atoms is larger than any in the GNN's training data (%d atoms); "
                    "energies may be less accurate", system.num_atoms, int(self.max_train_atoms),
                )

    def _extrapolates(self, system: AtomicSystem) -> bool:
        """Whether ``system`` has more atoms than any molecule of the training data."""
        return self.max_train_atoms is not None and system.num_atoms > int(self.max_train_atoms)

    def applicability_warnings(self, system: AtomicSystem) -> tuple[str, ...]:
        """``gnn_extrapolation`` when ``system`` has more atoms than any molecule of the training data
        (``training_data["max_atoms"]`` of the checkpoint)."""
        if not self._extrapolates(system):
            return ()
        return (
            f"{EXTRAPOLATION_WARNING}: the molecule has {system.num_atoms} atoms, more than any in the GNN energy "
            f"model's training data ({int(self.max_train_atoms)}); its energies and relaxed geometries may be less "
            "accurate",
        )

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Energies ``(B,)`` kcal/mol, forces ``(B, N, 3)`` kcal/mol/A at ``positions`` ``(B, N, 3)`` angstrom."""
        if positions.dim() != 3 or tuple(positions.shape[1:]) != (system.num_atoms, 3):
            raise ValueError(f"positions must be (B, {system.num_atoms}, 3), got {tuple(positions.shape)}")
        self.check_system(system)
        pos = positions.detach().to("cpu", torch.float64)
        batch = pos.shape[0]
        energy = torch.full((batch,), float("nan"), dtype=torch.float64)
        forces = torch.zeros_like(pos)
        ok = torch.isfinite(pos).flatten(1).all(dim=1)
        todo = torch.nonzero(ok).flatten()
        numbers = system.atomic_numbers.to("cpu", torch.long)
        dtype = next(self.model.parameters()).dtype
        for start in range(0, todo.numel(), self.max_batch):
            idx = todo[start : start + self.max_batch]
            e, f = energy_and_forces(self.model, pos[idx].to(dtype), numbers, int(system.charge))
            energy[idx] = e.detach().to(torch.float64)
            forces[idx] = f.detach().to(torch.float64)
        bad = ok & ~(torch.isfinite(energy) & torch.isfinite(forces).flatten(1).all(dim=1))
        forces[bad] = 0.0
        energy[bad] = float("nan")
        reasons = tuple(
            "non-finite positions" if not good else "non-finite GNN output"
            for good, failed in zip(ok.tolist(), bad.tolist())
            if failed or not good
        )
        return EnergyResult(energy=energy, forces=forces, ok=ok & ~bad, failure_reasons=reasons)
