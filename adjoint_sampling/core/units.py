"""Units used everywhere inside the project.

Internal units: energies in kcal/mol, lengths in angstrom, forces in kcal/mol/angstrom.
The user-facing temperature is in kelvin; :func:`kelvin_to_tau` turns it into kT in kcal/mol.
"""

from __future__ import annotations

BOLTZMANN_KCAL_PER_MOL_K: float = 0.0019872041
"""Boltzmann constant k_B in kcal/(mol K)."""

HARTREE_TO_KCAL: float = 627.509474
"""1 hartree in kcal/mol."""

EV_TO_KCAL: float = 23.060547830619
"""1 eV in kcal/mol."""

BOHR_TO_ANGSTROM: float = 0.529177210903
"""1 bohr in angstrom."""


def kelvin_to_tau(temperature_k: float) -> float:
    """Return kT in kcal/mol for a temperature in kelvin (must be > 0)."""
    if not temperature_k > 0:
        raise ValueError(f"temperature must be positive kelvin, got {temperature_k}")
    return BOLTZMANN_KCAL_PER_MOL_K * float(temperature_k)
