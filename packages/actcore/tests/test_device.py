"""Device names: a setting is checked where it is made; a device is resolved where it runs."""

from __future__ import annotations

import pytest
import torch

from actcore import ActError
from actcore.device import parse_device, resolve_device


def test_a_device_name_is_checked_without_the_device():
    """A Dask worker with a GPU may run what a machine without one sets up."""
    assert parse_device("cuda:1") == torch.device("cuda", 1)
    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ActError, match="unknown device 'gpu'"):
        parse_device("gpu")
    with pytest.raises(ActError, match=r"device 'meta' is not supported \(use cpu"):
        parse_device("meta")


def test_a_device_is_resolved_on_this_machine():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ActError, match="not supported"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ActError, match="'cuda:0', but no CUDA device is available"):
            resolve_device("cuda:0")
    else:
        count = torch.cuda.device_count()
        with pytest.raises(ActError, match=f"this machine has {count} CUDA device"):
            resolve_device(f"cuda:{count}")
