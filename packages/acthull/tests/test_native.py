"""The native hull kernel (acthull.native) against the eager kernel, an independent
float64 formula and numerical derivatives; and its fallbacks."""

import copy
import os
import stat
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from acthull import AffineHull, ConvexHull, native

TABULATED = ["identity", "relu", "tanh", "sigmoid", "swish"]
FNS = [lambda x: x, torch.relu, torch.tanh, torch.sigmoid, F.silu]


@pytest.fixture
def library():
    lib = native.library()
    if lib is None:
        pytest.skip(f"the native kernel does not build here: {native.BUILD_PROBLEM[-1]}")
    return lib


@pytest.fixture
def uses_native(monkeypatch, library):
    """Counts the native kernel's calls that computed something (not None)."""
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        original = getattr(native.NativeKernels, name)

        def counted(self, *args, _original=original, _name=name):
            out = _original(self, *args)
            calls[_name] += out is not None
            return out

        monkeypatch.setattr(native.NativeKernels, name, counted)
    return calls


def _pair(cls, bases, dtype, seed=0, **options):
    """A hull with random coefficients and its twin on the eager kernel."""
    torch.manual_seed(seed)
    hull = cls(bases, **options).to(dtype)
    with torch.no_grad():
        hull.raw.normal_()
    eager = copy.deepcopy(hull)
    eager.kernel = "eager"
    return hull, eager


def _forward_backward(hull, x):
    x = x.detach().requires_grad_()
    y = hull(x)
    grads = torch.autograd.grad((y * torch.cos(y)).sum(), (x, hull.raw))
    return y.detach(), *grads


def _check_against_eager(hull, eager, x):
    """Outputs and input gradients to float rounding; coefficient gradients, sums over
    the layer, rounded relative to the sum of the terms' sizes, Σ|dL/dy|·|f(x)| ≤
    Σ|dL/dy|·(|x|+1) for these bases, not to the (cancelling) result."""
    (y, grad_x, grad_raw), expected = _forward_backward(hull, x), _forward_backward(eager, x)
    tol = {torch.float32: 2e-6, torch.float64: 1e-13}[x.dtype]
    for a, b in zip((y, grad_x), expected):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())
    x64 = x.double()
    y64, _, exact = _forward_backward(eager.double(), x64)
    scale = ((torch.cos(y64) - y64 * torch.sin(y64)).abs() * (x64.abs() + 1)).sum()
    for got in (grad_raw, expected[2]):  # native, eager
        assert (got.double() - exact).abs().max() <= tol * scale


@pytest.mark.parametrize("cls", [ConvexHull, AffineHull])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# one short block; a few blocks and a partial one; enough blocks to spread over threads
@pytest.mark.parametrize("shape", [(5,), (4, 3, 37, 37), (8, 3, 48, 48)])
def test_matches_the_eager_kernel(uses_native, cls, dtype, shape):
    for bases in (TABULATED, ["identity", "relu", "tanh"], ["tanh"], ["swish"],
                  ["relu", "tanh", "relu"]):  # a base twice: its coefficients add
        hull, eager = _pair(cls, bases, dtype)
        _check_against_eager(hull, eager, 3 * torch.randn(*shape, dtype=dtype))
    assert uses_native == {"forward": 5, "backward": 5}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("shape", "dim", "channels_last"), [
    ((4, 3, 37, 37), 1, False),  # feature maps of several blocks
    ((2, 3, 5, 40), 1, False),   # runs shorter than a block
    ((6, 5, 33), 1, False),      # the shortest runs that take the kernel (MIN_RUN = 32)
    ((2, 3, 7, 40), 2, False),   # channels along another dimension
    # channels interleaved: channels-last maps (items of several rows, a partial one, and
    # enough of them to spread over threads), a dense layer's features, two channels, and
    # rows longer than a block
    ((4, 20, 24, 24), 1, True),
    ((3, 7, 5, 5), 1, True),
    ((32, 500), 1, False),
    ((4, 50, 24), 2, False),  # features last, as a transformer's tokens carry them
    ((9, 2), 1, False),
    ((3, 4100), 1, False),
])
def test_per_channel_coefficients_match_the_eager_kernel(uses_native, dtype, shape, dim,
                                                         channels_last):
    channels = shape[dim]
    x = 3 * torch.randn(*shape, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    for cls in (ConvexHull, AffineHull):
        hull, eager = _pair(cls, TABULATED, dtype, channels=channels, channel_dim=dim)
        _check_against_eager(hull, eager, x)
    assert uses_native == {"forward": 2, "backward": 2}


@pytest.mark.parametrize(("channels", "shape"), [(None, (2, 3, 40)), (3, (2, 3, 40)),
                                                (3, (5, 3))])  # the last interleaved
def test_matches_an_independent_formula_and_numerical_derivatives(uses_native, channels,
                                                                  shape):
    hull, _ = _pair(AffineHull, TABULATED, torch.float64, channels=channels)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    c = hull.coefficients().detach()  # (bases,) or (bases, channels), to broadcast on x
    c = c.reshape(len(FNS), *([1] * x.dim())) if channels is None else \
        c.reshape(len(FNS), 1, channels, *([1] * (x.dim() - 2)))
    torch.testing.assert_close(hull(x), sum(c[i] * f(x) for i, f in enumerate(FNS)))
    raw = hull.raw.detach().clone().requires_grad_()
    call = lambda x, r: torch.func.functional_call(hull, {"raw": r}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, raw))
    assert uses_native["backward"] > 0


