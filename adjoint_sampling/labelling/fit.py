"""Supervised fit of the GNN potential (:mod:`adjoint_sampling.energy.gnn_model`) to labelled frames.

Reads the gzip extended XYZ files of the labelling job, groups frames by molecule, fits per-element
reference energies by least squares (float64), then trains with Adam on

    loss = w_E * MSE(E_pred - mean E_pred, E_ref - mean E_ref) + w_F * MSE(F_pred, F_ref)

where the energies are centred over the conformers of one molecule drawn in a step (kcal/mol,
kcal/mol/angstrom). ``run_dir`` holds ``train_state.pt`` (resumes after a kill), ``metrics.jsonl``,
``checkpoints/step-XXXXXXX.pt`` every ``checkpoint_every`` steps and the final ``gnn.pt``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adjoint_sampling.core.atomic_io import atomic_torch_save, atomic_write_text
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.gnn import save_gnn_checkpoint
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential, energy_and_forces
from adjoint_sampling.labelling.extxyz import read_frames
from adjoint_sampling.training.config import parse_dataclass

__all__ = ["FitConfig", "MoleculeFrames", "fit_config_from_dict", "fit_potential", "load_molecule_frames"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Options of :func:`fit_potential`.

    Attributes:
        hparams: overrides of :class:`GNNHParams` fields.
        steps: total optimiser steps.
        molecules_per_step / conformers_per_molecule: what one step draws.
        learning_rate: Adam learning rate (cosine decay to 10 % over ``steps``).
        energy_weight / force_weight: ``w_E`` and ``w_F``.
        checkpoint_every / log_every: in steps.
        train_splits / validation_splits: splits of the frames used for each.
        seed: initial weights and sampling order.
    """

    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000
    molecules_per_step: int = 4
    conformers_per_molecule: int = 8
    learning_rate: float = 2e-3
    energy_weight: float = 1.0
    force_weight: float = 10.0
    checkpoint_every: int = 500
    log_every: int = 10
    train_splits: tuple[str, ...] = ("train",)
    validation_splits: tuple[str, ...] = ("validation",)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "molecules_per_step", "conformers_per_molecule", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"fit {name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.energy_weight < 0 or self.force_weight < 0:
            raise ConfigError("fit learning_rate must be > 0 and the loss weights >= 0")
        GNNHParams.from_dict(self.hparams)  # unknown hyper-parameters fail here


def fit_config_from_dict(data: dict[str, Any]) -> FitConfig:
    """A :class:`FitConfig` from a mapping (the project's config reader: unknown keys refused)."""
    return parse_dataclass(FitConfig, data, "fit")


@dataclass
class MoleculeFrames:
    """Labelled conformers of one molecule: ``positions`` ``(K, N, 3)`` angstrom, ``energy`` ``(K,)`` float64
    kcal/mol, ``forces`` ``(K, N, 3)`` kcal/mol/angstrom, ``atomic_numbers`` ``(N,)``, total ``charge``."""

    mol_id: str
    atomic_numbers: torch.Tensor
    charge: int
    positions: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor


def load_molecule_frames(files: Sequence[str | Path], splits: Sequence[str]) -> list[MoleculeFrames]:
    """Frames of ``files`` in ``splits``, grouped by molecule (conformers of a molecule share atom order)."""
    groups: dict[str, list] = {}
    for path in files:
        for frame in read_frames(path):
            if frame.split in splits:
                groups.setdefault(frame.mol_id, []).append(frame)
    out = []
    for mol_id, frames in sorted(groups.items()):
        out.append(MoleculeFrames(
            mol_id=mol_id,
            atomic_numbers=torch.as_tensor(frames[0].atomic_numbers, dtype=torch.long),
            charge=int(frames[0].charge),
            positions=torch.as_tensor(np.stack([f.positions for f in frames]), dtype=torch.float64),
            energy=torch.tensor([f.energy_kcal_mol for f in frames], dtype=torch.float64),
            forces=torch.as_tensor(np.stack([f.forces_kcal_mol_a for f in frames]), dtype=torch.float64),
        ))
    return out


def _fit_references(molecules: list[MoleculeFrames], elements: tuple[int, ...]) -> torch.Tensor:
    """Least-squares per-element energies ``(S,)`` kcal/mol: ``E ~ sum_atoms ref[Z]`` over all frames."""
    column = {z: i for i, z in enumerate(elements)}
    rows, targets = [], []
    for mol in molecules:
        counts = torch.zeros(len(elements), dtype=torch.float64)
        for z in mol.atomic_numbers.tolist():
            counts[column[z]] += 1
        rows.append(counts.expand(len(mol.energy), -1))
        targets.append(mol.energy)
    a, b = torch.cat(rows), torch.cat(targets)
    used = a.abs().sum(0) > 0
    ref = torch.zeros(len(elements), dtype=torch.float64)
    ridge = 1e-8 * torch.eye(int(used.sum()), dtype=torch.float64)
    au = a[:, used]
    ref[used] = torch.linalg.solve(au.T @ au + ridge, au.T @ b)
    return ref


def _describe(files: Sequence[str | Path], molecules: list[MoleculeFrames], splits: Sequence[str]) -> dict[str, Any]:
    return {
        "files": [str(Path(f).name) for f in files],
        "splits": list(splits),
        "num_molecules": len(molecules),
        "num_frames": int(sum(len(m.energy) for m in molecules)),
        "max_atoms": max(int(m.atomic_numbers.numel()) for m in molecules),
        "elements": sorted({int(z) for m in molecules for z in m.atomic_numbers.tolist()}),
        "charges": sorted({m.charge for m in molecules}),
        "level_of_theory": "GFN2-xTB (tblite)",
    }


