"""The plugin registry: pluggy hooks collected per kind, looked up by name.

Plugins are loaded from the ``act`` entry-point group (act's own packages use it too).
A plugin is disabled by name through the ``ACT_DISABLE_PLUGINS`` environment variable
(comma separated), ``act --disable NAME`` or :func:`disable`; plugins can also be
registered at run time with :func:`register` (handy in notebooks and tests).

Plugins load in a fixed order — actcore's own first, then by entry-point name — so
listings are stable and a name clash blames the plugin that came later. Registries are
built lazily, once per kind, and rebuilt after any change to the plugins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from actcore import hookspecs
from actcore.errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "act"
DISABLE_ENV = "ACT_DISABLE_PLUGINS"
CORE = "core"  # entry-point name of actcore's own plugin (the published operator table)

T = TypeVar("T")


@dataclass(frozen=True)
class Kind(Generic[T]):
    """A kind of plugin item: its human name and the hook that returns the items."""

    name: str
    hook: str


#: actcore's own kinds; other packages declare theirs next to their hookspecs
#: (``actbench.hookspecs.DATASETS``, ``actsearch.hookspecs.REGRESSORS``...).
OPERATORS: Kind[Any] = Kind("operator", "act_operators")
#: models by name: actcore calls them (``--model``), actbench's zoo provides them
MODELS: Kind[Any] = Kind("model", "act_models")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item and the plugin that provided it."""

    name: str
    item: T
    plugin: str


class Registry(Generic[T]):
    """The items of one kind from all active plugins, by name."""

    def __init__(self, kind: Kind[T], entries: dict[str, Entry[T]]):
        self.kind = kind
        self._entries = entries

    def get(self, name: str) -> T:
        """The item called ``name``; an :class:`UnknownNameError` lists close matches."""
        try:
            return self._entries[name].item
        except KeyError:
            raise UnknownNameError(self.kind.name, name, self._entries) from None

    def provider(self, name: str) -> str:
        """Name of the plugin that provides ``name``."""
        self.get(name)
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


_manager: pluggy.PluginManager | None = None
_registries: dict[Kind[Any], Registry[Any]] = {}
_disabled: set[str] = set()


def _disabled_names() -> set[str]:
    from_env = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    return from_env | _disabled


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with entry-point plugins loaded."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        # historic: every plugin registered from now on gets to add its hookspecs
        manager.hook.act_addhooks.call_historic(kwargs={"pluginmanager": manager})
        _load_entry_points(manager, _disabled_names())
        _check_pending(manager)
        _manager = manager
    return _manager


def _check_pending(manager: pluggy.PluginManager) -> None:
    """An implementation of a hook that no package declares is a misspelt hook (or one
    of a package that is not installed): pluggy's ``check_pending`` turns it into an error
    here, naming the plugin and the closest declared hook, instead of silence."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError:
        import difflib

        declared = [n for n, h in vars(manager.hook).items() if h.has_spec()]
        for name, hook in vars(manager.hook).items():
            impls = [] if hook.has_spec() else [i for i in hook.get_hookimpls()
                                                 if not i.optionalhook]
            if impls:
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(
                    f"plugin {impls[0].plugin_name!r} implements {name!r}, a hook that no "
                    f"installed act package declares{hint}"
                ) from None
        raise


def _load_entry_points(manager: pluggy.PluginManager, disabled: set[str]) -> None:
    """Register every plugin of the ``act`` group; a broken one is named in the error."""
    seen: set[str] = set()
    # a fixed order whatever the install order: actcore's own plugin, then by name
    ordered = sorted(
        entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name != CORE, ep.name)
    )
    _check_installed(disabled, [ep.name for ep in ordered])
    for ep in ordered:
        if ep.name in disabled or ep.name in seen:
            continue
        seen.add(ep.name)
        try:
            plugin = ep.load()
        except Exception as err:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: "
                f"{type(err).__name__}: {err}; disable it with {DISABLE_ENV}={ep.name}"
            ) from err
        manager.register(plugin, name=ep.name)


def registry(kind: Kind[T]) -> Registry[T]:
    """The registry of ``kind``, built from every active plugin's hook."""
    if kind not in _registries:
        _registries[kind] = _collect(kind)
    return _registries[kind]


def _collect(kind: Kind[T]) -> Registry[T]:
    manager = plugin_manager()
    caller = getattr(manager.hook, kind.hook, None)
    entries: dict[str, Entry[T]] = {}
    if caller is None or not caller.has_spec():
        return Registry(kind, entries)  # the package declaring the kind is not installed
    # One call through pluggy (tryfirst/trylast and wrappers apply). pluggy calls the
    # implementations last-registered first and keeps one result per implementation; read
    # back in registration order, built-ins come first and a clash blames the later plugin.
    impls = [i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
    results = caller()
    if len(results) != len(impls):
        empty = [i.plugin_name for i in impls if i.function() is None]
        raise PluginError(f"{kind.hook} of plugin {(empty or ['?'])[0]!r} returned nothing: "
                          f"an implementation returns a list of {kind.name}s (or a hook "
                          "wrapper dropped a result)")
    for impl, items in zip(impls, reversed(results), strict=True):
        for item in items or ():
            name = item.name
            if name in entries:
                raise PluginError(
                    f"{kind.name} {name!r} is provided by both plugin "
                    f"{entries[name].plugin!r} and plugin {impl.plugin_name!r}; "
                    f"disable one of them ({DISABLE_ENV}={impl.plugin_name})"
                )
            entries[name] = Entry(name, item, impl.plugin_name)
    return Registry(kind, entries)


def register(plugin: object, name: str) -> None:
    """Register a plugin object at run time (in addition to entry points)."""
    manager = plugin_manager()
    manager.register(plugin, name=name)
    try:
        _check_pending(manager)
    except PluginError:
        manager.unregister(plugin)
        raise
    _registries.clear()


def unregister(name: str) -> None:
    """Remove a plugin registered under ``name``."""
    manager = plugin_manager()
    plugin = manager.get_plugin(name)
    if plugin is None:
        raise UnknownNameError("plugin", name, plugin_names())
    manager.unregister(plugin)
    _registries.clear()


def _check_installed(names: set[str], installed: list[str]) -> None:
    unknown = sorted(set(names) - set(installed))
    if unknown:
        raise UnknownNameError("plugin to disable", unknown[0], installed)


def disable(*names: str) -> None:
    """Disable plugins by name for this process (like ``ACT_DISABLE_PLUGINS``)."""
    _check_installed(set(names), [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)])
    _disabled.update(names)
    reset()


def enable_all() -> None:
    """Undo :func:`disable` (the environment variable still applies)."""
    _disabled.clear()
    reset()


def reset() -> None:
    """Forget loaded plugins; the next lookup loads them again."""
    global _manager
    _manager = None
    _registries.clear()


def plugin_names() -> list[str]:
    """Names of the active plugins."""
    manager = plugin_manager()
    return [name for name, _ in manager.list_name_plugin()]