def test_second_derivatives_go_through_torch_ops(uses_native):
    """create_graph=True: the native gradients would have no graph, so backward runs the
    eager ops there (a numerical check of the gradient's own gradient; not swish, whose
    torch backward kernel has no derivative of its own)."""
    hull, _ = _pair(AffineHull, TABULATED[:4], torch.float64)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    raw = hull.raw.detach().clone().requires_grad_()
    call = lambda x, r: torch.func.functional_call(hull, {"raw": r}, (x,))  # noqa: E731
    assert torch.autograd.gradgradcheck(call, (x, raw))
    assert uses_native["forward"] > 0


@pytest.mark.parametrize(("channels", "memory_format"), [
    (None, torch.contiguous_format), (8, torch.contiguous_format), (8, torch.channels_last)])
def test_the_same_numbers_on_any_thread_count(library, channels, memory_format):
    hull, _ = _pair(AffineHull, TABULATED, torch.float32, channels=channels)
    x = torch.randn(16, 8, 32, 32).to(memory_format=memory_format)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(_forward_backward(hull, x))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:  # coefficient gradients are summed in block order
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_nan_and_infinities_as_torch(library):
    hull, eager = _pair(AffineHull, TABULATED[:4], torch.float32)
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30])
    torch.testing.assert_close(hull(x), eager(x), equal_nan=True)
    for name, fn in zip(TABULATED, FNS):
        single = ConvexHull([name])
        torch.testing.assert_close(single(x), fn(x), equal_nan=True)
    # gradients too: torch's relu passes the gradient at NaN (threshold_backward), and a
    # NaN value makes the coefficient gradient NaN
    for name, fn in zip(TABULATED, FNS):
        single = AffineHull([name])
        leaf, reference = x.clone().requires_grad_(), x.clone().requires_grad_()
        single(leaf).sum().backward()
        fn(reference).sum().backward()
        torch.testing.assert_close(leaf.grad, reference.grad, equal_nan=True)
        assert single.raw.grad.isnan().all(), name


def test_other_cases_take_the_eager_kernel(uses_native):
    per_channel = AffineHull(["identity", "relu"], channels=3)
    per_channel(torch.randn(2, 3, 4)).sum().backward()  # runs of 4 values: too short
    ConvexHull(["identity", "relu"]).bfloat16()(torch.randn(4, dtype=torch.bfloat16))
    ConvexHull(["identity", "relu", "exp"])(torch.randn(4))  # exp: not a native base
    assert uses_native == {"forward": 0, "backward": 0}


def test_empty_input(uses_native):
    hull = AffineHull(["identity", "relu", "tanh"])
    x = torch.randn(0, 3, requires_grad=True)
    hull(x).sum().backward()
    assert x.grad.shape == (0, 3) and torch.equal(hull.raw.grad, torch.zeros(3))
    assert uses_native == {"forward": 1, "backward": 1}


