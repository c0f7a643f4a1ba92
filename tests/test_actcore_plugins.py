"""Every act package installed together: plugins load, cooperate and add their groups."""

import pytest

from actbench import hookspecs as bench_kinds
from actcore import hookimpl, plugins
from actcore.cli import main
from actcore.versions import DISTRIBUTIONS
from actsearch import hookspecs as search_kinds

PACKAGES = ["core", "acthull", "actfim", "actbench", "actsearch"]


def test_every_package_plugin_is_discovered():
    plugins.reset()
    assert set(PACKAGES) <= set(plugins.plugin_names())


@pytest.mark.parametrize(
    "kind",
    [
        plugins.OPERATORS,
        search_kinds.REGRESSORS,
        search_kinds.STRATEGIES,
        bench_kinds.DATASETS,
        bench_kinds.MODELS,
        bench_kinds.TASKS,
        bench_kinds.TABLES,
        bench_kinds.OPTIMIZERS,
    ],
    ids=lambda kind: kind.name,
)
def test_a_name_clash_in_any_kind_names_both_plugins(kind):
    """Every kind has entries from its package, and a second plugin claiming one of
    those names is refused, naming both plugins."""
    entries = plugins.registry(kind).entries()
    assert entries, f"no {kind.name} registered"
    first = entries[0]

    class Clash:
        pass

    setattr(Clash, kind.hook, hookimpl(lambda self: [first.item]))
    plugins.register(Clash(), name="clash")
    try:
        with pytest.raises(plugins.PluginError) as err:
            plugins.registry(kind)
    finally:
        plugins.unregister("clash")
    assert (f"{kind.name} {first.name!r} is provided by both plugin {first.plugin!r} and "
            "plugin 'clash'") in str(err.value)
    assert plugins.registry(kind).provider(first.name) == first.plugin


def test_core_operators_stay_first_and_spaces_keep_spec_counts(capsys):
    names = plugins.registry(plugins.OPERATORS).names()
    assert names[:3] == ["zero", "one", "identity"]
    assert main(["space", "count", "binary(unary(x),unary(x))"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "5103"


def test_act_help_lists_the_groups(capsys):
    assert main(["--help"]) == 0  # main returns argparse's exit status, never raises it
    out = capsys.readouterr().out
    for group in ["ops", "space", "fn"]:
        assert group in out


def test_versions_of_every_installed_package(capsys):
    from importlib.resources import files

    import actbench
    import actcore
    import actfim
    import acthull
    import actsearch

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    for package in (actcore, acthull, actfim, actbench, actsearch):
        name = package.__name__
        assert package.__version__ == "0.1.0"
        assert f"{name} ({DISTRIBUTIONS[name]}) 0.1.0" in out
        assert files(name).joinpath("py.typed").is_file(), f"{name} ships no py.typed"
