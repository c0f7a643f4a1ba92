"""./dev install resolves act packages from their pyprojects, dependencies first."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("act_install", ROOT / "scripts" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def names(paths: list[str]) -> list[str]:
    return [Path(p.split("[")[0]).name for p in paths]


def test_each_package_brings_the_act_packages_it_needs():
    known = install.local_packages()
    assert names(install.resolve(["actfim"], known)) == ["actcore", "actfim"]
    assert names(install.resolve(["actfn-search"], known)) == [
        "actcore", "actfim", "actbench", "actsearch"]
    assert names(install.resolve(["act-idw-regressor", "acthull"], known)) == [
        "actcore", "actfim", "actbench", "actsearch", "act-idw-regressor", "acthull"]
    assert install.resolve(["actbench[distributed]"], known)[-1].endswith("actbench[distributed]")


def test_every_act_distribution_is_named_as_the_readme_says():
    from actcore.versions import DISTRIBUTIONS

    known = install.local_packages()
    assert {folder.name: dist for dist, (folder, _) in known.items()
            if folder.parent.name == "packages"} == DISTRIBUTIONS
    readme = (ROOT / "README.md").read_text()
    for dist in DISTRIBUTIONS.values():
        assert f"`{dist}`" in readme, f"the README does not name the distribution {dist}"


def test_an_unknown_package_is_named():
    with pytest.raises(SystemExit, match="no act package 'actfimm'"):
        install.resolve(["actfimm"], install.local_packages())
