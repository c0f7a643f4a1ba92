"""The harness: honest training (cross-checked by a plain loop), failures, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, log_loss
from torch import nn

from actbench import TIMINGS, Recipe, Result, train
from actbench.hookspecs import DATASETS, MODELS
from actbench.recipes import KERAS_RMSPROP, SGD_STEP
from actcore import ActError, ParseError, UnknownNameError
from actcore.machine import describe_machine
from actcore.plugins import registry

FAST = {"epochs": 3}


def test_mlp_digits_with_relu_learns():
    result = train("mlp-digits", "relu", seed=0)
    assert result.status == "ok" and result.epochs == 30
    assert result.val_accuracy > 0.93 and result.test_accuracy > 0.93
    assert result.train_accuracy >= result.val_accuracy - 0.02
    assert result.activation == "relu(x)" and result.task == "mlp-digits"


def test_harness_matches_a_plain_training_loop():
    """Same seed, same order, Keras time decay by hand: the harness adds nothing else."""
    seed, lr0, decay = 3, 1e-3, 0.01
    result = train("mlp-digits", "tanh(x)", seed, epochs=2, optimizer="rmsprop", lr=lr0,
                   lr_decay=decay, batch_size=100)  # fmt: skip

    digits = registry(DATASETS).get("digits")
    torch.manual_seed(seed)
    model = registry(MODELS).get("mlp").build(nn.Tanh, (1, 8, 8), 10)
    opt = torch.optim.RMSprop(model.parameters(), lr=lr0, alpha=0.9, eps=1e-7)
    x, y = digits.load("train").x, digits.load("train").y
    g = torch.Generator().manual_seed(seed)
    t = 0
    for _ in range(2):
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), 100):
            idx = order[start : start + 100]
            for group in opt.param_groups:
                group["lr"] = lr0 / (1 + decay * t)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            t += 1
    model.eval()
    val = digits.load("val")
    with torch.no_grad():
        probs = model(val.x).softmax(1).numpy()
    assert result.val_accuracy == pytest.approx(accuracy_score(val.y, probs.argmax(1)))
    assert result.val_loss == pytest.approx(log_loss(val.y, probs, labels=range(10)), rel=1e-4)


def test_convolutions_run_channels_last_on_a_cpu_and_compute_the_same(monkeypatch, tmp_path):
    """On a CPU a CNN's feature maps are channels-last (faster here); the training is the
    one a contiguous layout gives, to float32 rounding: after three epochs the losses
    agree to 1e-4 (1e-7 measured), where another seed moves them by 0.1. A run that an
    older act checkpointed contiguous goes on channels-last to the same figures."""
    import importlib

    layouts: set[tuple[bool, bool]] = set()

    class Recording(nn.Module):
        def forward(self, x):
            if x.ndim == 4:
                layouts.add((x.is_contiguous(memory_format=torch.channels_last),
                             x.is_contiguous()))
            return torch.relu(x)

    train("cnn-digits", Recording, 0, epochs=1)
    assert layouts == {(True, False)}
    harness = importlib.import_module("actbench.train")
    assert harness.layout(torch.device("cuda")) is torch.preserve_format
    channels_last = train("cnn-digits", "relu", 0, epochs=3)
    checkpoint = tmp_path / "run.pt"
    with monkeypatch.context() as contiguous_layout:
        contiguous_layout.setattr(harness, "layout", lambda device: torch.preserve_format)
        contiguous = train("cnn-digits", "relu", 0, epochs=3)
        other_seed = train("cnn-digits", "relu", 1, epochs=3)
        train("cnn-digits", "relu", 0, epochs=2, checkpoint=checkpoint)
    upgraded = train("cnn-digits", "relu", 0, epochs=3, checkpoint=checkpoint)
    for field in ("train_loss", "val_loss", "test_loss"):
        a, b = getattr(channels_last, field), getattr(contiguous, field)
        assert a == pytest.approx(b, rel=1e-4), field
        assert abs(getattr(other_seed, field) - b) > 100 * abs(a - b)
        assert getattr(upgraded, field) == pytest.approx(a, rel=1e-4), field


# one training in a fresh process (glibc's allocator state is per process): its figures
KEPT_OR_NOT = """
import json, sys
from actbench import train
from actcore.allocator import keep_freed_memory
result = train("cnn-digits", "relu", 0, epochs=2)
print(json.dumps([keep_freed_memory(), result.train_loss, result.val_loss, result.test_loss,
                  result.val_accuracy]))
