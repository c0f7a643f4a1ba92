"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one,
never half of one, whatever kills the writer."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actcore.errors import ActError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block succeeds.

    The temporary name keeps ``path``'s suffix, so writers that infer the format from
    it (``savefig``, ``np.save``) behave as for ``path`` itself.
    """
    path = Path(path)
    make_parent(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create the folder ``path`` goes in (every act output may name a new folder); an
    error names the folder when that is impossible."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ActError(f"cannot write {str(path)!r}: cannot create the folder {str(parent)!r} "
                       f"({err.strerror or err})") from None


def _prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def remove_stale_temporaries(path: str | os.PathLike[str], names: str | None = None
                             ) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left beside ``path`` when its
    writer was killed; with ``names`` (a glob of file names in ``path``'s folder), those
    of every file it matches. Call it only where no other writer of those files can be
    running (a job holding their lock, e.g. :func:`actcore.lock.exclusive`)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f".{names}.tmp-" if names is not None else glob.escape(_prefix(path))
    stale = [p for p in path.parent.glob(f"{prefix}*{path.suffix}")]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write text or bytes to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return Path(path)
