"""Workers started with exit_with_parent die when their parent is killed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    from actcore.lifetime import exit_with_parent

    def pid():
        return os.getpid()

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        initializer = exit_with_parent if sys.argv[2] == "guarded" else None
        pool = ProcessPoolExecutor(1, mp_context=context, initializer=initializer,
                                   initargs=(os.getpid(),) if initializer else ())
        print(pool.submit(pid).result(), flush=True)
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waits for its reaper, it is dead
        return stat.read().split(")")[-1].split()[0] != "Z"


def _orphan_after_kill(tmp_path, context: str, guarded: bool) -> bool:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), context,
                               "guarded" if guarded else "plain"],
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphan = _alive(worker)
    if orphan:
        os.kill(worker, signal.SIGKILL)
    return orphan


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("context", ["spawn", "fork"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, context):
    assert not _orphan_after_kill(tmp_path, context, guarded=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_without_it_a_worker_outlives_its_parent(tmp_path):
    """The control: the same pool without the guard leaves an orphan behind."""
    assert _orphan_after_kill(tmp_path, "spawn", guarded=False)
