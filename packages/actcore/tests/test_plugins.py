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


def test_adding_a_kind_is_one_hook():
    class Regressors:
        @hookimpl
        def act_regressors(self):
            return [type("R", (), {"name": "test-regressor"})()]

    plugins.register(Regressors(), name="twice")
    assert plugins.registry(plugins.REGRESSORS).provider("test-regressor") == "twice"
