"""Versions of installed act packages (``__version__``, ``act --version``).

act's packages are imported as ``actcore``, ``acthull``, ... but distributed under the
``actfn-`` names below: ``actbench`` on the package index is an unrelated project, so no
act message may advise ``pip install actbench``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, entry_points, version

# import name -> distribution name on the package index (the names act owns)
DISTRIBUTIONS = {
    "actcore": "actfn-core",
    "acthull": "actfn-hull",
    "actfim": "actfn-fim",
    "actbench": "actfn-bench",
    "actsearch": "actfn-search",
}


def install_hint(name: str) -> str:
    """How to install the act package imported as ``name``: from the repository, since
    act is not on the package index yet."""
    return (f"install it with `./dev install {name}` in the act repository (distribution "
            f"{DISTRIBUTIONS[name]}, with the act packages it needs)")


def package_version(name: str) -> str:
    """The installed version of the act package imported as ``name`` (or of any other
    distribution); ``0+unknown`` for a source tree imported without being installed."""
    try:
        return version(DISTRIBUTIONS.get(name, name))
    except PackageNotFoundError:
        return "0+unknown"


def plugin_versions() -> dict[str, str]:
    """Every installed distribution that plugs into act (its own packages included),
    act's own under their import names."""
    from actcore.plugins import ENTRY_POINT_GROUP

    imports = {dist: name for name, dist in DISTRIBUTIONS.items()}
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None:
            name = ep.dist.name
            label = f"{imports[name]} ({name})" if name in imports else name
            found[label] = ep.dist.version
    return dict(sorted(found.items()))
