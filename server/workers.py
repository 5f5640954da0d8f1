"""``schakel serve --workers N``: N server processes on one listening socket, on one
PostgreSQL database (ADR 0052; docs/roles/operator.md).

The supervisor (the process the operator started) binds the address once, then forks N
**workers**; each builds its own context (store, member directory, caches: nothing of the
supervisor's but the configuration, the server's keys and the socket) and serves the socket
with :func:`schakel.server.app.run_on` until SIGTERM.  The kernel hands each new connection
to one of the processes accepting on the socket, so a worker that dies loses only the
connections it had accepted: the queue of connections not yet accepted belongs to the socket,
which the other workers still hold.

The supervisor forks before it has a thread or an event loop, and does nothing afterwards
but wait: a worker that ends while the server is not stopping is logged with its exit status
and replaced by a new one (no sooner than :data:`RESPAWN_DELAY` seconds after the one before
it started, so a worker that cannot start does not fork in a loop).  SIGTERM or SIGINT to the
supervisor is passed to every worker, each shuts down as a single server does (writes already
queued commit, long-polls are released), and the supervisor exits when they all have -- with
status 1 when any of them had to be ended at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

from schakel.server.config import ServerConfig

#: Seconds between the starts of two workers in the same slot.
RESPAWN_DELAY = 1.0
#: The most workers one supervisor runs.
MAX_WORKERS = 64


def bind(config: ServerConfig) -> socket.socket:
    """The listening socket the workers share."""
    sock = socket.create_server((config.host, config.port), backlog=128)
    sock.setblocking(False)
    return sock


def supervise(workers: int, run_worker: Callable[[int, socket.socket], int],
              sock: socket.socket, *, announce: Callable[[str], None] = print) -> int:
    """Run ``workers`` processes, each ``run_worker(slot, sock)`` in a child, replacing one
    that ends until SIGTERM/SIGINT; returns the exit status (0, or 1 when a worker did not
    stop cleanly)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 1 to {MAX_WORKERS}")
    stopping = False
    children: dict[int, int] = {}                  # pid -> slot
    started: dict[int, float] = {}                 # slot -> when its worker was started

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start(slot: int) -> None:
        pause = started.get(slot, -RESPAWN_DELAY) + RESPAWN_DELAY - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        started[slot] = time.monotonic()
        for stream in (sys.stdout, sys.stderr):   # a buffered line must not be written twice
            stream.flush()
        pid = os.fork()
        if pid == 0:                                              # the worker
            status = 1
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                _leave_group(supervisor)
                status = run_worker(slot, sock)
            except BaseException:
                traceback.print_exc()                # the operator's only clue
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os._exit(status)
        children[pid] = slot
        announce(f"worker {slot + 1} started (pid {pid})")

    supervisor = os.getpid()
    previous = {signum: signal.signal(signum, on_signal)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for slot in range(workers):
            start(slot)
        while children:
            try:
                pid, code = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            slot = children.pop(pid, None)
            if slot is None:
                continue
            ended = os.waitstatus_to_exitcode(code)
            if stopping:
                status = status or (1 if ended != 0 else 0)
                continue
            announce(f"worker {slot + 1} (pid {pid}) ended with status {ended}; starting "
                     f"another")
            start(slot)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    return status


def _leave_group(supervisor: int) -> None:
    """In a new worker: its own process group, so that a signal to the supervisor's group
    (Ctrl-C in a terminal, ``timeout``) reaches the workers once, through the supervisor,
    and not a second time directly (a second signal ends a server at once); and SIGTERM
    when the supervisor dies, however it dies (Linux ``PR_SET_PDEATHSIG``), so no worker
    outlives it."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:              # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["MAX_WORKERS", "RESPAWN_DELAY", "bind", "supervise"]
