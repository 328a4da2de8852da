"""Subcommands of the ``adjoint-sampling`` CLI: each module has ``add_arguments`` and ``run``."""
