import pytest

from actcore import Space
from actcore.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_ops_lists_arity_and_plugin(capsys):
    status, out, _ = run(capsys, "ops")
    assert status == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:-1]}
    assert rows["relu"] == ["1", "core"] and rows["pow"] == ["2", "core"]
    assert rows["sum_n"] == ["n", "core"]


def test_space_count(capsys):
    status, out, _ = run(capsys, "space", "count", "binary(unary(x),unary(x))")
    assert status == 0 and out.splitlines()[-1] == "5103"
    status, out, _ = run(capsys, "space", "count", "unary(x)", "unary(unary(x))", "--extended")
    assert out.splitlines()[-1] == str(31 + 31 * 31)


def test_space_count_unique_counts_classes_across_the_union(capsys):
    _, out, _ = run(capsys, "space", "count", "--unique", "unary(x)", "--operators", "relu,abs")
    assert out.splitlines()[-1] == "2"
    _, out, _ = run(
        capsys,
        "space",
        "count",
        "--unique",
        "unary(x)",
        "unary(unary(x))",
        "--operators",
        "relu,identity",
    )
    assert out.splitlines()[-1] == "2"  # relu(x) and identity(x) classes hold all six


def test_space_list(capsys):
    status, out, _ = run(capsys, "space", "list", "binary(unary(x),unary(x))", "--limit", "2")
    assert status == 0
    assert out.split() == ["add(zero(x),zero(x))", "add(zero(x),one(x))"]
    _, out, _ = run(
        capsys, "space", "list", "unary(unary(x))", "--unique", "--operators", "relu,identity"
    )
    assert out.split() == ["identity(identity(x))", "relu(relu(x))"]


def test_space_sample(capsys):
    args = ["space", "sample", "unary(unary(x))", "-n", "5", "--seed", "3"]
    status, out, _ = run(capsys, *args)
    assert status == 0 and len(set(out.split())) == 5
    assert run(capsys, *args)[1] == out
    status, _, err = run(capsys, "space", "sample", "unary(x)", "-n", "28")
    assert status == 2 and "cannot sample 28" in err


def test_fn_plot_writes_a_png(capsys, tmp_path):
    target = tmp_path / "f.png"
    status, out, err = run(capsys, "fn", "plot", "relu(x)", "exp(exp(x))", "-o", str(target))
    assert status == 0 and f"wrote {target}" in err and out == ""  # notes go to stderr
    status, out, err = run(capsys, "-q", "fn", "plot", "relu(x)", "-o", str(target))
    assert status == 0 and out == err == ""  # -q: nothing but results
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["space", "count", "binary(unary(x)"], "never closed"),
        (["space", "count", "unary(x)", "--operators", "rel"], "did you mean 'relu'"),
        (["space", "list", "unary(x)", "--limit", "-1"], "--limit must be at least 0"),
        (["fn", "plot", "rleu(x)", "-o", "f.png"], "did you mean 'relu'"),
        (["fn", "plot", "relu(x)", "-o", "README.md/f.png"], "cannot create the folder"),
        (["space", "count", "unary(x)", "--operators", "sum_n"], "placeholder 'unary'"),
        (["fn", "plot", "relu(x)", "-o", "f.txt"], "a figure file ends in .png, .pdf, .svg"),
        (["--disable", "nope", "ops"], "unknown plugin to disable 'nope'"),
    ],
)
def test_errors_exit_2_without_traceback(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith("act: error:") and message in err
    assert "Traceback" not in err


def test_deep_spaces_list_and_sample_at_once(capsys):
    """27**31 names: the first come without enumerating (or even sizing) the rest."""
    deep = "unary(" * 31 + "x" + ")" * 31
    status, out, _ = run(capsys, "space", "list", deep, "--limit", "2")
    assert status == 0 and len(out.splitlines()) == 2
    assert out.splitlines()[0] == "zero(" * 31 + "x" + ")" * 31
    status, out, _ = run(capsys, "space", "sample", deep, "-n", "3", "--seed", "1")
    assert status == 0 and len(set(out.splitlines())) == 3
    wide = "binary(binary(unary(unary(x)),unary(unary(x))),binary(unary(unary(x)),unary(x)))"
    first = next(iter(Space(wide)))
    assert str(first) == "add(add(zero(zero(x)),zero(zero(x))),add(zero(zero(x)),zero(x)))"


def test_a_missing_command_group_names_its_package(capsys):
    """'act hull' without acthull (absent, as in the actcore session, or disabled) says
    which package brings it; an unknown word stays argparse's usage error."""
    from actcore import plugins

    installed = set(plugins.plugin_names())
    try:
        for group, package in [("hull", "acthull"), ("bench", "actbench")]:
            disable = ["--disable", package] if package in installed else []
            status, _, err = run(capsys, *disable, group, "show")
            assert status == 2
            assert f"'act {group}' comes with the {package} package, which is not" in err
    finally:
        plugins.enable_all()
    status, _, err = run(capsys, "hulll")
    assert status == 2 and "invalid choice" in err


def test_outputs_go_to_act_out_by_default_and_folders_are_created(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fn", "plot", "relu"]) == 0
    assert (tmp_path / "act-out" / "functions.png").stat().st_size > 0
    assert main(["fn", "plot", "silu", "-o", "new/folder/f.png"]) == 0
    assert (tmp_path / "new" / "folder" / "f.png").stat().st_size > 0
    assert main(["fn", "plot", "--help"]) == 0
    assert "default: act-out/functions.png" in capsys.readouterr().out


def test_progress_bars_in_a_file_never_move_the_cursor(tmp_path):
    """Output that is not a terminal gets no nested bars (tqdm redraws them with
    cursor-up escapes) and no bar at all under -q."""
    from actcore import console

    log = tmp_path / "log.txt"
    with log.open("w") as stream, console.Progress(range(3), file=stream) as outer:
        for _ in outer:
            for _ in console.Progress(range(50), file=stream, leave=False):
                pass
    text = log.read_text()
    assert "\x1b[A" not in text and "3/3" in text and "50/50" not in text
    console.configure(console.QUIET)
    try:
        with log.open("w") as stream:
            for _ in console.Progress(range(3), file=stream):
                pass
        assert log.read_text() == ""
    finally:
        console.configure(console.NORMAL)
