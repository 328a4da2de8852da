"""GFN2-xTB energy backend through tblite (the level of theory of the CREST references).

Charge and unpaired electrons (``uhf = multiplicity - 1``) come from the :class:`AtomicSystem`.
Conformers are spread over a thread pool (tblite's C calls release the GIL); each worker owns its
own calculator. A conformer whose SCF does not converge (or any tblite error) gets ``ok=False``
and a reason, it never raises. Units: hartree and bohr converted to kcal/mol and angstrom.

Set ``OMP_NUM_THREADS=1`` when using several workers, otherwise every calculation also starts
an OpenMP team and the cores are oversubscribed.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from adjoint_sampling.core.atomic_system import AtomicSystem
from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.units import BOHR_TO_ANGSTROM, HARTREE_TO_KCAL
from adjoint_sampling.energy.base import EnergyModel, EnergyResult

logger = logging.getLogger(__name__)

XTB_METHODS: tuple[str, ...] = ("GFN2-xTB", "GFN1-xTB")


class XTBEnergy(EnergyModel):
    """GFN2-xTB (or GFN1-xTB) single points with tblite, batched over a thread pool.

    Args:
        method: ``"GFN2-xTB"`` (default) or ``"GFN1-xTB"``.
        num_workers: parallel calculations; default: the cores available to this process.
        max_iterations: SCF iteration limit (tblite default 250).
        accuracy: tblite numerical accuracy (1.0 default; smaller is tighter).
        electronic_temperature_k: Fermi smearing temperature in kelvin (tblite default 300 K).
    """

    name = "xtb"

    def __init__(
        self,
        method: str = "GFN2-xTB",
        num_workers: int | None = None,
        max_iterations: int = 250,
        accuracy: float = 1.0,
        electronic_temperature_k: float = 300.0,
    ) -> None:
        if method not in XTB_METHODS:
            raise ConfigError(f"unknown xTB method {method!r}; choose one of {', '.join(XTB_METHODS)}")
        if max_iterations < 1:
            raise ConfigError(f"xtb max_iterations must be >= 1, got {max_iterations}")
        if num_workers is not None and num_workers < 1:
            raise ConfigError(f"xtb num_workers must be >= 1, got {num_workers}")
        self.method = method
        self.num_workers = int(num_workers) if num_workers is not None else available_cores()
        self.max_iterations = int(max_iterations)
        self.accuracy = float(accuracy)
        self.electronic_temperature_k = float(electronic_temperature_k)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _single_point(self, numbers: np.ndarray, positions_bohr: np.ndarray, charge: int, uhf: int):
        """Energy (hartree) and gradient (hartree/bohr) of one conformer, or the failure reason."""
        from tblite.exceptions import TBLiteRuntimeError, TBLiteValueError
        from tblite.interface import Calculator

        if not np.isfinite(positions_bohr).all():
            return None, None, "non-finite positions"
        try:
            calc = Calculator(self.method, numbers, positions_bohr, charge=float(charge), uhf=int(uhf))
            calc.set("verbosity", 0)
            calc.set("max-iter", self.max_iterations)
            calc.set("accuracy", self.accuracy)
            calc.set("temperature", self.electronic_temperature_k * 3.166808578545117e-6)
            result = calc.singlepoint()
            energy = float(result.get("energy"))
            gradient = np.asarray(result.get("gradient"), dtype=np.float64)
        except (TBLiteRuntimeError, TBLiteValueError) as exc:
            return None, None, f"xtb failed: {exc}"
        if not (math.isfinite(energy) and np.isfinite(gradient).all()):
            return None, None, "xtb returned a non-finite energy or gradient"
        return energy, gradient, None

    def energy_and_forces(self, system: AtomicSystem, positions: torch.Tensor) -> EnergyResult:
        """Energies ``(B,)`` kcal/mol and forces ``(B, N, 3)`` kcal/mol/angstrom.

        ``positions`` is ``(B, N, 3)`` angstrom.
        """
        pos = positions.detach().to("cpu", torch.float64).numpy()
        if pos.ndim != 3 or pos.shape[1:] != (system.num_atoms, 3):
            raise ValueError(f"positions must be (B, {system.num_atoms}, 3), got {tuple(pos.shape)}")
        numbers = system.atomic_numbers.cpu().numpy().astype(np.int32)
        positions_bohr = pos / BOHR_TO_ANGSTROM
        args = [(numbers, positions_bohr[b], system.charge, system.unpaired_electrons) for b in range(pos.shape[0])]
        if self.num_workers > 1 and len(args) > 1:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="xtb")
                pool = self._pool
            outputs = list(pool.map(lambda a: self._single_point(*a), args))
        else:
            outputs = [self._single_point(*a) for a in args]
        batch = pos.shape[0]
        energy = np.full(batch, np.nan)
        forces = np.zeros_like(pos)
        ok = np.zeros(batch, dtype=bool)
        reasons = []
        for b, (e, grad, reason) in enumerate(outputs):
            if reason is not None:
                reasons.append(reason)
                continue
            energy[b] = e * HARTREE_TO_KCAL
            forces[b] = -grad * (HARTREE_TO_KCAL / BOHR_TO_ANGSTROM)
            ok[b] = True
        if reasons:
            logger.warning("xtb: %d of %d conformers failed (first: %s)", len(reasons), batch, reasons[0])
        return EnergyResult(
            energy=torch.from_numpy(energy),
            forces=torch.from_numpy(forces),
            ok=torch.from_numpy(ok),
            failure_reasons=tuple(reasons),
        )

    def close(self) -> None:
        """Shut the worker pool down (it is recreated on the next call)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
