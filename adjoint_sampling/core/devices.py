"""Which torch device a job runs on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""

from __future__ import annotations

import torch

from adjoint_sampling.core.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str | None, default: str = "cpu") -> torch.device:
    """``name`` (None: ``default``) as a ``torch.device``; ``auto`` is CUDA when this torch sees a device.

    Raises:
        ConfigError: an unknown or unsupported device name, or CUDA asked for where there is none.
    """
    text = (name or default).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"unknown device {text!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {text!r}: use cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {text!r} asked for, but this torch build sees no CUDA device")
    return device
