"""K copies of one network that differ only in their activation functions, as one module
(a *training stack*: each function with its own weights; not a function pass, where
functions share one set of weights for spectra: :mod:`actcore.stacked`).

The members' samples travel member by member in one batch of ``K·B`` (member ``k`` owns
rows ``k·B … (k+1)·B − 1``), so layers without parameters (pooling, flattening, residual
additions, local response normalisation) work unchanged. Layers with parameters hold the
``K`` members' parameters stacked on a leading axis and apply member ``k``'s to its rows:
dense layers as one batched matrix product, convolutions as one grouped convolution,
BatchNorm with statistics per member. Dropout draws one mask of the solo network's shape
and applies it to every member, which is the mask each solo run draws from the same
generator state. An element-wise optimiser on the stacked parameters is then exactly K
optimisers, and the sum of the members' losses gives each member its own gradient.

A layer kind this module does not know, if it has parameters or buffers, makes the model
unstackable (:class:`Unstackable`), and the caller trains the members one at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actcore.compile import Activation
from actcore.expr import Expr, get_operator, parse


class Unstackable(Exception):
    """The model holds a layer that cannot be stacked; the message names it."""


def _to_channels(x: Tensor, k: int) -> Tensor:
    """``(K·B, C, …)`` -> ``(B, K·C, …)``: member k's channels become group k."""
    b = x.shape[0] // k
    return x.reshape(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, k * x.shape[1], *x.shape[2:])


def _from_channels(x: Tensor, k: int) -> Tensor:
    """The inverse of :func:`_to_channels`."""
    b, c = x.shape[0], x.shape[1] // k
    return x.reshape(b, k, c, *x.shape[2:]).transpose(0, 1).reshape(k * b, c, *x.shape[2:])


def _stack(tensors: Sequence[Tensor | None]) -> nn.Parameter | None:
    if tensors[0] is None:
        return None
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


class StackedLinear(nn.Module):
    """``K`` dense layers: weight ``(K, out, in)``, one batched matrix product."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = _stack([layer.weight for layer in layers])
        self.bias = _stack([layer.bias for layer in layers])

    def forward(self, x: Tensor) -> Tensor:
        k = self.weight.shape[0]
        rows = x.reshape(k, -1, x.shape[-1])
        if self.bias is None:
            out = torch.bmm(rows, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), rows, self.weight.transpose(1, 2))
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def forward_shared(self, x: Tensor) -> Tensor:
        """Every member's rows are ``x`` (a network's input layer): one matrix product
        against all members' weights, rather than ``K`` products over ``K`` copies."""
        k, width = self.weight.shape[0], self.weight.shape[1]
        bias = None if self.bias is None else self.bias.reshape(-1)
        out = F.linear(x, self.weight.reshape(k * width, -1), bias)  # (B, K·out)
        return out.reshape(-1, k, width).transpose(0, 1).reshape(-1, width)


class StackedConv2d(nn.Module):
    """``K`` convolutions as one grouped convolution (``K·groups`` groups)."""

    def __init__(self, layers: Sequence[nn.Conv2d]):
        super().__init__()
        first = layers[0]
        if first.padding_mode != "zeros" or isinstance(first.padding, str):
            raise Unstackable(f"convolutions with padding {first.padding!r} "
                              f"({first.padding_mode}) are not stacked")
        self.weight = _stack([layer.weight for layer in layers])
        self.bias = _stack([layer.bias for layer in layers])
        self.stride, self.padding = first.stride, first.padding
        self.dilation, self.groups = first.dilation, first.groups

    def forward(self, x: Tensor) -> Tensor:
        k = self.weight.shape[0]
        out = F.conv2d(
            _to_channels(x, k), self.weight.flatten(0, 1),
            None if self.bias is None else self.bias.flatten(), self.stride, self.padding,
            self.dilation, self.groups * k,
        )  # fmt: skip
        return _from_channels(out, k)