def test_the_eager_kernel_never_builds_anything(monkeypatch):
    def refuse():
        raise AssertionError("kernel='eager' built the native kernel")

    monkeypatch.setattr(native, "library", refuse)
    hull = AffineHull(["identity", "relu", "tanh"], kernel="eager")
    hull(torch.randn(4, requires_grad=True)).sum().backward()


@pytest.fixture
def fresh_library():
    """The process's library state cleared before and after the test."""
    native.library.cache_clear()
    yield
    native.library.cache_clear()


def test_a_kernel_that_cannot_be_built_falls_back_with_one_warning(monkeypatch,
                                                                     fresh_library):
    def no_compiler():
        raise RuntimeError("no C++ compiler 'c++' on PATH (set $CXX)")

    monkeypatch.setattr(native, "build", no_compiler)
    monkeypatch.setattr(native, "BUILD_PROBLEM", [])
    hull, eager = _pair(AffineHull, ["identity", "relu", "tanh"], torch.float32)
    x = torch.randn(4, 3, 5)
    with pytest.warns(RuntimeWarning, match="native hull kernel is not available.*no C"):
        first = _forward_backward(hull, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        second = _forward_backward(hull, x)
    expected = _forward_backward(eager, x)
    for a, b, c in zip(first, second, expected):
        assert torch.equal(a, c) and torch.equal(b, c)


def test_build_compiles_once_into_the_cache(monkeypatch, tmp_path, library):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    path = native.build()
    assert path.parent == tmp_path / "kernels" and path.is_file()
    built = path.stat().st_mtime_ns
    assert native.build() == path and path.stat().st_mtime_ns == built
    # no temporaries left (the lock file stays: the next build takes it)
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock", path.name]


def test_build_errors_name_the_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler 'no-such-compiler'"):
        native.build()
    monkeypatch.setenv("CXX", "false")  # a command that fails
    with pytest.raises(RuntimeError, match="false failed"):
        native.build()
    hangs = tmp_path / "hangs"  # a driver whose child hangs too: the group is killed
    child = tmp_path / "child.pid"
    hangs.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo hangs 1.0 && exit 0\n'
                     f"sleep 300 &\necho $! > {child}\nexec sleep 300\n")
    hangs.chmod(0o755)
    monkeypatch.setenv("CXX", str(hangs))
    monkeypatch.setattr(native, "BUILD_TIMEOUT_S", 1.0)
    with pytest.raises(RuntimeError, match=r"hangs took over 1\.0 s"):
        native.build()
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [".build.lock"]
    pid = int(child.read_text())
    for _ in range(50):  # killed: gone once its parent (init) has reaped it
        if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def test_a_cache_that_is_not_private_is_refused(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "BUILD_PROBLEM", [])
    folder = native.kernel_folder()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # another user could plant a library here
    with pytest.raises(RuntimeError, match="writable by other users"):
        native.build()
    with pytest.warns(RuntimeWarning, match="writable by other users"):
        assert native.library() is None
    folder.chmod(0o700)
    monkeypatch.setattr(native.os, "getuid", lambda: 12345)  # as if it were someone else's
    with pytest.raises(RuntimeError, match="belongs to another user"):
        native.build()


def test_a_planted_file_is_refused(monkeypatch, tmp_path, library):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    path = native.build()
    path.chmod(0o766)
    with pytest.raises(RuntimeError, match=f"the file {path} is writable by other users"):
        native.build()
    path.unlink()
    target = tmp_path / "elsewhere.so"
    target.write_bytes(b"")
    path.symlink_to(target)
    with pytest.raises(RuntimeError, match="is a symbolic link"):
        native.build()


def test_an_empty_cache_setting_is_not_the_current_folder(monkeypatch, tmp_path):
    from actcore.cache import cache_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACT_CACHE_DIR", "")
    assert cache_root() == Path.home() / ".cache" / "act"


