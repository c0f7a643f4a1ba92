"""The native hull kernel: a hull's forward and backward as one loop each.

Eager PyTorch makes a pass over the layer for every base's value, every slope and every
coefficient gradient; on KerasNet that made a hull's training step 1.2-1.5x ReLU's.
``hull_kernel.cpp`` reads the layer once per direction, block by block in cache. It
covers the common cases: per-layer coefficients, or per-channel ones where each channel
holds a run of values (a convolution's feature map in the standard layout) or where the
channels are interleaved (channels-last feature maps, as act trains CNNs on a CPU; a
dense layer's features), over tabulated bases (identity, relu, tanh, sigmoid, silu),
float32 or float64, on CPU. Anything else returns None and
:class:`acthull.fused.WeightedSum` runs its eager kernel.

The library is plain C++ (no torch headers), compiled on first use with one call of the
system's C++ compiler (``$CXX``, else ``c++``; about 6 s, once) into act's cache, and
called through ctypes. torch's extension builder would need ninja and include torch's
headers (20 s more), and it waits forever on the lock an interrupted build leaves; here
each builder compiles to a temporary file and renames it. Where it cannot be built or
loaded (no compiler; no glibc vector maths, as on macOS), hulls warn once and use the
eager kernel, which computes the same to float rounding.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import signal
import stat
import subprocess
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from actcore.atomic import atomic_path, remove_stale_temporaries
from actcore.cache import cache_root
from actcore.console import log
from actcore.errors import ActError
from acthull.fused import TABULATED

try:
    import fcntl
except ImportError:  # not POSIX: no lock (and no native kernel: it needs glibc)
    fcntl = None

#: The bases the kernel computes, numbered in the order of the one table of them,
#: :data:`acthull.fused.TABULATED`; the numbers reach the C++ enum as -DACT_BASE_<NAME>.
CODES: dict[Callable[..., Tensor], int] = {fn: code for code, fn in enumerate(TABULATED)}
SOURCE = Path(__file__).with_name("hull_kernel.cpp")
LIBRARY_STEM = "acthull_kernel"  # the cached libraries are LIBRARY_STEM-DIGEST.so
#: -fno-math-errno and -fno-trapping-math let the tanh and exp calls and the ReLU select
#: vectorise (not -ffast-math: NaN and infinities behave as in torch); -fopenmp uses
#: torch's thread pool where torch ships libgomp (its Linux wheels); -z now fails the
#: load, not a later call, where a vector maths symbol is missing.
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-fPIC", "-shared",
         "-Wl,--no-undefined", "-Wl,-z,now")  # fmt: skip
LIBRARIES = ("-lmvec", "-lm")
BUILD_TIMEOUT_S = 300
TARGETS_ENV = "ACT_HULL_KERNEL_TARGETS"
_TYPES = {torch.float32: "f32", torch.float64: "f64"}
#: why the kernel is not available in this process (then hulls use the eager kernel)
BUILD_PROBLEM: list[str] = []
#: the interface version the library reports (act_hull_abi_version in hull_kernel.cpp)
ABI_VERSION = 3


def compile_flags() -> tuple[str, ...]:
    """FLAGS and the x86-64 variants to build: ``$ACT_HULL_KERNEL_TARGETS`` (GCC
    ``target_clones`` names, comma-separated, ``default`` among them), else
    ``avx512f,avx2,default``. CI runs the kernel's tests on ``default`` alone, the
    variant a CPU without AVX2 gets."""
    targets = os.environ.get(TARGETS_ENV) or "avx512f,avx2,default"
    quoted = ",".join(f'"{target.strip()}"' for target in targets.split(","))
    codes = [f"-DACT_BASE_{TABULATED[fn].name.upper()}={code}" for fn, code in CODES.items()]
    return (*FLAGS, f"-DACT_TARGETS={quoted}", *codes, f"-DACT_BASES={len(CODES)}")


def compiler_identity(compiler: str) -> str:
    """What names the compiler in the cache key: its resolved path and its version line
    (another compiler, or the same one upgraded, builds its own file)."""
    path = shutil.which(compiler)
    if path is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set $CXX)")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
        version = (done.stdout or done.stderr).strip().splitlines()[0] if (
            done.stdout or done.stderr).strip() else f"exit {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as err:
        version = type(err).__name__
    return f"{os.path.realpath(path)} {version}"


def library_path(compiler: str, flags: tuple[str, ...]) -> Path:
    """Where the library built from this source, compiler (its identity and version),
    flags and machine architecture is cached."""
    recipe = " ".join((compiler_identity(compiler), platform.machine(), *flags, *LIBRARIES))
    digest = hashlib.sha256(SOURCE.read_bytes() + recipe.encode()).hexdigest()[:16]
    return kernel_folder() / f"{LIBRARY_STEM}-{digest}.so"


def kernel_folder() -> Path:
    """The cache's kernel folder, created private to this user (mode 0700)."""
    folder = cache_root() / "kernels"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise RuntimeError(f"cannot create {folder} ({err.strerror or err})") from None
    return folder


