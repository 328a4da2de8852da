"""Adjoint Sampling: amortized conformer sampling with a neural SDE trained from energies only."""

__version__ = "0.1.0"