def test_a_library_that_is_not_this_kernel_falls_back_once(monkeypatch, tmp_path, library,
                                                            fresh_library):
    """A file at the kernel's name without its symbols, or of another version: one
    warning, the eager kernel, remembered (never an AttributeError from a forward)."""
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "BUILD_PROBLEM", [])
    path = native.library_path(os.environ.get("CXX") or "c++", native.compile_flags())
    source = tmp_path / "other.c"
    source.write_text("int something_else(void) { return 1; }\n")
    compiler = os.environ.get("CXX") or "c++"
    subprocess.run([compiler, "-x", "c", "-shared", "-fPIC", str(source), "-o", str(path)],
                   check=True)  # fmt: skip
    path.chmod(0o700)
    hull, eager = _pair(AffineHull, ["identity", "relu", "tanh"], torch.float32)
    x = torch.randn(4, 3, 5)
    with pytest.warns(RuntimeWarning, match="act_hull_abi_version"):
        got = _forward_backward(hull, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _forward_backward(hull, x)
    assert all(torch.equal(a, b) for a, b in zip(got, _forward_backward(eager, x)))
    native.library.cache_clear()
    built = native.ABI_VERSION
    monkeypatch.setattr(native, "ABI_VERSION", 99)  # a library of another act version
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path / "other"))  # dlopen keeps a name
    with pytest.warns(RuntimeWarning, match=f"act_hull_abi_version {built}, not 99"):
        assert native.library() is None


def test_the_cache_key_names_compiler_flags_and_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "compiler_identity", lambda compiler: "/usr/bin/g++ 12.2")
    monkeypatch.setenv(native.TARGETS_ENV, "avx512f,avx2,default")
    base = native.library_path("c++", native.compile_flags())
    assert native.library_path("c++", native.compile_flags()) == base
    assert native.library_path("c++", (*native.compile_flags(), "-O2")) != base
    monkeypatch.setenv(native.TARGETS_ENV, "default")
    assert native.library_path("c++", native.compile_flags()) != base
    monkeypatch.setenv(native.TARGETS_ENV, "avx512f,avx2,default")
    monkeypatch.setattr(native, "compiler_identity", lambda compiler: "/usr/bin/g++ 13.1")
    assert native.library_path("c++", native.compile_flags()) != base
    monkeypatch.setattr(native, "compiler_identity", lambda compiler: "/usr/bin/g++ 12.2")
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    assert native.library_path("c++", native.compile_flags()) != base


def test_workers_starting_together_compile_once(monkeypatch, tmp_path, library):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    compiles = []
    real = native._compile

    def counted(command):
        compiles.append(command)
        time.sleep(0.5)  # long enough for the others to arrive at the lock
        real(command)

    monkeypatch.setattr(native, "_compile", counted)
    with ThreadPoolExecutor(3) as pool:
        paths = set(pool.map(lambda _: native.build(), range(3)))
    assert len(compiles) == 1 and len(paths) == 1


def test_a_killed_builds_temporary_file_is_removed(monkeypatch, tmp_path, library):
    monkeypatch.setenv("ACT_CACHE_DIR", str(tmp_path))
    path = native.library_path(os.environ.get("CXX") or "c++", native.compile_flags())
    stale = path.with_name(f".{path.name}.tmp-abc123.so")
    other = path.with_name(".acthull_kernel-0123456789abcdef.so.tmp-xyz789.so")  # other flags
    kept = path.with_name("notes.so")
    for file in (stale, other, kept):
        file.write_bytes(b"half a library")
    native.build()
    assert not stale.exists() and not other.exists() and path.exists() and kept.exists()


def test_channels_last_stays_channels_last(uses_native):
    hull, eager = _pair(AffineHull, ["identity", "relu", "tanh"], torch.float32)
    x = torch.randn(2, 3, 9, 9).to(memory_format=torch.channels_last)
    grad = torch.randn(2, 3, 9, 9)
    got, expected = [], []
    for module, out in ((hull, got), (eager, expected)):
        leaf = x.clone().requires_grad_()
        y = module(leaf)
        y.backward(grad)
        out += [y, leaf.grad]
    assert uses_native == {"forward": 1, "backward": 1}
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert got[1].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    # per channel, channels-last maps interleave the channels: the kernel walks them so
    per_channel = AffineHull(["identity", "relu"], channels=3)
    assert per_channel(x).is_contiguous(memory_format=torch.channels_last)
    assert uses_native["forward"] == 2
