"""fairchem-core (eSEN / UMA) energy backend from a local checkpoint file.

Loading goes through ``fairchem.core.units.mlip_unit.load_predict_unit`` with CPU-safe inference
settings (no compile, no MOLE merge, no activation checkpointing); conformers are batched
through the predict unit directly. Charge and spin multiplicity go into every structure
(``atoms.info["charge"]`` / ``["spin"]``, the ``omol`` convention). Units: fairchem's eV and
eV/angstrom are converted to kcal/mol and kcal/mol/angstrom.

:func:`save_random_esen_checkpoint` writes a small randomly initialised eSEN checkpoint in the
same format as a released one (an ``MLIPInferenceCheckpoint``), for tests and smoke runs.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.errors import CheckpointError, ConfigError
from adjoint_sampling.core.units import EV_TO_KCAL
from adjoint_sampling.energy.base import EnergyModel, EnergyResult

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_GRAPH_RADIUS = 6.0
_LOAD_ERRORS = (
    OSError,
    EOFError,
    KeyError,
    AttributeError,
    TypeError,
    ValueError,
    RuntimeError,
    pickle.UnpicklingError,
)
"""What a missing, truncated or foreign file raises inside torch.load / hydra instantiation."""


@contextlib.contextmanager
def _preserved_rng_state() -> Iterator[None]:
    """fairchem reseeds the global RNGs when it loads a model; keep the caller's streams intact."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def _inference_settings(dtype: torch.dtype):
    from fairchem.core.units.mlip_unit.api.inference import InferenceSettings

    return InferenceSettings(
        tf32=False,
        activation_checkpointing=False,
        merge_mole=False,
        compile=False,
        external_graph_gen=False,
        auto_add_default_untrained_tasks=False,
        base_precision_dtype=dtype,
    )


