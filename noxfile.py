"""nox sessions for the act monorepo.

torch alone is a 5 GB install, so no session installs it: ``./dev setup`` builds one base
virtualenv (``.venv``) from ``requirements/base.txt`` with the third-party packages only,
and every session venv gets a ``.pth`` file that puts the base's site-packages on its
path. pip then sees torch as installed, and a session costs seconds, not minutes. The act
packages are never in the base: each session installs exactly the act packages it needs.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import nox

ROOT = Path(__file__).parent
BASE_SITE = sysconfig.get_paths()["purelib"]  # nox runs from the base venv (./dev)

# act's packages; each pyproject names the act packages it needs (they flow one way:
# actcore <- acthull; actcore <- actfim <- actbench <- actsearch).
PACKAGES = ["actcore", "acthull", "actfim", "actbench", "actsearch"]
EXAMPLES = ["examples/act-cube", "examples/act-idw-regressor"]

nox.options.sessions = ["lint", *PACKAGES, "examples", "integration", "other_cpu", "docs"]

# Tests whose results must not depend on the CPU: run again under torch's generic kernels
# and numba's generic target, which compute float32 functions and UMAP layouts otherwise,
# and acthull's native kernel built for baseline x86-64 alone (no AVX).
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "NUMBA_CPU_NAME": "generic",
             "ACT_HULL_KERNEL_TARGETS": "default"}
CPU_SENSITIVE = [
    "packages/acthull/tests/test_native.py",
    "packages/actcore/tests/test_equivalence.py",
    "packages/actbench/tests/test_shipped_tables.py",
    "packages/actbench/tests/test_tables.py",
    "packages/actbench/tests/test_precision.py",
    "packages/actsearch/tests/test_replay.py",
    "packages/actsearch/tests/test_live.py",
]
nox.options.reuse_existing_virtualenvs = False


def _share_base(session: nox.Session) -> None:
    """Make the base venv's packages (torch, ...) importable in the session venv."""
    site = session.run(
        "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        silent=True,
    ).strip()
    Path(site, "_act_base.pth").write_text(BASE_SITE + "\n")


def _install(session: nox.Session, *packages: str, editable: bool = False) -> None:
    """Install through the documented ``./dev install`` road (scripts/install.py), which
    adds the act packages each one needs."""
    _share_base(session)
    pip = ["--no-build-isolation", "--disable-pip-version-check", "--quiet"]
    session.run("python", str(ROOT / "scripts" / "install.py"), *packages, "--", *pip,
                *(["-e"] if editable else []))


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run(
        "python", "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
        *paths, *session.posargs,
    )


def _package_session(name: str):
    def run(session: nox.Session) -> None:
        _install(session, name)
        _pytest(session, f"packages/{name}/tests")

    run.__doc__ = (f"In a fresh venv, ./dev install {name} (it and the act packages it "
                   "needs, nothing else); run its tests.")
    return run


for _name in PACKAGES:
    nox.session(name=_name)(_package_session(_name))


@nox.session
def examples(session: nox.Session) -> None:
    """Install the example third-party plugins and prove act discovers them."""
    _install(session, *EXAMPLES)
    _pytest(session, *(f"{example}/tests" for example in EXAMPLES))


#: what users build the seeds' own networks with (MobileViTv2, CoAtNet): tested for real
TIMM = "timm==1.0.31"


@nox.session
def integration(session: nox.Session) -> None:
    """Every package installed together, and timm; cross-package tests."""
    _install(session, *PACKAGES)
    session.install("--disable-pip-version-check", "--quiet", TIMM)
    _pytest(session, "tests")


@nox.session
def other_cpu(session: nox.Session) -> None:
    """Equivalence, table and search tests again on an emulated other CPU."""
    _install(session, *PACKAGES)
    session.env.update(OTHER_CPU)
    _pytest(session, *CPU_SENSITIVE)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built from scratch with warnings as errors: the tutorials
    run, and the API and CLI references come from the installed packages."""
    _install(session, *PACKAGES)
    session.chdir(ROOT / "docs")
    session.run("python", "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
                ".", "_build/html", env={"MPLBACKEND": "Agg"})


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.run(str(Path(BASE_SITE).parents[2] / "bin" / "ruff"), "check", str(ROOT))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on built-in data (see README)."""
    _install(session, *PACKAGES, editable=True)
    session.run("bash", str(ROOT / "scripts" / "demo.sh"), *session.posargs, external=True)


@nox.session
def act(session: nox.Session) -> None:
    """Run the act command with every package installed (editable): ./dev act ARGS."""
    _install(session, *PACKAGES, editable=True)
    session.run("act", *session.posargs)