"""


def test_keeping_freed_memory_changes_no_number():
    """Training keeps its freed memory for reuse (actcore.allocator): where the buffers
    lie, not what is computed in them; the same figures to the last bit as glibc's
    defaults give."""
    import json
    import os
    import platform
    import subprocess
    import sys

    found = []
    for setting in ("1", "0"):
        env = os.environ | {"ACT_KEEP_FREED_MEMORY": setting}
        done = subprocess.run([sys.executable, "-c", KEPT_OR_NOT], env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    (kept, *numbers), (default, *same) = found
    assert kept == (platform.libc_ver()[0] == "glibc") and not default
    assert numbers == same


def test_runs_are_deterministic_per_seed():
    a, b = (train("cnn-digits", "relu", seed=1, **FAST) for _ in range(2))
    c = train("cnn-digits", "relu", seed=2, **FAST)
    fields = TIMINGS
    assert a.model_dump(exclude=fields) == b.model_dump(exclude=fields)
    assert a.val_loss != c.val_loss


def test_trainings_in_threads_of_one_process_match_one_at_a_time(monkeypatch):
    """A Dask worker with several threads trains side by side in one process: each run
    still draws only from its own seed (torch's default generator is per process)."""
    import importlib
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import suppress

    harness = importlib.import_module("actbench.train")  # the module, not the function
    real = harness.activation_factory
    barrier = threading.Barrier(2, timeout=0.5)

    def meeting_factory(*args, **kwargs):
        make = real(*args, **kwargs)

        def activation():  # between two layers' weights: the builds would interleave here
            with suppress(threading.BrokenBarrierError):  # kept out: it waits its turn
                barrier.wait()
            return make()
        return activation

    runs = [("relu(x)", 0), ("tanh(x)", 1)]
    alone = [train("mlp-digits", f, s, epochs=1) for f, s in runs]
    monkeypatch.setattr(harness, "activation_factory", meeting_factory)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda run: train("mlp-digits", *run, epochs=1), runs))
    fields = TIMINGS
    assert [r.model_dump(exclude=fields) for r in together] == \
        [r.model_dump(exclude=fields) for r in alone]


def test_non_finite_loss_fails_with_chance_accuracy():
    result = train("mlp-digits", "exp(exp(exp(x)))", seed=0, **FAST)
    assert result.status == "failed" and "non-finite" in result.reason
    assert result.val_accuracy == result.test_accuracy == result.train_accuracy == 0.1
    assert result.val_loss is None and result.epochs <= 1


def test_broken_activation_modules_fail_without_raising():
    broken = train("mlp-digits", lambda: nn.Flatten(0), seed=0, **FAST)
    assert broken.status == "failed" and "RuntimeError" in broken.reason

    def unbuildable() -> nn.Module:
        raise ValueError("no such thing")

    failed = train("mlp-digits", unbuildable, seed=0, **FAST)
    assert failed.status == "failed" and "no such thing" in failed.reason


def test_bad_input_raises_act_errors():
    with pytest.raises(UnknownNameError, match="mlp-digits"):
        train("mlp-digit", "relu", 0)
    with pytest.raises(ParseError):
        train("mlp-digits", "relu(x", 0)
    with pytest.raises(ActError, match="epochs"):
        train("mlp-digits", "relu", 0, epochs=0)
    with pytest.raises(ActError, match="colour"):
        train("mlp-digits", "relu", 0, colour="red")
    with pytest.raises(ActError, match=r"seed must be an integer from 0 to .*, got 1\.5"):
        train("mlp-digits", "relu", seed=1.5)
    with pytest.raises(ActError, match="unknown device 'bogus'"):
        train("mlp-digits", "relu", 0, device="bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ActError, match="no CUDA device is available"):
            train("mlp-digits", "relu", 0, device="cuda")


def test_a_garbage_checkpoint_is_a_clear_error(tmp_path):
    garbage = tmp_path / "run.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ActError, match="is not a checkpoint of this run"):
        train("mlp-digits", "relu", 0, checkpoint=garbage, epochs=1)


class _Payload:
    """A pickled object that would run code when unpickled."""

    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "epoch": 1, "payload": _Payload()}, path)
    with pytest.raises(ActError, match=r"carries a pickled object \(print\)"):
        train("mlp-digits", "relu", 0, checkpoint=path, epochs=1)
    assert "this ran" not in capsys.readouterr().out


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70, 1.5, True])
def test_a_seed_out_of_range_names_the_range(seed):
    with pytest.raises(ActError, match=r"seed must be an integer from 0 to 2\*\*63 - 1"):
        train("mlp-digits", "relu", seed, epochs=1)


def test_checkpointed_run_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "run.pt"
    first = train("mlp-digits", "relu", 5, epochs=2, checkpoint=path)
    assert first.epochs == 2 and path.exists()
    resumed = train("mlp-digits", "relu", 5, epochs=4, checkpoint=path)
    straight = train("mlp-digits", "relu", 5, epochs=4)
    assert resumed.epochs == 4
    assert resumed.model_dump(exclude=TIMINGS) == straight.model_dump(exclude=TIMINGS)
    assert straight.machines == resumed.machines == [describe_machine("cpu")]


