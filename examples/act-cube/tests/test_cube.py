"""act-cube installed for real: act discovers it through the entry point."""

import subprocess
import sys
from pathlib import Path

import torch

from actcore import Space, core_operators, equivalence_classes, plugins, to_module

ACT = Path(sys.executable).parent / "act"


def act(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ACT), *args], capture_output=True, text=True, timeout=120)


def test_act_ops_lists_cube_from_its_plugin():
    result = act("ops")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:-1]}
    assert rows["cube"][1:] == ["1", "cube"]  # arity 1, plugin "cube"
    assert rows["relu"][1:] == ["1", "core"]


def test_schema_with_cube_counts_and_lists():
    result = act("space", "count", "cube(unary(x))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "27"
    result = act("space", "list", "unary(x)", "--operators", "cube,relu")
    assert result.stdout.split() == ["relu(x)", "cube(x)"]  # registry order


def test_operator_subset_with_cube():
    space = Space("binary(unary(x),unary(x))", operators=[*core_operators(), "cube"])
    assert len(space) == 7 * 28 * 28
    assert "mul(cube(x),relu(x))" in space
    classes = equivalence_classes(Space("unary(unary(x))", operators=["cube", "identity"]))
    # cube(identity(x)) == identity(cube(x)) == cube(x); identity(identity(x)) == x
    assert sorted(classes.representatives) == [
        "cube(cube(x))",
        "cube(identity(x))",
        "identity(identity(x))",
    ]


def test_cube_compiles_and_is_x_cubed():
    plugins.reset()
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.equal(to_module("cube(x)")(x), x**3)
    assert plugins.registry(plugins.OPERATORS).provider("cube") == "cube"


def test_disabling_the_plugin_removes_cube():
    result = act("--disable", "cube", "space", "count", "cube(unary(x))")
    assert result.returncode == 2
    assert "unknown operator 'cube'" in result.stderr