class FairChemEnergy(EnergyModel):
    """Energies and forces from a fairchem-core checkpoint (eSEN or UMA).

    Args:
        checkpoint_path: a local ``.pt`` inference checkpoint (no download happens).
        task_name: dataset/task head, ``"omol"`` for molecules.
        device: ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` (default) or ``"float64"`` model precision.
        max_batch_size: conformers per forward pass.

    Raises:
        CheckpointError: the file is missing or is not a fairchem inference checkpoint.
        ConfigError: unknown task, device or dtype, or the task has no energy/forces outputs.
    """

    name = "fairchem"

    def __init__(
        self,
        checkpoint_path: str | Path,
        task_name: str = "omol",
        device: str = "cpu",
        dtype: str = "float32",
        max_batch_size: int = 64,
    ) -> None:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise CheckpointError(f"fairchem checkpoint not found: {path}")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"fairchem device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("fairchem device 'cuda' requested but no CUDA device is available")
        if dtype not in _DTYPES:
            raise ConfigError(f"fairchem dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if max_batch_size < 1:
            raise ConfigError(f"fairchem max_batch_size must be >= 1, got {max_batch_size}")
        from fairchem.core.units.mlip_unit import load_predict_unit

        self.checkpoint_path = path
        self.task_name = task_name
        self.device = device
        self.dtype = _DTYPES[dtype]
        self.max_batch_size = int(max_batch_size)
        try:
            with _preserved_rng_state():
                self.predict_unit = load_predict_unit(
                    str(path), inference_settings=_inference_settings(self.dtype), device=device
                )
        except _LOAD_ERRORS as exc:
            raise CheckpointError(f"cannot load fairchem checkpoint {path}: {exc}") from exc
        tasks = self.predict_unit.dataset_to_tasks
        if task_name not in tasks:
            raise ConfigError(f"fairchem task {task_name!r} not in checkpoint; available: {', '.join(tasks)}")
        by_property = {t.property: t.name for t in tasks[task_name]}
        if "energy" not in by_property or "forces" not in by_property:
            raise ConfigError(
                f"fairchem task {task_name!r} must predict energy and forces, has {', '.join(by_property)}"
            )
        self._energy_key = by_property["energy"]
        self._lock = threading.Lock()  # the predict unit is not safe to call from several threads
        self._forces_key = by_property["forces"]

    def _atomic_data(self, system: AtomicSystem, positions: np.ndarray):
        from ase import Atoms
        from fairchem.core.datasets.atomic_data import AtomicData

        atoms = Atoms(numbers=system.atomic_numbers.cpu().numpy(), positions=positions)
        atoms.info["charge"] = int(system.charge)
        atoms.info["spin"] = int(system.multiplicity)
        return AtomicData.from_ase(
            atoms,
            task_name=self.task_name,
            r_edges=False,
            r_data_keys=["spin", "charge"],
            radius=_GRAPH_RADIUS,
            target_dtype=self.dtype,
        )

    def _predict(self, system: AtomicSystem, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies ``(b,)`` eV and forces ``(b, N, 3)`` eV/angstrom of ``positions`` ``(b, N, 3)``."""
        from fairchem.core.datasets.atomic_data import atomicdata_list_to_batch

        batch = atomicdata_list_to_batch([self._atomic_data(system, p) for p in positions])
        with self._lock:
            output = self.predict_unit.predict(batch)
        energy = output[self._energy_key].detach().to("cpu", torch.float64).reshape(-1).numpy()
        forces = output[self._forces_key].detach().to("cpu", torch.float64).numpy()
        return energy, forces.reshape(positions.shape)

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Energies ``(B,)`` kcal/mol and forces ``(B, N, 3)`` kcal/mol/angstrom.

        ``positions`` is ``(B, N, 3)`` angstrom.
        """
        pos = positions.detach().to("cpu", torch.float64).numpy()
        if pos.ndim != 3 or pos.shape[1:] != (system.num_atoms, 3):
            raise ValueError(f"positions must be (B, {system.num_atoms}, 3), got {tuple(pos.shape)}")
        batch = pos.shape[0]
        energy = np.full(batch, np.nan)
        forces = np.zeros_like(pos)
        finite = np.isfinite(pos).reshape(batch, -1).all(axis=1)
        todo = np.flatnonzero(finite)
        for start in range(0, todo.size, self.max_batch_size):
            idx = todo[start : start + self.max_batch_size]
            e, f = self._predict(system, pos[idx])
            energy[idx] = e * EV_TO_KCAL
            forces[idx] = f * EV_TO_KCAL
        ok = finite & np.isfinite(energy) & np.isfinite(forces).reshape(batch, -1).all(axis=1)
        reasons = [
            "non-finite positions" if not finite[b] else "fairchem returned a non-finite energy or forces"
            for b in range(batch)
            if not ok[b]
        ]
        energy[~ok] = np.nan
        forces[~ok] = 0.0
        return EnergyResult(
            energy=torch.from_numpy(energy),
            forces=torch.from_numpy(forces),
            ok=torch.from_numpy(ok),
            failure_reasons=tuple(reasons),
        )


def _task_config(name: str, level: str, prop: str, dim: list[int], task_name: str) -> dict:
    return {
        "_target_": "fairchem.core.units.mlip_unit.mlip_unit.Task",
        "name": name,
        "level": level,
        "property": prop,
        "out_spec": {"_target_": "fairchem.core.units.mlip_unit.mlip_unit.OutputSpec", "dim": dim, "dtype": "float32"},
        "normalizer": {
            "_target_": "fairchem.core.modules.normalization.normalizer.Normalizer",
            "mean": 0.0,
            "rmsd": 1.0,
        },
        "datasets": [task_name],
    }


def save_random_esen_checkpoint(
    path: str | Path,
    *,
    num_layers: int = 2,
    channels: int = 32,
    lmax: int = 2,
    cutoff: float = 6.0,
    num_distance_basis: int = 64,
    task_name: str = "omol",
    seed: int = 0,
) -> Path:
    """Build a randomly initialised energy-conserving eSEN model and save it as a checkpoint.

    The file is an ``MLIPInferenceCheckpoint`` (model config, state dict, EMA state dict, tasks
    config), loadable with :class:`FairChemEnergy` exactly like a released checkpoint. The model
    embeds charge and spin, and predicts energy (eV) with forces as its negative gradient.

    Returns:
        the path written.
    """
    import hydra.utils
    from fairchem.core.units.mlip_unit.api.inference import MLIPInferenceCheckpoint

    backbone = {
        "model": "fairchem.core.models.uma.escn_md.eSCNMDBackbone",
        "max_num_elements": 100,
        "sphere_channels": channels,
        "hidden_channels": channels,
        "edge_channels": channels,
        "lmax": lmax,
        "mmax": min(lmax, 2),
        "num_layers": num_layers,
        "cutoff": cutoff,
        "num_distance_basis": num_distance_basis,
        "otf_graph": True,
        "max_neighbors": 300,
        "direct_forces": False,
        "regress_forces": True,
        "always_use_pbc": False,
        "chg_spin_emb_type": "pos_emb",
        "dataset_mapping": {task_name: task_name},
    }
    heads = {"energyandforcehead": {"module": "fairchem.core.models.uma.escn_md.MLP_EFS_Head", "wrap_property": True}}
    model_config = {
        "_target_": "fairchem.core.models.base.HydraModel",
        "backbone": backbone,
        "heads": heads,
        "pass_through_head_outputs": True,
        "otf_graph": True,
    }
    tasks_config = [
        _task_config("energy", "system", "energy", [1], task_name),
        _task_config("forces", "atom", "forces", [3], task_name),
    ]
    with _preserved_rng_state():
        torch.manual_seed(seed)
        model = hydra.utils.instantiate(model_config)
    ema = torch.optim.swa_utils.AveragedModel(model)
    checkpoint = MLIPInferenceCheckpoint(
        model_config=model_config,
        model_state_dict=model.state_dict(),
        ema_state_dict=ema.state_dict(),
        tasks_config=tasks_config,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    logger.info("saved a random %d-layer, %d-channel eSEN checkpoint to %s", num_layers, channels, path)
    return path
