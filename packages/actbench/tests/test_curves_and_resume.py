"""Learning curves in every result, and runs that survive a stop: a comparison stopped
in the middle of a run resumes from its checkpoint, bit for bit."""

from __future__ import annotations

import functools
import importlib

import pytest
import torch

from actbench import TIMINGS, Epoch, Result, evaluate_model, train, train_many
from actbench.checkpoints import load_checkpoint
from actbench.compare import (
    checkpoint_folder,
    load_results,
    run_comparison,
    summarise,
    table,
)
from actbench.curves import crossings, figures_at, hold_for, median_curves, plot_curves
from actbench.tasks import get_task
from actbench.train import layout as training_layout
from actbench.train import prepare, recipe_for
from actcore import ActError
from actcore.cli import main


class Stop(BaseException):
    """A stop in the middle of a run (what a killed process leaves)."""


def stop_after(monkeypatch, epoch: int) -> None:
    """Make every checkpoint save after ``epoch`` stop the run, as a kill would, once the
    checkpoint is written."""
    train_module = importlib.import_module("actbench.train")  # the package exports train()
    save = train_module.save_checkpoint

    def save_then_stop(path, *args, **kwargs):
        save(path, *args, **kwargs)
        if args[4] == epoch:
            raise Stop

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
    monkeypatch.setattr(importlib.import_module("actbench.stacked_training"),
                        "save_checkpoint", save_then_stop)


def test_every_epoch_is_recorded_and_the_last_equals_the_final_figures():
    result = train("cnn-digits", "relu", 3, epochs=4)
    assert [h.epoch for h in result.history] == [1, 2, 3, 4]
    last = result.history[-1]
    assert (last.val_accuracy, last.val_loss) == (result.val_accuracy, result.val_loss)
    assert (last.test_accuracy, last.test_loss) == (result.test_accuracy, result.test_loss)
    # the curve is real: the loss falls, and a 2-epoch run is the curve's second point
    assert result.history[0].train_loss > result.history[-1].train_loss
    short = train("cnn-digits", "relu", 3, epochs=2)
    assert short.history == result.history[:2]
    assert (short.val_accuracy, short.test_loss) == \
        (result.history[1].val_accuracy, result.history[1].test_loss)


def test_a_curve_point_is_the_model_measured_after_that_epoch(tmp_path):
    """Cross-check: the point after epoch 1 is what evaluate_model measures on the model
    saved in the checkpoint after epoch 1 (an independent measurement)."""
    path = tmp_path / "run.pt"
    run = train("cnn-digits", "tanh", 0, epochs=1, checkpoint=path)
    setup = prepare("cnn-digits", None, False, {"epochs": 1})
    from actbench.activations import activation_factory

    model = setup.architecture.build(activation_factory("tanh"), setup.source.input_shape,
                                     setup.source.num_classes)  # fmt: skip
    model.load_state_dict(load_checkpoint(path)["model"])
    model.to(memory_format=training_layout(torch.device("cpu")))  # as trained: same kernels
    loss, accuracy = evaluate_model(model, setup.splits["val"], 1000, torch.device("cpu"))
    assert run.history[0].val_accuracy == accuracy
    assert run.history[0].val_loss == pytest.approx(loss, rel=1e-12)


def test_a_stack_measures_each_split_once_an_epoch(monkeypatch):
    """Validation and test after every epoch, the training split after the last only:
    the last curve point is the final figures' own measurement, not a second one."""
    module = importlib.import_module("actbench.stacked_training")
    evaluate, measured = module.evaluate_stack, []

    def counting(model, data, *args):
        measured.append(len(data))
        return evaluate(model, data, *args)

    monkeypatch.setattr(module, "evaluate_stack", counting)
    runs = train_many("mlp-digits", ["relu", "tanh"], 1, stack=2, epochs=3)
    setup = prepare("mlp-digits", None, False, {"epochs": 3})
    sizes = {split: len(data) for split, data in setup.splits.items()}
    assert measured == [sizes["val"], sizes["test"]] * 2 + \
        [sizes[split] for split in setup.splits]
    for run in runs:
        assert (run.history[-1].val_accuracy, run.history[-1].test_loss) == \
            (run.val_accuracy, run.test_loss)