def test_a_run_resumed_on_another_machine_names_both(tmp_path):
    """The checkpoint carries the machines a run has used; a run that goes on elsewhere
    (another CPU rounds differently) lists the one before and the one after."""
    path = tmp_path / "run.pt"
    train("mlp-digits", "relu", 5, epochs=1, checkpoint=path)
    state = torch.load(path, weights_only=True)
    assert state["machines"] == [describe_machine("cpu")]
    state["machines"] = ["a GPU elsewhere"]
    torch.save(state, path)
    resumed = train("mlp-digits", "relu", 5, epochs=2, checkpoint=path)
    assert resumed.machines == ["a GPU elsewhere", describe_machine("cpu")]


@pytest.mark.parametrize("field, value", [("machines", "one machine"), ("machines", [3]),
                                          ("cpu_s", "a while")])
def test_a_checkpoint_with_a_malformed_clock_is_a_clear_error(tmp_path, field, value):
    path = tmp_path / "run.pt"
    train("mlp-digits", "relu", 5, epochs=1, checkpoint=path)
    state = torch.load(path, weights_only=True)
    state[field] = value
    torch.save(state, path)
    with pytest.raises(ActError, match="is not a checkpoint of this run"):
        train("mlp-digits", "relu", 5, epochs=2, checkpoint=path)


def test_result_records_round_trip_through_json():
    result = train("mlp-digits", "exp(exp(exp(x)))", seed=0, epochs=1)
    assert Result.model_validate_json(result.model_dump_json()) == result


def test_recipes_follow_the_papers_schedules():
    # Keras time decay: lr_t = lr0 / (1 + 1e-6 t) after t updates
    for t in (0, 1, 1000, 10**6):
        assert KERAS_RMSPROP.lr_factor(t, 100) == pytest.approx(1 / (1 + 1e-6 * t))
    # step decay: x0.1 every 30 epochs
    assert SGD_STEP.lr_factor(29 * 50 + 49, 50) == 1.0
    assert SGD_STEP.lr_factor(30 * 50, 50) == pytest.approx(0.1)
    assert SGD_STEP.lr_factor(60 * 50, 50) == pytest.approx(0.01)
    sgd = SGD_STEP.optimizer_for([nn.Parameter(torch.zeros(1))])
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 5e-4
    rms = KERAS_RMSPROP.optimizer_for([nn.Parameter(torch.zeros(1))])
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["lr"] == 1e-4
    with pytest.raises(ValueError):
        Recipe(optimizer="adagrad", lr=1, epochs=1, batch_size=1)


class _NormalisedExp(nn.Module):
    """exp(x) normalised by hand: for x ~ N(0, 1), E exp(x) = e^(1/2), E exp(x)² = e²."""

    def forward(self, x):
        return (torch.exp(x) - math.exp(0.5)) / math.sqrt(math.exp(2) - math.exp(1))


def test_normalize_trains_the_normalised_activation():
    normalised = train("mlp-digits", "exp", 0, epochs=1, normalize=True)
    by_hand = train("mlp-digits", _NormalisedExp, 0, epochs=1)
    plain = train("mlp-digits", "exp", 0, epochs=1)
    assert normalised.status == by_hand.status == "ok"
    assert normalised.val_loss == pytest.approx(by_hand.val_loss, rel=1e-4)
    assert normalised.train_loss == pytest.approx(by_hand.train_loss, rel=1e-4)
    assert abs(plain.val_loss - by_hand.val_loss) > 100 * 1e-4 * by_hand.val_loss
    with pytest.raises(ActError, match="variance 0"):
        train("mlp-digits", "zero", 0, epochs=1, normalize=True)


def test_an_optimizer_kind_from_a_plugin_trains(monkeypatch):
    """Optimizers are actbench's plugin kind: a package adds one without touching actcore."""
    from actbench.optimizers import Optimizer
    from actcore import hookimpl, plugins

    used = []

    def plain_sgd(params, recipe):
        used.append(recipe.lr)
        return torch.optim.SGD(params, lr=recipe.lr)

    class Plugin:
        @hookimpl
        def act_optimizers(self):
            return [Optimizer("plain-sgd", "SGD without momentum", plain_sgd)]

    with pytest.raises(ActError, match="unknown optimizer 'plain-sgd'"):
        train("mlp-digits", "relu", 0, epochs=1, optimizer="plain-sgd")
    plugins.register(Plugin(), name="plain-sgd-plugin")
    try:
        result = train("mlp-digits", "relu", 0, epochs=1, optimizer="plain-sgd", lr=0.05)
    finally:
        plugins.unregister("plain-sgd-plugin")
    assert result.status == "ok" and used == [0.05]
