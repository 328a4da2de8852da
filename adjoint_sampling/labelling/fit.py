"""Supervised fit of a GNN potential (:mod:`adjoint_sampling.energy.gnn_model`) to labelled frames.

Reads the gzip extended XYZ files of the labelling job, groups frames by molecule, fits per-element
reference energies by least squares (float64), then trains with Adam on

    loss = w_E * MSE(E_pred - mean_m E_pred, E_ref - mean_m E_ref) + w_F * MSE(F_pred, F_ref)

where ``mean_m`` is over the conformers of the same molecule drawn in the step (kcal/mol,
kcal/mol/angstrom). One step packs ``molecules_per_step x conformers_per_molecule`` conformers into
one graph (one network call), so it runs well on a GPU. Weights are averaged (EMA) for validation
and checkpoints. Under ``torchrun`` every rank draws its own molecules and gradients are averaged.

``run_dir`` holds ``train_state.pt`` (resumes after a kill), ``metrics.jsonl``,
``checkpoints/step-XXXXXXX.pt`` every ``checkpoint_every`` steps and the final ``gnn.pt``.
"""

from __future__ import annotations

import copy
import dataclasses
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
from adjoint_sampling.core.devices import resolve_device
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.gnn import load_gnn_checkpoint, save_gnn_checkpoint
from adjoint_sampling.energy.gnn_graph import concat_graphs
from adjoint_sampling.energy.gnn_model import GNNHParams, GNNPotential
from adjoint_sampling.labelling.extxyz import frames_by_molecule
from adjoint_sampling.labelling.pack import is_pack, read_pack
from adjoint_sampling.training.config import parse_dataclass
from adjoint_sampling.training.distributed import DistributedContext