def test_curves_off_trains_the_same_and_records_nothing():
    on = train("mlp-digits", "relu", 1, epochs=3)
    off = train("mlp-digits", "relu", 1, epochs=3, curves=False)
    assert off.history == [] and len(on.history) == 3
    assert off.model_dump(exclude={*TIMINGS, "history", "recipe"}) == \
        on.model_dump(exclude={*TIMINGS, "history", "recipe"})


def test_a_failed_run_keeps_its_curve_up_to_the_failure():
    result = train("mlp-digits", "exp(exp(exp(x)))", 0, epochs=3)
    assert result.status == "failed"
    assert len(result.history) == result.epochs - 1 or result.epochs == 0


def test_results_without_curves_still_load(tmp_path):
    old = ('{"task":"mlp-digits","activation":"relu(x)","seed":0,"status":"ok","reason":"",'
           '"train_accuracy":1.0,"val_accuracy":0.9,"test_accuracy":0.9,"train_loss":0.1,'
           '"val_loss":0.2,"test_loss":0.2,"runtime_s":1.0,"epochs":30}\n')
    (tmp_path / "old.jsonl").write_text(old)
    (result,) = load_results(tmp_path / "old.jsonl")
    assert result.history == [] and result.cpu_s is None


@pytest.mark.parametrize(("task", "stack", "precision"), [
    ("cnn-digits", 1, "float32"), ("mlp-digits", 2, "float32"), ("cnn-digits", 1, "bfloat16")])
def test_a_comparison_stopped_mid_run_resumes_bit_for_bit(tmp_path, monkeypatch, task, stack,
                                                          precision):
    activations, seeds = ["relu(x)", "tanh(x)"], [0, 1]
    epochs = 4
    recipe = recipe_for(get_task(task), {"epochs": epochs, "precision": precision})
    results = tmp_path / "runs.jsonl"
    folder = checkpoint_folder(results)
    job = functools.partial(train_many, task, stack=stack, checkpoint=folder, epochs=epochs,
                            precision=precision)

    def compare() -> list[Result]:
        return run_comparison(task, activations, seeds, job, results, stack=stack,
                              recipe=recipe, checkpoints=folder)  # fmt: skip

    stop_after(monkeypatch, 2)
    with pytest.raises(Stop):
        compare()
    assert not results.exists()  # stopped in the first job, before any result
    (saved,) = folder.iterdir()  # the run (or stack) in flight, after epoch 2
    assert load_checkpoint(saved)["epoch"] == 2
    monkeypatch.undo()
    resumed = compare()
    assert not folder.exists()  # every checkpoint removed once its run was saved
    straight = [r for s in seeds for r in train_many(task, activations, s, stack=stack,
                                                      epochs=epochs, precision=precision)]
    assert all(r.recipe["precision"] == precision for r in resumed)
    key = {(r.activation, r.seed): r.model_dump(exclude=TIMINGS) for r in straight}
    assert all(r.model_dump(exclude=TIMINGS) == key[(r.activation, r.seed)]
               for r in resumed)  # fmt: skip
    assert all(len(r.history) == epochs for r in resumed)
    # the clock carried across the stop: the resumed run counts its first two epochs too
    assert all(r.cpu_s is not None and r.cpu_s > 0 for r in resumed)


def test_a_checkpoint_past_the_epochs_asked_for_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    train("mlp-digits", "relu", 0, epochs=3, checkpoint=path)
    with pytest.raises(ActError, match="past the 2 epochs asked for"):
        train("mlp-digits", "relu", 0, epochs=2, checkpoint=path)


def _run(activation: str, seed: int, val: list[float], status: str = "ok",
         epochs: int | None = None) -> Result:
    """A made-up run whose validation curve is ``val`` (test = val - 0.01)."""
    history = [Epoch(epoch=i, train_loss=1.0, val_accuracy=v, val_loss=1.0,
                     test_accuracy=v - 0.01, test_loss=1.0) for i, v in enumerate(val, 1)]
    last, test = (val[-1], val[-1] - 0.01) if status == "ok" else (0.1, 0.1)
    return Result(task="t", activation=activation, seed=seed, status=status,
                  train_accuracy=last, val_accuracy=last, test_accuracy=test,
                  train_loss=None, val_loss=None, test_loss=None, runtime_s=1.0,
                  epochs=epochs or len(val), history=history)  # fmt: skip