def check_private(path: Path) -> None:
    """Refuse (RuntimeError) a kernel file or folder that is not this user's own: a link,
    another user's, or writable by group or others. A library in it runs code when
    loaded."""
    info = path.lstat()
    kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
    if stat.S_ISLNK(info.st_mode):
        raise RuntimeError(f"{path} is a symbolic link; the kernel is loaded only from a "
                           "plain file in a folder of your own")
    if info.st_uid != os.getuid():
        raise RuntimeError(f"the {kind} {path} belongs to another user (uid {info.st_uid}); "
                           "act loads kernels only from a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"the {kind} {path} is writable by other users (mode "
                           f"{stat.S_IMODE(info.st_mode):o}); act loads kernels only from "
                           "a folder only you can write")


def build() -> Path:
    """The kernel's shared library, compiled unless already cached; one build at a time
    per cache (a lock file), so workers starting together compile it once."""
    compiler = os.environ.get("CXX") or "c++"
    flags = compile_flags()
    path = library_path(compiler, flags)
    check_private(path.parent)
    if not path.exists():
        with _build_lock(path.parent):
            # killed builds' of any compiler or flags: the lock is the folder's, so no
            # builder of any variant runs now
            remove_stale_temporaries(path, names=f"{LIBRARY_STEM}-*{path.suffix}")
            if not path.exists():
                log.info("acthull: compiling the native hull kernel into %s (once, a few "
                         "seconds)", path.parent)
                with atomic_path(path) as tmp:
                    _compile([compiler, *flags, str(SOURCE), "-o", str(tmp), *LIBRARIES])
                    os.chmod(tmp, 0o700)
    check_private(path)
    return path


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """Hold the cache's build lock (the operating system's, freed when a builder dies)."""
    with open(folder / ".build.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _compile(command: list[str]) -> None:
    """Run the compiler in a process group of its own, killed whole after
    :data:`BUILD_TIMEOUT_S` (a compiler driver's children too)."""
    compiler = command[0]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RuntimeError(f"{compiler} took over {BUILD_TIMEOUT_S} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"{compiler} failed: {stderr.strip()[-400:]}")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel; None, with one warning per process, where it is unavailable:
    no compiler, a cache that is not private, or a library that is not this kernel (a
    missing symbol, another ABI version or base count)."""
    try:
        lib = ctypes.CDLL(str(build()))
        _declare(lib)
    except (OSError, RuntimeError, AttributeError, ActError) as err:
        # ActError: the cache is not writable; AttributeError: a symbol is missing
        BUILD_PROBLEM.append(" ".join(str(err).split()))
        warnings.warn(f"acthull: the native hull kernel is not available here "
                      f"({BUILD_PROBLEM[-1][:300]}); hulls use the eager fused kernel",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
        return None
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    """Check that ``lib`` is this kernel (its ABI version and base count) and declare its
    functions' arguments."""
    for name, expected in (("act_hull_abi_version", ABI_VERSION),
                           ("act_hull_bases", len(CODES))):  # fmt: skip
        function = getattr(lib, name)
        function.restype, function.argtypes = ctypes.c_int64, []
        if function() != expected:
            raise RuntimeError(f"{lib._name} reports {name} {function()}, not {expected}: "
                               "a library of another version of act")
    pointer, count, threads = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    shape = [count, count, count, count, count]  # bases; rows, channels, length, interleaved
    for suffix in _TYPES.values():
        getattr(lib, f"act_hull_forward_{suffix}").argtypes = [
            pointer, pointer, pointer, pointer, *shape, threads]
        getattr(lib, f"act_hull_backward_{suffix}").argtypes = [
            pointer, pointer, pointer, pointer, pointer, *shape, threads, pointer]


class Layout(NamedTuple):
    """How the kernel walks the layer: ``rows`` runs of ``length`` contiguous values, run r
    taking coefficient column r % ``channels`` (per layer: one run, one column); or, when
    ``interleaved``, ``rows`` rows of ``length`` == ``channels`` values, value i of a row
    taking column i."""

    rows: int
    channels: int
    length: int
    interleaved: bool = False


#: Per-channel coefficients over runs (the standard layout) take the kernel when each
#: channel's run of values is at least this long (a convolution's feature map); shorter
#: runs would pay a call per run, and take the eager kernel.
MIN_RUN = 32


def layout(x: Tensor, coefficients: Tensor) -> Layout | None:
    """How the kernel walks ``x`` (dense: no gaps or overlaps) for coefficients shaped by
    :func:`acthull.hull.coefficient_view` (one leading entry per base); None where it
    cannot."""
    varying = [d for d, size in enumerate(coefficients.shape[1:]) if size != 1]
    if not varying:
        return Layout(1, 1, x.numel())
    if len(varying) > 1 or coefficients.dim() != x.dim() + 1:
        return None
    dim = varying[0]
    channels = x.shape[dim]
    if x.stride(dim) == 1:  # dense, so a channel's neighbours in memory are the others
        return Layout(x.numel() // channels, channels, channels, interleaved=True)
    length = math.prod(x.shape[dim + 1:])
    if not x.is_contiguous() or length < MIN_RUN:
        return None
    return Layout(x.numel() // length, channels, length)


class NativeKernels:
    """The native kernel over one base set, as :class:`acthull.fused.WeightedSum` calls
    kernels: ``coefficients`` shaped to broadcast against ``x``; None where it does not
    apply (another device or dtype, per-channel runs shorter than :data:`MIN_RUN`, no
    library)."""

    def __init__(self, calls: Sequence[Callable[..., Tensor]]):
        self.codes = torch.tensor([CODES[call] for call in calls], dtype=torch.int64)

    def forward(self, x: Tensor, coefficients: Tensor) -> Tensor | None:
        if (operands := self._operands(x, coefficients)) is None:
            return None
        lib, walk, x, c = operands
        out = torch.empty_like(x)
        getattr(lib, f"act_hull_forward_{_TYPES[x.dtype]}")(
            x.data_ptr(), out.data_ptr(), c.data_ptr(), self.codes.data_ptr(),
            len(self.codes), *walk, torch.get_num_threads())
        return out

    def backward(self, x: Tensor, coefficients: Tensor,
                 grad: Tensor) -> tuple[Tensor, Tensor] | None:
        if (operands := self._operands(x, coefficients)) is None:
            return None
        lib, walk, x, c = operands
        grad = grad.to(x.dtype)
        if grad.stride() != x.stride():  # the kernel walks both in x's memory order
            grad = torch.empty_like(x).copy_(grad)
        grad_x = torch.empty_like(x)
        grad_c = torch.empty(len(self.codes), walk.channels, dtype=torch.float64)
        getattr(lib, f"act_hull_backward_{_TYPES[x.dtype]}")(
            x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), c.data_ptr(),
            self.codes.data_ptr(), len(self.codes), *walk, torch.get_num_threads(),
            grad_c.data_ptr())
        return grad_x, grad_c.to(coefficients.dtype).reshape(coefficients.shape)

    def _operands(self, x: Tensor, coefficients: Tensor
                  ) -> tuple[ctypes.CDLL, Layout, Tensor, Tensor] | None:
        """The library, the walk over ``x``, ``x`` in memory the kernel walks and the
        coefficients as a (bases, channels) matrix; None where the kernel does not apply.
        Any dense memory format is walked as it lies (channels-last too: the output keeps
        it); per channel, the standard layout (runs) or one with the channels innermost
        (interleaved); other layouts take the eager kernel rather than a copy each way."""
        if not (x.device.type == "cpu" and x.dtype in _TYPES and coefficients.dtype == x.dtype
                and coefficients.shape[0] == len(self.codes)):  # fmt: skip
            return None
        if not _dense(x):
            x = x.contiguous()
        if (walk := layout(x, coefficients)) is None:
            return None
        if (lib := library()) is None:
            return None
        c = coefficients.detach().reshape(len(self.codes), walk.channels).contiguous()
        return lib, walk, x, c


def _dense(x: Tensor) -> bool:
    """Whether ``x``'s values fill its memory without gaps or overlaps, in some order of
    its dimensions (the standard layout, channels-last, any permutation)."""
    order = sorted(range(x.dim()), key=lambda d: x.stride(d))
    expected = 1
    for d in order:
        if x.shape[d] != 1 and x.stride(d) != expected:
            return False
        expected *= x.shape[d]
    return True


def covers(calls: Sequence[Callable[..., Tensor]]) -> bool:
    """Whether every base is one the kernel computes (called as its operator)."""
    return all(call in CODES for call in calls)


@functools.cache
def native_kernels(calls: tuple[Callable[..., Tensor], ...]) -> NativeKernels:
    """The kernel of a base set, shared by every hull over the same bases."""
    return NativeKernels(calls)
