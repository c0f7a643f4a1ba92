"""Stacked training: each member follows its solo run (to 1e-9 in float64, for every zoo
model), fails alone, and comes out as a plain model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actbench import TIMINGS, Recipe, train
from actbench.activations import activation_factory
from actbench.checkpoints import checkpoint_name
from actbench.hookspecs import MODELS
from actbench.stacked_training import _member_losses, auto_stack, train_many
from actbench.stacking import StackedModel, Unstackable
from actbench.tasks import get_task
from actbench.train import recipe_for
from actcore import ActError
from actcore.plugins import registry

# input shape, classes and recipe per zoo model: the smallest images each accepts
ZOO = {
    "mlp": ((1, 8, 8), "adam"),
    "cnn": ((1, 8, 8), "adam"),
    "lenet5": ((1, 16, 16), "rmsprop"),
    "kerasnet": ((3, 12, 12), "rmsprop"),  # dropout
    "allcnnc": ((3, 12, 12), "sgd"),  # dropout on the input too
    "resnet56": ((3, 8, 8), "sgd"),  # BatchNorm, residual additions
    "alexnet": ((3, 67, 67), "sgd"),  # grouped convolutions, LRN, dropout
}
MEMBERS = ["relu", "tanh", lambda: nn.PReLU()]  # the last one learns its own slope
# Steps of the float64 comparison. A stack rounds differently from a solo run (other
# kernels, other vector tails), by about one unit in the last place, and training carries
# such differences on: for every zoo model a 1-ulp change of the initial weights moves no
# weight by more than 1e-13 in 20 steps, except ResNet-56 with tanh (batch-4 BatchNorm),
# where it grows about 50x a step (1e-11 after 2 steps, 0.6 after 20). There the
# comparison is made after 2 steps (momentum and weight decay already act), 100x inside
# its 1e-9 tolerance whatever the machine's rounding.
FLOAT64_STEPS = {"resnet56": 2}


def _build(model: str, spec, shape, seed: int) -> tuple[nn.Module, list[str]]:
    """A member built as a solo run builds it, in float64; its activation sites."""
    made: list[nn.Module] = []
    make = activation_factory(spec)

    def recording() -> nn.Module:
        made.append(make())
        return made[-1]

    torch.manual_seed(seed)
    net = registry(MODELS).get(model).build(recording, shape, 10).double()
    ids = {id(m) for m in made}
    return net, [name for name, m in net.named_modules() if id(m) in ids]


def _batches(shape, steps: int, size: int = 4):
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(size, *shape, generator=g, dtype=torch.float64),
             torch.randint(0, 10, (size,), generator=g)) for _ in range(steps)]  # fmt: skip


def _solo(net: nn.Module, batches, recipe: Recipe, seed: int) -> None:
    optimizer = recipe.optimizer_for(net.parameters())
    torch.manual_seed(seed + 1)  # the dropout masks' generator state
    net.train()
    for x, y in batches:
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _stacked(model: StackedModel, batches, recipe: Recipe, seed: int) -> None:
    optimizer = recipe.optimizer_for(model.parameters())
    torch.manual_seed(seed + 1)
    model.train()
    for x, y in batches:
        losses = _member_losses(model(x), y)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()


@pytest.mark.parametrize("name", list(ZOO))
def test_members_follow_their_solo_runs_in_float64(name):
    shape, optimizer = ZOO[name]
    recipe = Recipe(optimizer=optimizer, lr=1e-2 if optimizer == "sgd" else 1e-3, epochs=1,
                    batch_size=4, momentum=0.9 if optimizer == "sgd" else 0.0,
                    weight_decay=5e-4 if optimizer == "sgd" else 0.0)  # fmt: skip
    batches = _batches(shape, FLOAT64_STEPS.get(name, 20), 4 if name != "alexnet" else 2)
    built = [_build(name, spec, shape, seed=3) for spec in MEMBERS]
    model = StackedModel([net for net, _ in built], built[0][1])
    _stacked(model, batches, recipe, seed=3)
    for k, spec in enumerate(MEMBERS):
        solo, _ = _build(name, spec, shape, seed=3)
        initial = {key: value.clone() for key, value in solo.state_dict().items()}
        _solo(solo, batches, recipe, seed=3)
        trained = model.member(k).state_dict()
        assert list(trained) == list(solo.state_dict())
        for key, value in solo.state_dict().items():
            assert trained[key].dtype == value.dtype
            torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-9,
                                       msg=f"member {k}, {key}")  # fmt: skip
        moved = max((v - initial[key]).abs().max().item() for key, v in solo.state_dict().items()
                    if key.endswith("weight"))  # fmt: skip
        assert moved > 1e-4  # training moved the weights: the comparison is not of inits


def test_a_dense_input_layer_takes_the_batch_once_for_every_member():
    """An MLP's first layer sees the same images in every member: one product over the
    batch, not K over K copies (the float64 test above checks what it computes)."""
    built = [_build("mlp", spec, (1, 8, 8), seed=0) for spec in MEMBERS]
    model = StackedModel([net for net, _ in built], built[0][1])
    assert model._shared_input_layer() == 1  # after nn.Flatten
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    for k, (net, _) in enumerate(built):
        torch.testing.assert_close(model(x)[k], net(x), rtol=0, atol=1e-12)
    cnn = [_build("cnn", spec, (1, 8, 8), seed=0) for spec in MEMBERS]
    assert StackedModel([net for net, _ in cnn], cnn[0][1])._shared_input_layer() is None


def test_float32_stacking_differs_from_solo_no_more_than_float32_rounding_does():
    """No threshold tuned on one CPU: the stacked float32 run's distance from the solo
    float32 run is bounded by the distance float32 rounding itself puts between the solo
    float32 and float64 runs (ten times it), both measured here."""
    shape, recipe = (1, 8, 8), Recipe(optimizer="adam", lr=3e-3, epochs=1, batch_size=4)
    batches = _batches(shape, 20)
    built = [_build("mlp", spec, shape, seed=0) for spec in MEMBERS]
    model = StackedModel([net.float() for net, _ in built], built[0][1])
    _stacked(model, [(x.float(), y) for x, y in batches], recipe, seed=0)
    for k, spec in enumerate(MEMBERS):
        solo64, _ = _build("mlp", spec, shape, seed=0)
        solo32, _ = _build("mlp", spec, shape, seed=0)
        solo32.float()
        _solo(solo64, batches, recipe, seed=0)
        _solo(solo32, [(x.float(), y) for x, y in batches], recipe, seed=0)
        stacked = model.member(k).state_dict()
        for key, value in solo32.state_dict().items():
            rounding = (value.double() - solo64.state_dict()[key]).abs().max().item()
            assert rounding > 0  # float32 did round: the bound is a measured one
            assert (stacked[key] - value).abs().max().item() <= 10 * rounding, key


def test_train_many_returns_the_solo_results_in_order():
    activations = ["relu", "tanh", "selu(x)", "relu"]
    many = train_many("mlp-digits", activations, seed=2, stack=4, epochs=3)
    solo = [train("mlp-digits", a, seed=2, epochs=3) for a in activations]
    assert [r.activation for r in many] == ["relu(x)", "tanh(x)", "selu(x)", "relu(x)"]
    for m, s in zip(many, solo, strict=True):
        assert m.status == s.status == "ok" and m.seed == 2 and m.epochs == 3
        # float32: the same up to rounding. Losses are continuous in it (and these
        # functions learn, far from chance); an accuracy moves by whole images wherever
        # rounding flips a near-tie, so it is not compared here (float64 above is exact)
        assert m.val_loss == pytest.approx(s.val_loss, rel=1e-3)
        assert m.train_loss == pytest.approx(s.train_loss, rel=1e-3)
    assert many[0].val_loss == many[3].val_loss  # one function twice: the same run twice


def test_a_diverging_member_fails_alone_as_it_fails_solo():
    activations = ["relu", "exp(exp(exp(x)))", "tanh"]
    many = train_many("mlp-digits", activations, seed=0, stack=3, epochs=3)
    solo = [train("mlp-digits", a, seed=0, epochs=3) for a in activations]
    assert [r.status for r in many] == [r.status for r in solo] == ["ok", "failed", "ok"]
    assert many[1].reason == solo[1].reason == "training loss became non-finite in epoch 1"
    assert many[1].epochs == solo[1].epochs == 1 and many[1].val_accuracy == 0.1
    for k in (0, 2):
        assert many[k].val_loss == pytest.approx(solo[k].val_loss, rel=1e-3)


def test_a_member_that_breaks_the_pass_and_one_that_cannot_be_built_fail_alone():
    def unbuildable() -> nn.Module:
        raise ValueError("no such thing")

    activations = ["relu", lambda: nn.Flatten(0), unbuildable, "tanh"]
    many = train_many("mlp-digits", activations, seed=0, stack=4, epochs=2)
    solo = [train("mlp-digits", a, seed=0, epochs=2) for a in activations]
    assert [r.status for r in many] == ["ok", "failed", "failed", "ok"]
    for m, s in zip(many, solo, strict=True):
        assert m.reason == s.reason
        assert m.val_loss == s.val_loss or m.val_loss == pytest.approx(s.val_loss, rel=1e-3)


def test_a_pass_broken_by_a_member_is_told_apart_from_a_fault_of_the_stack(monkeypatch,
                                                                           caplog):
    import actbench.stacked_training as stacked_training

    class NoGradient(torch.autograd.Function):  # its forward passes the build's probe
        @staticmethod
        def forward(ctx, x):
            return x.relu()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("no derivative (simulated)")

    class Unlearnable(nn.Module):
        def forward(self, x):
            return NoGradient.apply(x)

    with caplog.at_level("INFO"):  # a member that breaks the pass fails alone too
        many = train_many("mlp-digits", ["relu", Unlearnable, "tanh"], seed=0, stack=3,
                          epochs=1)  # fmt: skip
    assert [r.status for r in many] == ["ok", "failed", "ok"]
    assert "a stacked pass failed (RuntimeError: no derivative (simulated))" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    caplog.clear()

    def broken(self, model, members):  # act's own bug, as the stacked pass would raise it
        raise TypeError("unsupported operand (simulated)")

    monkeypatch.setattr(stacked_training._Stack, "_train", broken)
    with caplog.at_level("INFO"):
        many = train_many("mlp-digits", ["relu", "tanh"], seed=0, stack=2, epochs=1)
    assert [r.status for r in many] == ["ok", "ok"]  # the solo runs' results
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "TypeError: unsupported operand (simulated)" in warnings[0]
    assert "each of its 2 members trains alone" in warnings[0]


def test_a_stopped_stack_resumes_from_its_checkpoint(tmp_path):
    activations = ["relu", "exp(exp(exp(x)))", "tanh"]
    whole = train_many("mlp-digits", activations, 1, stack=3, epochs=4)
    train_many("mlp-digits", activations, 1, stack=3, epochs=2, checkpoint=tmp_path)
    (saved,) = tmp_path.iterdir()  # named by the task, seed, functions and recipe
    assert saved.name == checkpoint_name("mlp-digits", recipe_for(get_task("mlp-digits"), {}),
                                         [f"{a}(x)" if "(" not in a else a
                                          for a in activations], 1)  # fmt: skip
    resumed = train_many("mlp-digits", activations, 1, stack=3, epochs=4, checkpoint=tmp_path)
    fields = TIMINGS
    assert [r.model_dump(exclude=fields) for r in resumed] == \
        [r.model_dump(exclude=fields) for r in whole]
    # other functions, or another recipe, never resume it: they start their own
    others = train_many("mlp-digits", ["selu", "elu", "tanh"], 1, stack=3, epochs=1,
                        checkpoint=tmp_path)  # fmt: skip
    assert [r.epochs for r in others] == [1, 1, 1] and len(list(tmp_path.iterdir())) == 2
    train_many("mlp-digits", activations, 1, stack=3, epochs=1, lr=1e-3, checkpoint=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_a_member_comes_out_as_a_plain_model_and_its_checkpoint_loads(tmp_path):
    built = [_build("cnn", spec, (1, 8, 8), seed=0) for spec in ("relu", "tanh")]
    model = StackedModel([net for net, _ in built], built[0][1])
    _stacked(model, _batches((1, 8, 8), 5), Recipe(optimizer="adam", lr=1e-2, epochs=1,
             batch_size=4), seed=0)  # fmt: skip
    member = model.member(1)
    assert type(member) is nn.Sequential and isinstance(member[1], type(built[1][0][1]))
    torch.save(member.state_dict(), tmp_path / "member.pt")
    fresh, _ = _build("cnn", "tanh", (1, 8, 8), seed=5)
    fresh.load_state_dict(torch.load(tmp_path / "member.pt", weights_only=True))
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    model.eval()
    fresh.eval()
    torch.testing.assert_close(fresh(x), model(x)[1], rtol=0, atol=1e-12)


def test_layers_that_cannot_be_stacked_are_named():
    nets = [nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)) for _ in range(2)]
    with pytest.raises(Unstackable, match=r"layer '1' \(LayerNorm\)"):
        StackedModel(nets, [])
    nets = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d()) for _ in range(2)]
    with pytest.raises(Unstackable, match="Dropout2d"):
        StackedModel(nets, [])


def test_stacks_are_dense_on_a_cpu_and_bad_sizes_are_refused():
    cpu = torch.device("cpu")
    mlp = registry(MODELS).get("mlp").build("relu", (1, 8, 8), 10)
    lenet = registry(MODELS).get("lenet5").build("relu", (1, 28, 28), 10)
    assert auto_stack(mlp, cpu) > 1 and auto_stack(lenet, cpu) == 1
    with pytest.raises(ActError, match="stack must be 1 or more"):
        train_many("mlp-digits", ["relu"], 0, stack=0)
    with pytest.raises(ActError, match="seed must be an integer"):
        train_many("mlp-digits", ["relu"], -1)


def test_members_left_after_one_is_dropped_still_follow_their_solo_runs():
    """A failed member leaves the stack (it costs nothing more); the optimiser's state is
    cut with it, so the others go on exactly."""
    from actbench.stacking import keep_in_optimizer

    shape = (1, 8, 8)
    recipe = Recipe(optimizer="adam", lr=1e-3, epochs=1, batch_size=4)
    batches = _batches(shape, 20)
    built = [_build("cnn", spec, shape, seed=1) for spec in MEMBERS]
    model = StackedModel([net for net, _ in built], built[0][1])
    optimizer = recipe.optimizer_for(model.parameters())
    for step, (x, y) in enumerate(batches):
        if step == 10:
            keep_in_optimizer(optimizer, model.keep([0, 2]), [0, 2], 3)
        losses = _member_losses(model(x), y)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
    # 5 stacked layers (weight, bias) and the PReLU slopes of member 2 at its 4 sites
    assert len(model) == 2 and len(optimizer.param_groups[0]["params"]) == 10 + 4
    for position, spec in ((0, MEMBERS[0]), (1, MEMBERS[2])):
        solo, _ = _build("cnn", spec, shape, seed=1)
        solo_optimizer = recipe.optimizer_for(solo.parameters())
        for x, y in batches:
            loss = F.cross_entropy(solo(x), y)
            solo_optimizer.zero_grad()
            loss.backward()
            solo_optimizer.step()
        trained = model.member(position).state_dict()
        for key, value in solo.state_dict().items():
            torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-9, msg=key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_members_follow_their_solo_runs_on_cuda():
    shape, recipe = (3, 12, 12), Recipe(optimizer="rmsprop", lr=1e-3, epochs=1, batch_size=4)
    batches = [(x.cuda(), y.cuda()) for x, y in _batches(shape, 20)]
    built = [_build("kerasnet", spec, shape, seed=0) for spec in MEMBERS]
    model = StackedModel([net.cuda() for net, _ in built], built[0][1])
    _stacked(model, batches, recipe, seed=0)
    for k, spec in enumerate(MEMBERS):
        solo = _build("kerasnet", spec, shape, seed=0)[0].cuda()
        _solo(solo, batches, recipe, seed=0)
        for key, value in solo.state_dict().items():
            torch.testing.assert_close(model.member(k).state_dict()[key], value, rtol=0,
                                       atol=1e-9, msg=key)  # fmt: skip
    many = train_many("mlp-digits", ["relu", "tanh"], 0, stack=2, device="cuda", epochs=2)
    assert [r.status for r in many] == ["ok", "ok"] and many[0].val_accuracy > 0.5


class _Double(nn.Module):
    def forward(self, x):
        return x.double()


def _dropout_mlp(act, input_shape, num_classes) -> nn.Module:
    """An MLP with dropout after each activation, computing in float64."""
    size = input_shape[-1] * input_shape[-2]
    return nn.Sequential(_Double(), nn.Flatten(), nn.Linear(size, 24), act(), nn.Dropout(0.3),
                         nn.Linear(24, 24), act(), nn.Dropout(0.3),
                         nn.Linear(24, num_classes)).double()  # fmt: skip


@pytest.fixture
def dropout_task():
    """mlp-digits' data with :func:`_dropout_mlp`, from a plugin."""
    from actbench.models import Model
    from actbench.tasks import Task
    from actcore import hookimpl, plugins

    class Plugin:
        @hookimpl
        def act_models(self):
            return [Model("dropout-mlp64", "float64 MLP with dropout", _dropout_mlp)]

    plugins.register(Plugin(), name="dropout-mlp64-plugin")
    yield Task("digits-dropout64", "digits", "dropout-mlp64",
               Recipe(optimizer="adam", lr=3e-3, epochs=2, batch_size=64))
    plugins.unregister("dropout-mlp64-plugin")