def test_figures_at_an_epoch_read_the_curve_and_count_failures_from_their_epoch():
    ok = _run("a", 0, [0.5, 0.6, 0.7])
    assert figures_at(ok, 2) == (0.6, pytest.approx(0.59), False)
    assert figures_at(ok, None) == (0.7, pytest.approx(0.69), False)
    broke = _run("b", 0, [0.5, 0.6], status="failed", epochs=3)  # non-finite in epoch 3
    assert figures_at(broke, 2) == (0.6, pytest.approx(0.59), False)
    assert figures_at(broke, 3) == (0.1, 0.1, True)
    with pytest.raises(ActError, match="trained 3 epochs: it has no figures after epoch 4"):
        figures_at(ok, 4)
    with pytest.raises(ActError, match="has no learning curve"):
        figures_at(ok.model_copy(update={"history": []}), 2)
    (a, b) = summarise([ok, broke], epoch=3)
    assert (a.val_median, a.failed, b.failed) == (0.7, 0, 1)


def test_the_curves_picture_draws_each_median_against_the_reference(tmp_path, monkeypatch):
    import actbench.curves as curves_module

    drawn = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: drawn.append(fig))
    runs = [_run("relu(x)", s, [0.5, 0.6, 0.7]) for s in range(3)]
    runs += [_run("tanh(x)", s, [0.55, 0.58, 0.75 + 0.01 * s]) for s in range(3)]
    plot_curves(runs, tmp_path / "c.png")
    tanh_ax = drawn[0].axes[1]
    median = tanh_ax.lines[0]
    assert list(median.get_xdata()) == [1, 2, 3]
    assert list(median.get_ydata()) == pytest.approx([55, 58, 76])
    assert list(tanh_ax.lines[1].get_ydata()) == pytest.approx([50, 60, 70])  # ReLU's
    # above ReLU after epoch 1, below after 2, above after 3: marked at epochs 2 and 3
    # (a vertical line and a dot each)
    assert [line.get_xdata()[0] for line in tanh_ax.lines[2:]] == [2, 2, 3, 3]


def test_crossings_mark_each_change_of_side():
    assert crossings([1, 2, 3, 4], [2, 2, 2, 2]) == [3]  # a tie keeps the side before it
    assert crossings([3, 1, 3, 3], [2, 2, 2, 2]) == [2, 3]
    assert crossings([1, 1], [1, 1]) == []
    curves = median_curves([_run("a", s, [0.5 + s * 0.1, 0.6]) for s in range(3)])
    assert curves["a"] == [(0.6, 0.5, 0.7), (0.6, 0.6, 0.6)]


def test_a_crossing_counts_once_the_new_side_is_held():
    """Curves near a tie swap sides from epoch to epoch: no mark until one stays ahead;
    the mark is where its lead began."""
    reference = [5.0] * 14
    curve = [4, 4, 4, 4, 4, 6, 4, 6, 4, 6, 6, 6, 5, 6]  # level at 13: the lead it had holds
    assert crossings(curve, reference) == [6, 7, 8, 9, 10]
    assert crossings(curve, reference, hold=3) == [10]
    assert crossings(curve, reference, hold=5) == [10]
    assert crossings(curve, reference, hold=6) == []  # the lead is 5 epochs long
    assert crossings([6, 4, 4, 4], [5] * 4, hold=3) == []  # the first side was never held
    with pytest.raises(ActError, match="at least 1 epoch"):
        crossings(curve, reference, hold=0)
    assert [hold_for(n) for n in (1, 6, 25, 100)] == [1, 1, 2, 10]


def test_a_curve_that_trails_noisily_then_leads_for_good_is_marked():
    """Behind on most epochs, never three in a row, then ahead for good: marked where the
    lead began, as the 100-epoch grid's aff({id, ReLU}) overtakes ReLU. Fewer
    than ``hold`` epochs on the other side before it makes no side."""
    reference = [5.0] * 12
    trailing = [6, 4, 4, 6, 4, 4, 6, 4, 6, 6, 6, 6]  # behind on 5 of the first 8 epochs
    assert crossings(trailing, reference, hold=3) == [9]
    assert crossings(trailing, reference, hold=6) == []  # 5 epochs behind: no side
    level = [6, 4, 4, 6, 4, 6, 6, 4, 6, 6, 6, 6]  # behind on 4 of 8: no side before
    assert crossings(level, reference, hold=3) == []


