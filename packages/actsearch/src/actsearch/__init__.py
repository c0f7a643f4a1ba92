"""actsearch: surrogate search for activation functions (features, embeddings,
regressors, strategies, replay and live search)."""

from actcore.versions import package_version

__version__ = package_version("actsearch")
