"""The data directory's lock (docs/roles/operator.md; ADR 0050): a running ``schakel serve``
holds an exclusive ``flock`` on ``DIR/server.lock`` for as long as it lives, so that a
second server on the same directory, and a restore under a running server, are refused
instead of corrupting the database.

``flock`` is released by the kernel when the process ends, however it ends (SIGKILL,
``os._exit``), so a crashed server never leaves a stale lock behind; the file itself stays
and means nothing on its own.  It holds the holder's process id, for the operator's
message only.

The lock guards a SQLite database.  On PostgreSQL (``--database``) several server processes
may serve one database and share one data directory for their keys (ADR 0052), so
``schakel serve`` does not take it there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "server.lock"


class DataDirBusy(RuntimeError):
    """Another process (a running server, a restore) holds the data directory's lock.
    ``pid`` is the process id the holder wrote, or None when it could not be read."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        super().__init__(f"{data_dir} is in use by process {pid or '?'}")
        self.data_dir = data_dir
        self.pid = pid


def _holder(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text(encoding="ascii").strip() or "x")
    return None


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir``'s lock while the block runs; :class:`DataDirBusy` at once when
    another process holds it (never waits)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(data_dir, _holder(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        os.close(fd)          # releases the lock


__all__ = ["LOCK_FILE", "DataDirBusy", "hold"]