def test_compare_reads_any_epoch_and_draws_the_curves(tmp_path, capsys):
    results, picture = tmp_path / "runs.jsonl", tmp_path / "curves.png"
    argv = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "-a", "tanh",
            "--seeds", "2", "--epochs", "3", "--results", str(results)]  # fmt: skip
    assert main(argv) == 0
    saved = load_results(results)
    capsys.readouterr()
    assert main([*argv, "--at-epoch", "1", "--curves", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "after epoch 1" in out and table(summarise(saved, 1)) in out
    assert table(summarise(saved, 1)) != table(summarise(saved))
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*argv, "--at-epoch", "4"]) == 2
    assert "--at-epoch must be from 1 to the runs' 3 epochs, got 4" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_a_checkpoint_of_another_layout_resumes_the_same_training(tmp_path, optimizer):
    """A run saved contiguous (an older act, or a GPU) and resumed channels-last takes the
    steps a contiguous resume takes: torch's fused optimisers read a parameter and its
    state as flat arrays, so the state is laid out like its parameter on resuming (before,
    a fused Adam paired the wrong numbers, silently)."""
    from actbench.checkpoints import resume, save_checkpoint
    from actbench.recipes import Recipe

    recipe = Recipe(optimizer=optimizer, lr=1e-2, momentum=0.9 if optimizer == "sgd" else 0,
                    epochs=2, batch_size=4)  # fmt: skip
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))

    def steps(conv, opt, n):
        for _ in range(n):
            opt.zero_grad()
            conv(x).square().mean().backward()
            opt.step()

    def run(layout):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(3, 8, 3).to(memory_format=layout)
        opt = recipe.optimizer_for(conv.parameters())
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
        return conv, opt, schedule

    conv, opt, schedule = run(torch.contiguous_format)
    steps(conv, opt, 3)
    path = tmp_path / "run.pt"
    save_checkpoint(path, conv, opt, schedule, torch.Generator(), 1)
    resumed = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        conv, opt, schedule = run(layout)
        resume(path, load_checkpoint(path), conv, opt, schedule, torch.Generator(), 2)
        steps(conv, opt, 3)
        resumed[layout] = conv.weight.detach()
    assert resumed[torch.channels_last].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(resumed[torch.channels_last], resumed[torch.contiguous_format],
                               rtol=0, atol=1e-6)


def test_a_second_comparison_training_into_the_same_file_is_refused(tmp_path, monkeypatch):
    """Two grids on one results file would train the same runs and overwrite each other's
    saves; the second is refused while the first trains. Reading is not refused."""
    import contextlib

    import actbench.compare
    from actbench.compare import save_results
    from actcore.lock import exclusive

    results, trained = tmp_path / "runs.jsonl", []

    def job(names, seed):
        trained.extend(names)
        return [_run(n, seed, [0.5, 0.6]) for n in names]

    run_comparison("t", ["relu(x)"], [0], job, results)
    with exclusive(results, "the results file"):  # another comparison is training
        with pytest.raises(ActError, match=r"the results file \S+runs.jsonl is in use by "
                                           r"pid \d+ on .* since "):  # fmt: skip
            run_comparison("t", ["relu(x)", "tanh(x)"], [0], job, results)
        (only,) = run_comparison("t", ["relu(x)"], [0], job, results)  # nothing to train
    assert trained == ["relu(x)"] and only.activation == "relu(x)"

    @contextlib.contextmanager
    def finished_first(path, what):  # a comparison saved tanh while this one waited
        save_results([*load_results(path), _run("tanh(x)", 0, [0.5, 0.7])], path)
        with exclusive(path, what):
            yield

    monkeypatch.setattr(actbench.compare, "exclusive", finished_first)
    runs = run_comparison("t", ["relu(x)", "tanh(x)", "selu(x)"], [0], job, results)
    assert trained == ["relu(x)", "selu(x)"]  # tanh read under the lock, not trained again
    assert [r.val_accuracy for r in runs] == [0.6, 0.7, 0.6]
    assert len(load_results(results)) == 3