def test_a_member_that_draws_random_numbers_trains_alone_and_the_rest_keep_their_masks(
        dropout_task, monkeypatch, caplog):
    """RReLU draws a slope per value in training: in a stack its draws would shift the
    dropout masks of every member after it (0.87 apart in a loss, measured). It trains
    alone; the others stack and follow their solo runs, masks and all, in float64."""
    import actbench.stacked_training as stacked_training

    sizes: list[int] = []
    real = stacked_training.StackedModel

    def recording(members, sites):
        sizes.append(len(members))
        return real(members, sites)

    monkeypatch.setattr(stacked_training, "StackedModel", recording)
    activations = ["relu", nn.RReLU, "tanh", "selu(x)"]
    with caplog.at_level("INFO"):
        many = train_many(dropout_task, activations, seed=3, stack=4)
    assert sizes == [3]  # relu, tanh and selu stacked; RReLU alone
    assert "draws random numbers in training" in caplog.text
    solo = [train(dropout_task, a, seed=3) for a in activations]
    for m, s in zip(many, solo, strict=True):
        assert m.status == s.status == "ok"
        assert m.train_loss == pytest.approx(s.train_loss, rel=1e-9, abs=0)
        assert m.val_loss == pytest.approx(s.val_loss, rel=1e-9, abs=0)
        assert m.val_accuracy == s.val_accuracy  # float64: no near-tie flips at 1e-12