__all__ = ["FitConfig", "MoleculeFrames", "fit_config_from_dict", "fit_potential", "load_molecule_frames"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Options of :func:`fit_potential`.

    Attributes:
        hparams: overrides of :class:`GNNHParams` fields (``architecture`` among them).
        steps: total optimiser steps.
        molecules_per_step / conformers_per_molecule: what one step draws (per rank).
        learning_rate: Adam learning rate (linear warm-up over ``warmup_steps``, then cosine decay
            to 10 % at ``steps``).
        warmup_steps: steps of the linear warm-up.
        energy_weight / force_weight: ``w_E`` and ``w_F``.
        ema_decay: decay of the weight average used for validation and checkpoints (0: none).
        low_energy_temperature / low_energy_floor: frame weights of the loss that favour each
            molecule's low-energy conformers (:func:`frame_weights`; temperature 0: equal weights).
        grad_clip: maximal gradient norm.
        checkpoint_every / log_every: in steps.
        train_splits / validation_splits: splits of the frames used for each.
        seed: initial weights and sampling order.
        init_from: a GNN checkpoint whose weights and fitted references start a new run (the same
            hyper-parameters, except ``smooth_messages``, which has no weights of its own); a resumed
            run continues from its own state instead.
    """

    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000
    molecules_per_step: int = 4
    conformers_per_molecule: int = 8
    learning_rate: float = 2e-3
    warmup_steps: int = 0
    energy_weight: float = 1.0
    force_weight: float = 10.0
    ema_decay: float = 0.0
    low_energy_temperature: float = 0.0
    low_energy_floor: float = 0.1
    grad_clip: float = 100.0
    checkpoint_every: int = 500
    log_every: int = 10
    train_splits: tuple[str, ...] = ("train",)
    validation_splits: tuple[str, ...] = ("validation",)
    seed: int = 0
    init_from: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "molecules_per_step", "conformers_per_molecule", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"fit {name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.energy_weight < 0 or self.force_weight < 0 or self.grad_clip <= 0:
            raise ConfigError("fit learning_rate and grad_clip must be > 0 and the loss weights >= 0")
        if self.low_energy_temperature < 0 or not 0.0 < self.low_energy_floor <= 1.0:
            raise ConfigError("fit low_energy_temperature must be >= 0 and low_energy_floor in (0, 1]")
        if not 0.0 <= self.ema_decay < 1.0 or self.warmup_steps < 0:
            raise ConfigError("fit ema_decay must be in [0, 1) and warmup_steps >= 0")
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

    def to(self, device: torch.device | str) -> MoleculeFrames:
        return MoleculeFrames(self.mol_id, self.atomic_numbers.to(device), self.charge, self.positions.to(device),
                              self.energy.to(device), self.forces.to(device))


def load_molecule_frames(files: Sequence[str | Path], splits: Sequence[str]) -> list[MoleculeFrames]:
    """Frames of ``files`` in ``splits``, one :class:`MoleculeFrames` per molecule, in ``mol_id`` order:
    extxyz files grouped by :func:`frames_by_molecule`, packs (:mod:`~adjoint_sampling.labelling.pack`) as packed."""
    extxyz = [f for f in files if not is_pack(f)]
    molecules = [
        MoleculeFrames(
            mol_id=frames[0].mol_id,
            atomic_numbers=torch.as_tensor(frames[0].atomic_numbers, dtype=torch.long),
            charge=int(frames[0].charge),
            positions=torch.as_tensor(np.stack([f.positions for f in frames]), dtype=torch.float64),
            energy=torch.tensor([f.energy_kcal_mol for f in frames], dtype=torch.float64),
            forces=torch.as_tensor(np.stack([f.forces_kcal_mol_a for f in frames]), dtype=torch.float64),
        )
        for frames in (frames_by_molecule(extxyz, splits) if extxyz else [])
    ]
    for path in (f for f in files if is_pack(f)):
        molecules.extend(
            MoleculeFrames(mol_id=m.mol_id, atomic_numbers=torch.as_tensor(m.atomic_numbers, dtype=torch.long),
                           charge=m.charge, positions=torch.as_tensor(m.positions), energy=torch.as_tensor(m.energy),
                           forces=torch.as_tensor(m.forces))
            for m in read_pack(path, splits)
        )
    return sorted(molecules, key=lambda m: m.mol_id)


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
        "files": [f"{Path(f).parent.name}/{Path(f).name}" for f in files],
        "splits": list(splits),
        "num_molecules": len(molecules),
        "num_frames": int(sum(len(m.energy) for m in molecules)),
        "max_atoms": max(int(m.atomic_numbers.numel()) for m in molecules),
        "elements": sorted({int(z) for m in molecules for z in m.atomic_numbers.tolist()}),
        "charges": sorted({m.charge for m in molecules}),
        "level_of_theory": "GFN2-xTB (tblite)",
    }


def predict(
    model: GNNPotential, picks: Sequence[tuple[MoleculeFrames, torch.Tensor]], create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Energies ``(C,)`` float64, forces ``(C, N_c, 3)`` flattened to ``(A, 3)`` and molecule index ``(C,)``
    of conformers ``idx`` of each picked molecule, in one network call."""
    leaves, graphs = [], []
    for k, (mol, idx) in enumerate(picks):
        pos = mol.positions[idx].to(model.dtype).requires_grad_(True)
        leaves.append(pos)
        graphs.append(model.graph(pos, mol.atomic_numbers, mol.charge, molecule=k))
    graph = concat_graphs(graphs)
    with torch.enable_grad():
        energy = model.graph_energy(graph)
        grads = torch.autograd.grad(energy.sum(), leaves, create_graph=create_graph)
    forces = torch.cat([-g.reshape(-1, 3) for g in grads])
    return energy, forces, graph.molecule


def _centred(values: torch.Tensor, groups: torch.Tensor, num_groups: int, weights: torch.Tensor) -> torch.Tensor:
    """``values`` ``(C,)`` minus the ``weights``-weighted mean of their group."""
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add(0, groups, weights * values)
    totals = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add(0, groups, weights)
    return values - (sums / totals)[groups]


def frame_weights(mol: MoleculeFrames, idx: torch.Tensor, config: FitConfig) -> torch.Tensor:
    """Loss weights ``(k,)`` of conformers ``idx`` of ``mol``: ``floor + (1 - floor) exp(-(E - E_min) / T)``
    with ``E_min`` the molecule's lowest labelled energy and ``T = low_energy_temperature`` (kcal/mol);
    all ones when ``T`` is 0."""
    energy = mol.energy[idx]
    if config.low_energy_temperature <= 0:
        return torch.ones_like(energy)
    decay = torch.exp(-(energy - mol.energy.min()) / config.low_energy_temperature)
    return config.low_energy_floor + (1.0 - config.low_energy_floor) * decay


def _step_loss(
    model: GNNPotential, picks: Sequence[tuple[MoleculeFrames, torch.Tensor]], config: FitConfig
) -> dict[str, torch.Tensor]:
    """Loss and (frame-weighted, :func:`frame_weights`) energy / force MSEs on the picked conformers
    ``[(molecule, idx (k,))]``."""
    energy, forces, groups = predict(model, picks, create_graph=model.training)
    target_e = torch.cat([mol.energy[idx] for mol, idx in picks])
    target_f = torch.cat([mol.forces[idx].reshape(-1, 3) for mol, idx in picks])
    per_pick = [frame_weights(mol, idx, config) for mol, idx in picks]
    weights = torch.cat(per_pick)
    atom_weights = torch.cat([w.repeat_interleave(mol.atomic_numbers.numel()) for w, (mol, _) in zip(per_pick, picks)])
    n = len(picks)
    e_err = _centred(energy, groups, n, weights) - _centred(target_e, groups, n, weights)
    f_err = forces.to(torch.float64) - target_f
    e_mse = (weights * e_err.pow(2)).sum() / weights.sum()
    f_mse = (atom_weights[:, None] * f_err.pow(2)).sum() / (3 * atom_weights.sum())
    return {"loss": config.energy_weight * e_mse + config.force_weight * f_mse, "energy_mse": e_mse, "force_mse": f_mse}


def evaluate(model: GNNPotential, molecules: Sequence[MoleculeFrames], max_batch: int = 64) -> dict[str, float]:
    """Held-out metrics: mean per-molecule MAE of relative energies (each molecule's energies minus
    their mean, kcal/mol), force MAE per component (kcal/mol/A) and their RMSEs."""
    was_training = model.training
    model.eval()
    e_mae, e_mse, f_abs, f_sq, f_count = [], [], 0.0, 0.0, 0
    for mol in molecules:
        energies, forces = [], []
        for start in range(0, len(mol.energy), max_batch):
            idx = torch.arange(start, min(start + max_batch, len(mol.energy)), device=mol.energy.device)
            e, f, _ = predict(model, [(mol, idx)], create_graph=False)
            energies.append(e.detach())
            forces.append(f.detach().to(torch.float64))
        e_err = torch.cat(energies) - mol.energy
        e_err = e_err - e_err.mean()
        f_err = torch.cat(forces) - mol.forces.reshape(-1, 3)
        e_mae.append(float(e_err.abs().mean()))
        e_mse.append(float(e_err.pow(2).mean()))
        f_abs += float(f_err.abs().sum())
        f_sq += float(f_err.pow(2).sum())
        f_count += f_err.numel()
    model.train(was_training)
    n = max(len(molecules), 1)
    return {
        "energy_mae": sum(e_mae) / n, "energy_rmse": math.sqrt(sum(e_mse) / n),
        "force_mae": f_abs / max(f_count, 1), "force_rmse": math.sqrt(f_sq / max(f_count, 1)),
    }


def _log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _lr_factor(step: int, config: FitConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(step / config.steps, 1.0)))


