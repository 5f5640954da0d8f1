"""``schakel serve`` as a child process on a loopback port, as an operator runs it.

One helper for everyone who needs a real server in another process: ``schakel demo``
and the tests that speak to a server over real sockets (the command-line flows, crashes,
full disks, slow connections, the API fuzzer).

* :func:`free_port` -- a free loopback port;
* :class:`ServerProcess` -- ``server init`` (to learn the server fingerprint), start until
  ``/healthz`` answers, stop with SIGTERM and SIGKILL after a bound, the log.

The child runs ``python -m schakel.cli`` of this interpreter, so it is the same install
as its parent; it gets the parent's environment without any ``SCHAKEL_*`` variable (a
developer's shell must not choose its passphrase or home), and its own session, so a
Ctrl-C meant for the parent does not reach it and the parent decides when it stops.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Seconds for ``server init`` and for a started server to answer ``/healthz``.
START_TIMEOUT = 30.0
#: Seconds a server may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nobody listens on now (a child binds it a moment later;
    :meth:`ServerProcess.start` tries a second port if another process was quicker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerDidNotStart(RuntimeError):
    """``schakel server init`` failed, or ``schakel serve`` exited or did not answer
    ``/healthz`` in time; the message ends with the server's output."""


class ServerProcess:
    """``schakel serve --data DATA --host 127.0.0.1 --port PORT`` as a child process.

    ``port`` 0 picks a free port at the first :meth:`start`; a restart (after
    :meth:`stop`, or after a test killed it) reuses the port, so the URL stays the same.
    The server's standard output and error are appended to ``log_file`` (by default
    ``server.log`` next to the data directory) over every start.  ``limits`` go into the
    data directory's ``config.json`` when it has none yet; ``wrapper`` is a command the
    server runs under (``fiu-run -x``, to inject faults); ``database_url`` puts its data in
    that PostgreSQL database (``--database``) instead of the data directory's SQLite file,
    and ``workers`` runs that many server processes on the port (``--workers``).

    ``proc`` is the running :class:`subprocess.Popen`, for those who signal it
    themselves (crash tests send SIGKILL in the middle of a burst of writes).
    """

    def __init__(self, data: Path, *, log_file: Path | None = None, port: int = 0,
                 limits: Mapping[str, float] | None = None, wrapper: Sequence[str] = (),
                 database_url: str | None = None, workers: int = 1) -> None:
        self.data = data
        self.database_url = database_url
        self.workers = workers
        self.log_file = log_file if log_file is not None else data.parent / "server.log"
        self.port = port
        self.limits = dict(limits) if limits is not None else None
        self.wrapper = tuple(wrapper)
        self.proc: subprocess.Popen[bytes] | None = None
        #: The server fingerprint :meth:`init` read, "" before.
        self.fingerprint = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ starting

    def init(self) -> str:
        """``schakel server init --data DATA --json``: create the server's keys (or read
        them) and return the server fingerprint it printed, which the operator gives
        every coordinator founding a network on this server."""
        self._prepare()
        result = subprocess.run(
            [sys.executable, "-m", "schakel.cli", "server", "init", "--data", str(self.data),
             "--json"], env=_environment(), text=True, capture_output=True,
            stdin=subprocess.DEVNULL, timeout=START_TIMEOUT * 4)
        if result.returncode != 0:
            raise ServerDidNotStart(f"schakel server init failed: {result.stderr.strip()}")
        self.fingerprint = str(json.loads(result.stdout)["fingerprint"])
        return self.fingerprint

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start the server and wait until ``/healthz`` answers 200; returns its URL.

        Raises :class:`ServerDidNotStart` (with the log's last lines) when it exits or
        stays silent for ``timeout`` seconds."""
        self._prepare()
        for attempt in range(2):
            picked = self.port == 0
            if picked:
                self.port = free_port()
            self.spawn()
            if self._until_healthy(timeout):
                return self.url
            self.stop()
            assert self.proc is not None
            if picked and attempt == 0 and self.proc.returncode not in (None, 0):
                self.port = 0      # the port was taken between free_port() and the bind
                continue
            break
        raise ServerDidNotStart(f"schakel serve did not come up; its log:\n{self.tail()}")

    def spawn(self) -> None:
        """Start the process on :attr:`port` and return at once, without waiting for it
        to answer (:meth:`start` waits)."""
        if self.port == 0:
            self.port = free_port()
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "schakel.cli", "serve",
                 "--data", str(self.data), "--host", HOST, "--port", str(self.port),
                 *(("--database", self.database_url) if self.database_url else ()),
                 *(("--workers", str(self.workers)) if self.workers > 1 else ())],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_environment(), start_new_session=True)

    def worker_pids(self) -> list[int]:
        """The worker processes of ``--workers N`` now (the supervisor's children)."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def healthy(self) -> bool:
        """Whether ``/healthz`` answers 200 now."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _until_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.healthy():
                return True
            time.sleep(0.1)
        return False

    def _prepare(self) -> None:
        if self.limits is not None and not (self.data / "config.json").exists():
            self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.data / "config.json").write_text(json.dumps({"limits": self.limits}))

    # ------------------------------------------------------------------ stopping

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; its exit status."""
        if self.proc is None:
            raise RuntimeError("the server was never started")
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (the server lets writes in progress commit), SIGKILL after ``timeout``
        seconds; the exit status, or None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    # ------------------------------------------------------------------ its log

    def output(self) -> str:
        """Everything the server wrote, every start (requests only, never content)."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, limit: int = 3000) -> str:
        """The last ``limit`` characters of :meth:`output`."""
        return self.output()[-limit:]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}


__all__ = ["ServerProcess", "ServerDidNotStart", "free_port", "START_TIMEOUT", "STOP_TIMEOUT"]
