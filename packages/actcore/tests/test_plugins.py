import pytest
import torch

from actcore import (
    Operator,
    PluginError,
    Space,
    UnknownNameError,
    get_operator,
    hookimpl,
    parse,
    plugins,
    to_module,
)
from actcore.hookspecs import hookspec


@pytest.fixture(autouse=True)
def clean_registry():
    plugins.enable_all()
    yield
    for name in ("twice", "clash"):
        if plugins.plugin_manager().get_plugin(name) is not None:
            plugins.unregister(name)
    plugins.enable_all()


class Twice:
    @hookimpl
    def act_operators(self):
        return [Operator("twice", 1, _twice, description="2x")]


def _twice(x):
    return 2 * x


class Clash:
    @hookimpl
    def act_operators(self):
        return [Operator("relu", 1, _twice)]


def test_builtins_come_from_the_core_plugin():
    assert "core" in plugins.plugin_names()
    ops = plugins.registry(plugins.OPERATORS)
    assert ops.provider("relu") == "core"
    assert len([op for op in ops if not op.learnable and not op.extended]) >= 38


def test_runtime_registration_is_usable_everywhere():
    plugins.register(Twice(), name="twice")
    assert plugins.registry(plugins.OPERATORS).provider("twice") == "twice"
    x = torch.arange(3.0)
    assert torch.equal(to_module("twice(relu(x))")(x), 2 * x)
    assert Space("binary(twice(x),unary(x))").count() == 7 * 27
    assert Space("unary(x)", operators=["twice", "relu"]).count() == 2


def test_name_clash_names_both_plugins():
    plugins.register(Clash(), name="clash")
    with pytest.raises(
        PluginError, match="'relu' is provided by both plugin 'core' and plugin 'clash'"
    ):
        plugins.registry(plugins.OPERATORS)


def test_lookup_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean 'relu'") as info:
        get_operator("rleu")
    assert "relu" in info.value.suggestions


def test_disable_a_plugin(monkeypatch):
    plugins.disable("core")
    assert "relu" not in plugins.registry(plugins.OPERATORS)
    with pytest.raises(UnknownNameError, match="unknown operator"):
        get_operator("relu")
    plugins.enable_all()
    assert get_operator("relu").arity == 1
    monkeypatch.setenv(plugins.DISABLE_ENV, "core")
    plugins.reset()
    assert "core" not in plugins.plugin_names()
    monkeypatch.delenv(plugins.DISABLE_ENV)
    plugins.reset()
    assert str(parse("relu(x)")) == "relu(x)"


def test_disabling_an_unknown_plugin_is_an_error(monkeypatch, capsys):
    from actcore.cli import main

    assert main(["--disable", "cor", "ops"]) == 2
    assert "unknown plugin to disable 'cor'; did you mean 'core'" in capsys.readouterr().err
    plugins.enable_all()
    monkeypatch.setenv(plugins.DISABLE_ENV, "nope")
    plugins.reset()
    with pytest.raises(UnknownNameError, match="unknown plugin to disable 'nope'"):
        plugins.plugin_names()
    monkeypatch.delenv(plugins.DISABLE_ENV)
    plugins.reset()
    assert "core" in plugins.plugin_names()


class GadgetSpecs:
    """A package's own kind, declared where it is used (as actbench and actsearch do)."""

    @hookspec
    def act_gadgets(self):
        """Return gadgets."""


GADGETS = plugins.Kind("gadget", "act_gadgets")


class GadgetPackage:
    @hookimpl
    def act_addhooks(self, pluginmanager):
        pluginmanager.add_hookspecs(GadgetSpecs)

    @hookimpl
    def act_gadgets(self):
        return [type("G", (), {"name": name})() for name in ("spanner", "hammer")]


def test_a_package_adds_its_own_kind_through_act_addhooks():
    try:
        plugins.register(GadgetPackage(), name="gadgets")
        assert plugins.registry(GADGETS).provider("spanner") == "gadgets"
    finally:
        plugins.unregister("gadgets")
    assert len(plugins.registry(GADGETS)) == 0  # nobody declares the kind now


def test_a_misspelt_hook_is_an_error_at_load():
    class Typo:
        @hookimpl
        def act_operator(self):
            return []

    with pytest.raises(PluginError, match="plugin 'typo' implements 'act_operator', a hook "
                       "that no installed act package declares; did you mean 'act_operators'"):
        plugins.register(Typo(), name="typo")
    assert "typo" not in plugins.plugin_names()


def test_items_come_through_pluggy_so_wrappers_apply():
    class NoSpanners:
        @hookimpl(wrapper=True)
        def act_gadgets(self):
            results = yield
            return [[g for g in items if g.name != "spanner"] for items in results]

    try:
        plugins.register(GadgetPackage(), name="gadgets")
        assert plugins.registry(GADGETS).names() == ["spanner", "hammer"]
        plugins.register(NoSpanners(), name="no-spanners")
        assert plugins.registry(GADGETS).names() == ["hammer"]
    finally:
        plugins.unregister("no-spanners")
        plugins.unregister("gadgets")


def test_a_kind_implementation_that_returns_nothing_is_named():
    class Forgetful:
        @hookimpl
        def act_gadgets(self):
            return None

    try:
        plugins.register(GadgetPackage(), name="gadgets")
        plugins.register(Forgetful(), name="forgetful")
        with pytest.raises(PluginError, match="act_gadgets of plugin 'forgetful' returned"):
            plugins.registry(GADGETS)
    finally:
        plugins.unregister("forgetful")
        plugins.unregister("gadgets")