def fit_potential(
    data_files: Sequence[str | Path],
    config: FitConfig,
    run_dir: str | Path,
    device: str | None = None,
    dist: DistributedContext | None = None,
) -> Path:
    """Fit a :class:`GNNPotential` to the labelled frames of ``data_files``; returns the final checkpoint path.

    Resumes from ``run_dir/train_state.pt`` when it exists (the config must be the same; the device
    may differ). ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``/None (CUDA when available).
    ``dist``: the torchrun context (one process when None); rank 0 writes the files.

    Raises:
        ConfigError: no training frames, an element or charge the model cannot embed, or a
            different config in an existing ``run_dir``.
    """
    dist = dist or DistributedContext()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device, default="auto")
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
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _lr_factor(s, config))
    generator = torch.Generator().manual_seed(config.seed + 1000 * dist.rank)
    state_path = run_dir / "train_state.pt"
    config_dict = json.loads(json.dumps(asdict(config)))
    step = 0
    ema: GNNPotential | None = None
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if fit_config_from_dict(state["config"]) != config:  # options added later take their defaults
            raise ConfigError(f"{run_dir} holds a run with a different fit config")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generators"][dist.rank] if "generators" in state else state["generator"])
        step = int(state["step"])
        if state.get("ema") is not None:
            ema = copy.deepcopy(model)
            ema.load_state_dict(state["ema"])
        if dist.is_main:
            _truncate_metrics(run_dir, step)
        logger.info("resuming the GNN fit in %s at step %d", run_dir, step)
    elif config.init_from:
        start = load_gnn_checkpoint(config.init_from)
        if dataclasses.replace(start.hparams, smooth_messages=hp.smooth_messages) != hp:  # same weights either way
            raise ConfigError(f"init_from {config.init_from} has other hyper-parameters than this fit")
        model.load_state_dict(start.state_dict)
        logger.info("GNN weights initialised from %s", config.init_from)
        if dist.is_main:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    else:
        model.atom_reference.copy_(_fit_references(train, hp.elements))
        force_rms = torch.cat([m.forces.flatten() for m in train]).pow(2).mean().sqrt()
        model.energy_scale.fill_(float(force_rms) if force_rms > 0 else 1.0)
        if dist.is_main:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    if config.ema_decay > 0 and ema is None:
        ema = copy.deepcopy(model)
    model.to(dev)
    _optimiser_to(optimiser, dev)
    if ema is not None:
        ema.to(dev).eval()
    train = [m.to(dev) for m in train]
    validation = [m.to(dev) for m in validation]
    averaged = ema if ema is not None else model

    def save_state() -> None:
        generators = dist.gather_states(generator.get_state())
        if dist.is_main:
            atomic_torch_save({
                "config": config_dict, "step": step, "model": model.state_dict(),
                "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(), "generators": generators,
                "ema": ema.state_dict() if ema is not None else None,
            }, state_path)

    def save_checkpoint(path: Path, metrics: dict[str, Any]) -> None:
        if dist.is_main:
            save_gnn_checkpoint(path, averaged, elements=tuple(description["elements"]),
                                charge_range=(charges[0], charges[-1]), training_data=description, metrics=metrics)

    model.train()
    started = time.perf_counter()
    while step < config.steps:
        optimiser.zero_grad(set_to_none=True)
        molecule_ids = torch.randint(len(train), (config.molecules_per_step,), generator=generator).tolist()
        picks = []
        for m in molecule_ids:
            count = len(train[m].energy)
            idx = torch.randperm(count, generator=generator)[: config.conformers_per_molecule]
            picks.append((train[m], idx.to(dev)))
        out = _step_loss(model, picks, config)
        out["loss"].backward()
        dist.average_gradients(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        schedule.step()
        if ema is not None:
            _update_ema(ema, model, config.ema_decay)
        step += 1
        record: dict[str, Any] = {}
        if step % config.log_every == 0 or step == config.steps:
            totals = dist.mean([float(out[k].detach()) for k in ("loss", "energy_mse", "force_mse")])
            record = {"step": step, "loss": totals[0], "energy_rmse": math.sqrt(totals[1]),
                      "force_rmse": math.sqrt(totals[2]), "lr": schedule.get_last_lr()[0],
                      "elapsed_s": round(time.perf_counter() - started, 3)}
        checkpoint_now = step % config.checkpoint_every == 0 or step == config.steps
        if checkpoint_now and validation and dist.is_main:
            metrics = evaluate(averaged, validation)
            record.update({"step": step, **{f"validation_{k}": v for k, v in metrics.items()}})
        if record and dist.is_main:
            _log(run_dir, record)
            logger.info("gnn fit %s", record)
        if checkpoint_now:  # after the log: a resume drops records newer than the state and redoes them
            save_checkpoint(run_dir / "checkpoints" / f"step-{step:07d}.pt", record)
            save_state()
    final = run_dir / "gnn.pt"
    save_checkpoint(final, {"step": step})
    dist.barrier()
    return final


def _optimiser_to(optimiser: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimiser.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                state[key] = value.to(device)


@torch.no_grad()
def _update_ema(ema: GNNPotential, model: GNNPotential, decay: float) -> None:
    for avg, new in zip(ema.parameters(), model.parameters()):
        avg.lerp_(new, 1.0 - decay)
    for avg, new in zip(ema.buffers(), model.buffers()):
        avg.copy_(new)


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric records written after the saved state (they are written again on resume)."""
    path = run_dir / "metrics.jsonl"
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        atomic_write_text(path, "".join(line + "\n" for line in kept))