def test_a_stack_that_runs_out_of_memory_is_halved(monkeypatch, caplog):
    import actbench.stacked_training as stacked_training

    tried: list[int] = []
    real = stacked_training.StackedModel

    class Small(real):
        def forward(self, x):
            if len(self) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return super().forward(x)

    def recording(members, sites):
        tried.append(len(members))
        return Small(members, sites)

    monkeypatch.setattr(stacked_training, "StackedModel", recording)
    activations = ["relu", "tanh", "selu(x)", "elu(x)", "softsign(x)"]
    with caplog.at_level("INFO"):
        many = train_many("mlp-digits", activations, seed=0, stack=5, epochs=1)
    assert tried == [5, 2, 3, 1 + 1] or tried[:3] == [5, 2, 3]
    assert "a stack of 5 ran out of memory; stacks of 2 and 3 instead" in caplog.text
    assert [r.activation for r in many] == [f"{a}(x)" if "(" not in a else a
                                            for a in activations]  # fmt: skip
    assert all(r.status == "ok" for r in many)


def test_choosing_the_stack_size_leaves_the_callers_random_state_alone():
    from actbench.stacked_training import members_per_stack

    torch.manual_seed(11)
    before = torch.get_rng_state()
    assert members_per_stack("mlp-digits") == 32
    assert torch.equal(torch.get_rng_state(), before)