def _step_loss(
    model: GNNPotential, mol: MoleculeFrames, idx: torch.Tensor, config: FitConfig
) -> dict[str, torch.Tensor]:
    """Loss and energy / force MSEs on conformers ``idx`` ``(k,)`` of ``mol``."""
    dtype = model.species_embedding.weight.dtype
    energy, forces = energy_and_forces(model, mol.positions[idx].to(dtype), mol.atomic_numbers, mol.charge,
                                       create_graph=model.training)
    target_e = mol.energy[idx]
    e_err = (energy - energy.mean()) - (target_e - target_e.mean())
    f_err = forces.to(torch.float64) - mol.forces[idx]
    e_mse, f_mse = e_err.pow(2).mean(), f_err.pow(2).mean()
    return {"loss": config.energy_weight * e_mse + config.force_weight * f_mse, "energy_mse": e_mse, "force_mse": f_mse}


def _validate(model: GNNPotential, molecules: list[MoleculeFrames], config: FitConfig) -> dict[str, float]:
    model.eval()
    e_sum = f_sum = 0.0
    for mol in molecules:
        out = _step_loss(model, mol, torch.arange(len(mol.energy)), config)
        e_sum, f_sum = e_sum + float(out["energy_mse"].detach()), f_sum + float(out["force_mse"].detach())
    model.train()
    n = max(len(molecules), 1)
    return {"validation_energy_rmse": math.sqrt(e_sum / n), "validation_force_rmse": math.sqrt(f_sum / n)}


def _log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def fit_potential(data_files: Sequence[str | Path], config: FitConfig, run_dir: str | Path) -> Path:
    """Fit a :class:`GNNPotential` to the labelled frames of ``data_files``; returns the final checkpoint path.

    Resumes from ``run_dir/train_state.pt`` when it exists (the config must be the same).

    Raises:
        ConfigError: no training frames, an element or charge the model cannot embed, or a
            different config in an existing ``run_dir``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train = load_molecule_frames(data_files, config.train_splits)
    if not train:
        raise ConfigError(f"no frames of splits {list(config.train_splits)} in {len(data_files)} file(s)")
    validation = load_molecule_frames(data_files, config.validation_splits)
    hp = GNNHParams.from_dict(config.hparams)
    description = _describe(data_files, train, config.train_splits)
    unsupported = sorted(set(description["elements"]) - set(hp.elements))
    if unsupported:
        raise ConfigError(f"training data has elements {unsupported} that the model does not embed")
    charges = description["charges"]
    if charges[0] < hp.min_charge or charges[-1] > hp.max_charge:
        raise ConfigError(f"training data has charges {charges} outside [{hp.min_charge}, {hp.max_charge}]")

    torch.manual_seed(config.seed)
    model = GNNPotential(hp)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(s / config.steps, 1.0)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    state_path = run_dir / "train_state.pt"
    config_dict = asdict(config)
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["config"] != json.loads(json.dumps(config_dict)):
            raise ConfigError(f"{run_dir} holds a run with a different fit config")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        _truncate_metrics(run_dir, step)
        logger.info("resuming the GNN fit in %s at step %d", run_dir, step)
    else:
        model.atom_reference.copy_(_fit_references(train, hp.elements))
        force_rms = torch.cat([m.forces.flatten() for m in train]).pow(2).mean().sqrt()
        model.energy_scale.fill_(float(force_rms) if force_rms > 0 else 1.0)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)

    def save_state() -> None:
        atomic_torch_save({
            "config": json.loads(json.dumps(config_dict)), "step": step, "model": model.state_dict(),
            "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(), "generator": generator.get_state(),
        }, state_path)

    def save_checkpoint(path: Path, metrics: dict[str, Any]) -> None:
        save_gnn_checkpoint(path, model, elements=tuple(description["elements"]),
                            charge_range=(charges[0], charges[-1]), training_data=description, metrics=metrics)

    model.train()
    started = time.perf_counter()
    while step < config.steps:
        optimiser.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "energy_mse": 0.0, "force_mse": 0.0}
        picks = torch.randint(len(train), (config.molecules_per_step,), generator=generator)
        for m in picks.tolist():
            mol = train[m]
            idx = torch.randperm(len(mol.energy), generator=generator)[: config.conformers_per_molecule]
            out = _step_loss(model, mol, idx, config)
            (out["loss"] / config.molecules_per_step).backward()
            for key in totals:
                totals[key] += float(out[key].detach()) / config.molecules_per_step
        optimiser.step()
        schedule.step()
        step += 1
        record: dict[str, Any] = {}
        if step % config.log_every == 0 or step == config.steps:
            record = {"step": step, "loss": totals["loss"], "energy_rmse": math.sqrt(totals["energy_mse"]),
                      "force_rmse": math.sqrt(totals["force_mse"]), "lr": schedule.get_last_lr()[0],
                      "elapsed_s": round(time.perf_counter() - started, 3)}
        checkpoint_now = step % config.checkpoint_every == 0 or step == config.steps
        if checkpoint_now and validation:
            record.update({"step": step, **_validate(model, validation, config)})
        if record:
            _log(run_dir, record)
            logger.info("gnn fit %s", record)
        if checkpoint_now:  # after the log: a resume drops records newer than the state and redoes them
            save_checkpoint(run_dir / "checkpoints" / f"step-{step:07d}.pt", record)
            save_state()
    final = run_dir / "gnn.pt"
    save_checkpoint(final, {"step": step})
    return final


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric records written after the saved state (they are written again on resume)."""
    path = run_dir / "metrics.jsonl"
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        atomic_write_text(path, "".join(line + "\n" for line in kept))
