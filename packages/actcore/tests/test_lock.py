"""One run at a time: a second holder is refused by name; a killed one frees the lock."""

import signal
import subprocess
import sys
import textwrap

import pytest

from actcore import ActError
from actcore.atomic import atomic_path, remove_stale_temporaries
from actcore.lock import exclusive, lock_path


def test_a_second_run_is_refused_naming_the_first(tmp_path):
    work = tmp_path / "work.sqlite"
    refused = pytest.raises(ActError, match=r"the work store .*work\.sqlite is in use by pid \d+")
    with exclusive(work, "the work store"), refused, exclusive(work, "the work store"):
        pass
    with exclusive(work, "the work store"):  # released at exit
        pass
    assert lock_path(work).name == ".work.sqlite.lock"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    work = tmp_path / "work.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from actcore.lock import exclusive
        with exclusive({str(work)!r}, "w"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ActError, match=f"in use by pid {holder.pid}"), exclusive(work, "w"):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with exclusive(work, "w"):
        pass


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "t.json.gz"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # the writer cleans up after itself when it can
    assert list(tmp_path.iterdir()) == []
    stale = tmp_path / ".t.json.gz.tmp-abc123.gz"  # what a kill -9 would leave
    stale.write_bytes(b"half")
    other = tmp_path / ".u.json.gz.tmp-abc123.gz"  # another file's: left alone
    other.write_bytes(b"x")
    assert remove_stale_temporaries(target) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
