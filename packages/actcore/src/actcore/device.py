"""One rule for device names given by users: a clear error instead of torch's."""

from __future__ import annotations

import torch

from actcore.errors import ActError


def parse_device(name: str | torch.device) -> torch.device:
    """``name`` as a :class:`torch.device` of a kind act runs on (cpu, cuda, cuda:N),
    whether or not this machine has it: a setting checked where it is made, for workers
    elsewhere (a Dask cluster's) to resolve."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ActError(f"unknown device {str(name)!r} (use cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ActError(f"device {str(name)!r} is not supported (use cpu, cuda or cuda:N)")
    return device


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``name`` as a :class:`torch.device` of this machine; ``None`` means CUDA when
    available, else CPU.

    Unknown names and CUDA devices this machine does not have raise :class:`ActError`.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ActError(f"device {str(name)!r}, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ActError(
                f"device {str(name)!r}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return device
