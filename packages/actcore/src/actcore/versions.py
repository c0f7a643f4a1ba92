"""Versions of installed act packages (``__version__``, ``act --version``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, entry_points, version


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``; ``0+unknown`` for a source tree that
    is imported without being installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0+unknown"


def plugin_versions() -> dict[str, str]:
    """Every installed distribution that plugs into act (its own packages included)."""
    from actcore.plugins import ENTRY_POINT_GROUP

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None:
            found[ep.dist.name] = ep.dist.version
    return dict(sorted(found.items()))