class StackedBatchNorm(nn.Module):
    """``K`` BatchNorm layers: each member's statistics over its own rows only."""

    def __init__(self, layers: Sequence[nn.modules.batchnorm._BatchNorm]):
        super().__init__()
        first = layers[0]
        if not first.track_running_stats:
            raise Unstackable("BatchNorm without running statistics is not stacked")
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = _stack([layer.weight for layer in layers])
        self.bias = _stack([layer.bias for layer in layers])
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, torch.stack([getattr(layer, name) for layer in layers]))

    def forward(self, x: Tensor) -> Tensor:
        k = self.running_mean.shape[0]
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = (self.momentum if self.momentum is not None
                      else 1.0 / float(self.num_batches_tracked[0]))  # fmt: skip
        out = F.batch_norm(
            _to_channels(x, k), self.running_mean.view(-1), self.running_var.view(-1),
            None if self.weight is None else self.weight.flatten(),
            None if self.bias is None else self.bias.flatten(), self.training, factor, self.eps,
        )  # fmt: skip
        return _from_channels(out, k)


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn once at one member's shape and used by all: torch's own
    dropout of a tensor of ones, which draws what each solo run's dropout draws (on any
    device, the kernel that device uses)."""

    def __init__(self, p: float, members: int):
        super().__init__()
        self.p, self.members = p, members

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        rows = x.reshape(self.members, -1, *x.shape[1:])
        ones = torch.ones(rows.shape[1:], dtype=x.dtype, device=x.device)
        return (rows * F.dropout(ones, self.p, training=True)).reshape(x.shape)


def _direct(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """``module`` as a plain function: act's fixed-operator expressions call their
    operators directly (no module call per tree node, which costs more than the operator
    on one member's few thousand values); anything else is called as it is."""
    if not isinstance(module, Activation) or any(True for _ in module.parameters()):
        return module
    operators = [node for node in parse(module.expression).nodes() if node.args]
    if any(get_operator(node.op).module is not None for node in operators):
        return module

    def compiled(expr: Expr) -> Callable[[Tensor], Tensor]:
        if expr.is_input:
            return lambda x: x
        fn, args = get_operator(expr.op).fn, [compiled(arg) for arg in expr.args]
        if len(args) == 1:
            (arg,) = args
            return lambda x: fn(arg(x))
        return lambda x: fn(*[arg(x) for arg in args])

    root = compiled(parse(module.expression))
    if not module.normalized:
        return root
    return lambda x: (root(x) - module.shift.to(x.dtype)) * module.scale.to(x.dtype)


class MemberActivations(nn.Module):
    """The activation site of every member; member ``k``'s module on its rows. The
    modules are the members' own, so learnable activations keep their own parameters."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(modules)
        self._calls = [_direct(m) for m in modules]

    def keep(self, members: Sequence[int]) -> None:
        self.members = nn.ModuleList([self.members[i] for i in members])
        self._calls = [self._calls[i] for i in members]

    def forward(self, x: Tensor) -> Tensor:
        chunks = x.chunk(len(self._calls))
        return torch.cat([call(chunk) for call, chunk in zip(self._calls, chunks)])


@torch.no_grad()
def keep_in_optimizer(optimizer: torch.optim.Optimizer, replaced: dict[nn.Parameter, nn.Parameter],
                      kept: Sequence[int], members: int) -> None:
    """Point ``optimizer`` at the parameters :meth:`StackedModel.keep` left, with their
    state cut to the kept members (element-wise optimisers: the state has the
    parameter's shape, or is a scalar such as Adam's step count)."""
    index = torch.tensor(list(kept), dtype=torch.long)
    for group in optimizer.param_groups:
        group["params"] = [replaced[p] for p in group["params"] if p in replaced]
    state = {}
    for old, new in replaced.items():
        if old not in optimizer.state:
            continue
        state[new] = {
            key: value[index.to(value.device)] if old is not new and torch.is_tensor(value)
            and value.dim() and value.shape[0] == members else value
            for key, value in optimizer.state[old].items()
        }  # fmt: skip
    optimizer.state.clear()
    optimizer.state.update(state)


_LAYERS = {nn.Linear: StackedLinear, nn.Conv2d: StackedConv2d, nn.BatchNorm1d: StackedBatchNorm,
           nn.BatchNorm2d: StackedBatchNorm}  # fmt: skip


class StackedModel(nn.Module):
    """The members as one module: ``forward(x)`` on a batch of ``B`` gives ``(K, B, …)``,
    member ``k``'s outputs at index ``k``. :meth:`member` writes the trained parameters
    back into member ``k``'s own model and returns it."""

    def __init__(self, members: Sequence[nn.Module], sites: Sequence[str]):
        super().__init__()
        self._members = list(members)  # not submodules: their parameters are copied
        self.sites = list(sites)
        self.body = copy.deepcopy(members[0])
        self.stacked: list[str] = []
        k = len(members)
        for name, module in list(self.body.named_modules()):
            if not name or any(name.startswith(f"{site}.") for site in self.sites):
                continue
            parts = [m.get_submodule(name) for m in members]
            if name in self.sites:
                self.body.set_submodule(name, MemberActivations(parts))
            elif type(module) in _LAYERS:
                self.body.set_submodule(name, _LAYERS[type(module)](parts))
                self.stacked.append(name)
            elif type(module) is nn.Dropout:
                self.body.set_submodule(name, SharedDropout(module.p, k))
            elif isinstance(module, nn.modules.dropout._DropoutNd | nn.AlphaDropout):
                raise Unstackable(f"layer {name!r} ({type(module).__name__}) is not stacked")
            elif any(True for _ in module.parameters(recurse=False)) or any(
                    True for _ in module.buffers(recurse=False)):
                raise Unstackable(f"layer {name!r} ({type(module).__name__}) has parameters "
                                  "of a kind that is not stacked")

    def __len__(self) -> int:
        return len(self._members)

    @torch.no_grad()
    def keep(self, members: Sequence[int]) -> dict[nn.Parameter, nn.Parameter]:
        """Go on with ``members`` only (positions in the stack, in order), so members that
        failed cost nothing more; returns each kept parameter's replacement (a parameter
        missing from it was dropped), for :func:`keep_in_optimizer`."""
        index = torch.tensor(list(members), dtype=torch.long)
        replaced: dict[nn.Parameter, nn.Parameter] = {}
        for layer in self.stacked:
            module = self.body.get_submodule(layer)
            for name, param in list(module.named_parameters(recurse=False)):
                new = nn.Parameter(param[index.to(param.device)])
                setattr(module, name, new)
                replaced[param] = new
            for name, buffer in list(module.named_buffers(recurse=False)):
                setattr(module, name, buffer[index.to(buffer.device)])
        for module in self.body.modules():
            if isinstance(module, MemberActivations):
                module.keep(members)
                replaced.update((p, p) for p in module.members.parameters())
            elif isinstance(module, SharedDropout):
                module.members = len(members)
        self._members = [self._members[i] for i in members]
        return replaced

    def forward(self, x: Tensor) -> Tensor:
        k = len(self._members)
        first = self._shared_input_layer()
        if first is None:
            out = self.body(x.repeat(k, *[1] * (x.dim() - 1)))
        else:
            for module in self.body[:first]:
                x = module(x)
            out = self.body[first].forward_shared(x)
            for module in self.body[first + 1 :]:
                out = module(out)
        return out.reshape(k, -1, *out.shape[1:])

    def _shared_input_layer(self) -> int | None:
        """Where a sequential network's first dense layer is, if only flattening comes
        before it: the members' input is the same there, and one product serves all."""
        if not isinstance(self.body, nn.Sequential):
            return None
        for i, module in enumerate(self.body):
            if isinstance(module, StackedLinear):
                return i
            if type(module) not in (nn.Flatten, nn.Identity):
                return None
        return None

    @torch.no_grad()
    def member(self, k: int) -> nn.Module:
        """Member ``k``'s model with the stacked parameters and statistics written back."""
        model = self._members[k]
        for name in self.stacked:
            stacked, own = self.body.get_submodule(name), model.get_submodule(name)
            for key, value in stacked.state_dict().items():
                getattr(own, key).copy_(value[k])
        return model
