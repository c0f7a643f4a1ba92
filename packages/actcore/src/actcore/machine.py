"""Which machine computed a result, in one line, so that mixed provenance shows.

A long job (a table build across sittings, a 100-epoch grid resumed from checkpoints, a
Dask cluster) can run on several machines. float32 results depend on the kernels that
computed them: torch picks its CPU kernels by instruction set (AVX-512, AVX2, or
generic code, the last also under ``ATEN_CPU_CAPABILITY=default``), so the same training
on two CPUs lands a few images apart. Records carry :func:`describe_machine` to tell
which rows came from where. A CPU's marketing name alone does not say it (two
generations of one vendor's server CPUs can share it), so the line also gives the
CPU's family and model numbers and the kernels torch chose.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch


@functools.cache
def cpu_model() -> str:
    """The CPU's name with its family and model numbers where the system gives them
    (Linux's ``/proc/cpuinfo``), else the platform's processor string."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" not in fields or "model" not in fields:
        return name
    return f"{name} ({platform.machine()} family {fields['cpu family']} model {fields['model']})"


def describe_machine(device: torch.device | str = "cpu") -> str:
    """One line naming what computes on ``device``: the GPU's name, or the CPU with the
    kernels torch uses on it (e.g. ``AMD EPYC (x86_64 family 25 model 1), AVX2 kernels``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels"
