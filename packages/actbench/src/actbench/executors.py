"""Where a build's work runs: one :class:`concurrent.futures.Executor` interface for all.

* ``workers=0``: in this process, one unit after another (debugging, tiny builds);
* local processes (default: all cores, or one per GPU; :func:`default_workers`): a
  :class:`~concurrent.futures.ProcessPoolExecutor` with ``spawn`` workers, each limited
  to one torch thread and, for work on a machine's GPUs, given one of them in turn
  (:func:`spread_over_gpus`);
* a Dask distributed cluster: ``scheduler="tcp://host:8786"`` connects to a running
  scheduler, ``scheduler="local"`` starts a :class:`distributed.LocalCluster` of
  ``workers`` single-threaded processes on this machine (GPUs in turn, as above; a
  cluster of your own places its workers itself). Either way the build uses
  ``Client.get_executor()``, so the code path is the same as for local processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from actcore import ActError
from actcore.console import log
from actcore.lifetime import exit_with_parent

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    import torch


def single_thread() -> None:
    """Keep torch (and BLAS) to one thread: workers share the cores, not each other's."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


#: this process's number among its pool's workers (None outside a local pool)
WORKER_NUMBER: int | None = None


def spread_over_gpus(worker: int) -> int | None:
    """Make this worker's default CUDA device the GPU its number falls on (round robin over
    this machine's GPUs), so that ``cuda`` means one GPU per worker in turn and not every
    worker on the first; None on a machine without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    gpu = worker % torch.cuda.device_count()
    torch.cuda.set_device(gpu)  # starts CUDA in this process: only for work on the GPU
    return gpu


def _gpus_in_turn(device: str | torch.device | None) -> bool:
    """Whether local workers take this machine's GPUs in turn: for work on plain ``cuda``,
    or (None) on each worker's own default device."""
    return device is None or str(device) == "cuda"


def _start_worker(parent: int, started: Synchronized, gpus_in_turn: bool) -> None:
    global WORKER_NUMBER
    exit_with_parent(parent)  # no orphan workers after a kill -9 of the build
    single_thread()
    with started.get_lock():
        WORKER_NUMBER, started.value = started.value, started.value + 1
    if gpus_in_turn:
        spread_over_gpus(WORKER_NUMBER)


class SerialExecutor(Executor):
    """Runs each submitted call at once in this process; returns a finished future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller via the future
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(err)
        return future


def worker_device(name: str | None, scheduler: str | None) -> torch.device | None:
    """The device of a ``--device`` setting as the workers will use it: this machine's
    for local workers (so a CUDA device it lacks fails before any work); on a Dask
    cluster the device named, or None where each worker takes its own (CUDA if it has
    one)."""
    from actcore.device import parse_device, resolve_device

    if scheduler is None:
        return resolve_device(name)
    return None if name is None else parse_device(name)


def default_workers(device: str | torch.device | None = "cpu") -> int:
    """How many local workers a job starts unless told: one per GPU the work runs on
    (plain ``cuda``: each of this machine's; ``cuda:N``: that one), else all cores this
    process may use. Each GPU worker holds a CUDA context of its own (hundreds of MB), and
    workers sharing a GPU take turns on it; ``--workers`` sets more. ``device`` None is
    each worker's own default: this machine's GPUs where it has CUDA."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return 1 if device.index is not None else max(1, torch.cuda.device_count())
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallelism(executor: Executor) -> int:
    """How many units ``executor`` runs at once: its processes, or a Dask cluster's worker
    threads (all of them, wherever they are), or 1 in this process."""
    client = getattr(executor, "_client", None)
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return max(1, getattr(executor, "_max_workers", None) or 1)


class Pool:
    """:func:`make_executor` that a job can restart: one dead worker process breaks a
    whole process pool (``BrokenExecutor``), so a job that should outlive it starts a new
    pool and submits the lost work again. ``executor`` is the current executor."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 device: str | torch.device | None = "cpu"):
        self._args = (workers, scheduler, device)
        self._stack = ExitStack()
        self.executor: Executor
        self.paused = False

    def __enter__(self) -> Pool:
        self.executor = self._stack.enter_context(make_executor(*self._args))
        self.paused = False
        return self

    def __exit__(self, *exc: Any) -> None:
        # the error or interrupt that ends the job reaches the executor, which then stops
        # its workers instead of waiting for their units
        self._stack.__exit__(*exc)

    def pause(self) -> None:
        """Stop the workers (and free their memory) until :meth:`resume`."""
        self._stack.close()
        self.paused = True

    def resume(self) -> Executor:
        """Start workers again after :meth:`pause`; return the new executor."""
        return self.__enter__().executor

    def restart(self, err: BaseException) -> Executor:
        """Replace the pool ``err`` broke (saying so on stderr); return the new executor."""
        log.warning(f"a worker died ({type(err).__name__}: {err}); starting a new pool")
        self._stack.close()
        return self.__enter__().executor


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's processes now. The job that used them is leaving (interrupted, or an
    error), so nobody will collect their running units; ``shutdown`` would wait for each
    of them, and a worker blocked on handing back a large result can wait for ever."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


@contextmanager
def make_executor(
    workers: int | None = None, scheduler: str | None = None,
    device: str | torch.device | None = "cpu",
) -> Iterator[Executor]:
    """An executor for ``workers`` parallel units (None: :func:`default_workers`), or on a Dask
    ``scheduler`` address (``"local"`` for a local cluster). ``device`` is where the units
    run (:func:`worker_device`): for plain ``cuda``, or None, this machine's workers take
    its GPUs in turn."""
    if workers is not None and workers < 0:
        raise ActError(f"--workers must be 0 (in process) or more, got {workers}")
    if scheduler is None:
        if workers == 0:
            yield SerialExecutor()
            return
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=workers or default_workers(device),
            mp_context=spawn,
            initializer=_start_worker,
            initargs=(os.getpid(), spawn.Value("i", 0), _gpus_in_turn(device)),
        )
        try:
            yield pool
        except BaseException:
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ActError(
            "--scheduler needs Dask distributed: ./dev install 'actbench[distributed]' in the act "
            "repository adds it"
        ) from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers or default_workers(device), threads_per_worker=1, processes=True,
            dashboard_address=":0",
        )  # fmt: skip
        address: Any = cluster
    else:
        address = scheduler
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            cluster.close()
        raise ActError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    try:
        client.run(single_thread)
        if cluster is not None and _gpus_in_turn(device):  # this machine's workers
            for number, worker in enumerate(sorted(client.scheduler_info()["workers"])):
                client.run(spread_over_gpus, number, workers=[worker])
        if any(n > 1 for n in client.nthreads().values()):
            log.warning("some Dask workers have several threads: their trainings take turns "
                        "(torch's generator is one per process); start workers with "
                        "`--nthreads 1 --nworkers N` to train on every core")
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
