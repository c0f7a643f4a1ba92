"""describe_machine: the line that tells which machine computed a result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actcore.machine import cpu_model, describe_machine


def test_a_cpu_is_named_with_the_kernels_torch_uses_on_it():
    line = describe_machine("cpu")
    assert line == f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels"
    assert describe_machine(torch.device("cpu")) == line


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="Linux's /proc/cpuinfo")
def test_the_cpu_generation_is_named_not_only_its_brand():
    """Two generations can share a model name ("AMD EPYC"): family and model tell them
    apart."""
    text = Path("/proc/cpuinfo").read_text()
    if "cpu family" not in text:
        pytest.skip("this CPU's /proc/cpuinfo gives no family (not x86)")
    family = next(line.split(":")[1].strip() for line in text.splitlines()
                  if line.startswith("cpu family"))  # fmt: skip
    assert f"family {family} model " in cpu_model()


def test_other_kernels_on_the_same_cpu_are_another_machine():
    """torch's generic kernels (``ATEN_CPU_CAPABILITY=default``) round differently from
    its vectorised ones: the line says which ran."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    code = "from actcore.machine import describe_machine; print(describe_machine())"
    line = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert line == f"{cpu_model()}, DEFAULT kernels"
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        assert line != describe_machine()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_gpu_is_named_by_its_device_name():
    assert describe_machine("cuda").startswith(torch.cuda.get_device_name(0))
