"""The package version (kept in one place; checkpoints and responses carry it)."""

__version__ = "0.1.0"
