"""Build an energy backend by name: ``build_energy("mmff" | "xtb" | "fairchem" | "gnn", **kwargs)``.

Backends with heavy imports (tblite, fairchem) are imported only when asked for.
"""

from __future__ import annotations

from typing import Any

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.base import EnergyModel

ENERGY_BACKENDS: tuple[str, ...] = ("mmff", "xtb", "fairchem", "gnn")


def build_energy(name: str, **kwargs: Any) -> EnergyModel:
    """Construct the backend ``name`` with keyword arguments of its constructor.

    ``"mmff"``: :class:`energy.mmff.MMFFEnergy`; ``"xtb"``: :class:`energy.xtb.XTBEnergy`;
    ``"fairchem"``: :class:`energy.fairchem_backend.FairChemEnergy` (needs ``checkpoint_path``);
    ``"gnn"``: :class:`energy.gnn.GNNEnergy` (needs ``checkpoint_path``).

    Raises:
        ConfigError: unknown name or arguments the backend does not take.
    """
    if name == "mmff":
        from adjoint_sampling.energy.mmff import MMFFEnergy as backend
    elif name == "xtb":
        from adjoint_sampling.energy.xtb import XTBEnergy as backend
    elif name == "fairchem":
        from adjoint_sampling.energy.fairchem_backend import FairChemEnergy as backend
    elif name == "gnn":
        from adjoint_sampling.energy.gnn import GNNEnergy as backend
    else:
        raise ConfigError(f"unknown energy backend {name!r}; choose one of {', '.join(ENERGY_BACKENDS)}")
    try:
        return backend(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid options for energy backend {name!r}: {exc}") from exc
