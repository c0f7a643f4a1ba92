"""actsearch: surrogate search for activation functions (features, embeddings,
regressors, strategies, replay and live search).

The public names load on first use: act's command line imports this package for its
plugin, and must not pay for scikit-learn and UMAP on every command.
"""

from importlib import import_module

from actcore.versions import package_version

__version__ = package_version("actsearch")

_HOMES = {
    "BASELINES": "features",
    "Features": "features",
    "output_features": "features",
    "embed": "embedding",
    "SearchConfig": "config",
    "run_search": "live",
    "Regressor": "regressors",
    "get_regressor": "regressors",
    "Algorithm": "replay",
    "SearchState": "strategies",
    "Strategy": "strategies",
    "get_strategy": "strategies",
    "Evaluation": "study",
    "Study": "study",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"actsearch.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'actsearch' has no attribute {name!r}")
