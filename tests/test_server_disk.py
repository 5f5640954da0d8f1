"""Faults of the disk (docs/protocol.md §14.4, "Storage and durability"; ADR 0013).

A full disk or an I/O error refuses writes with 503 ``unavailable`` and ``Retry-After`` --
never a 500, never a hang -- while reads and ``/healthz`` keep answering; writes resume by
themselves once the fault is gone; nothing acknowledged is lost; SIGTERM still stops the
server.

A real ``schakel serve`` subprocess whose data directory *and* log file are on a small
tmpfs mounted for the test (mounting needs root: skipped otherwise), or which runs under
libfiu's ``fiu-run`` (Debian ``fiu-utils``: skipped without it) so that its ``pwrite``
calls can be made to fail with EIO while it runs.  Every request has a timeout: a request
that times out is a hang, and fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schakel.cli.serverprocess import ServerProcess
from tests.server_harness import (
    Actor, CaseState, Caller, Network, RealClock, Reply, SessionTransport, assert_error,
    assert_status, create_case, register, server_keys, sync_all,
)
from tests.test_server_crash import STEP_TIMEOUT

#: Small limits for the server under test: a short shutdown, so a stop is quick to see.
LIMITS = {"shutdown_timeout": 2.0}
#: Seconds a stopping server may take at most: its shutdown, then schakel.server.app.STOP_GRACE
#: (10 s) before it exits without waiting, and a margin.
STOP_BOUND = LIMITS["shutdown_timeout"] + 10 + 10
REQUEST_TIMEOUT = 10.0     # a request that takes longer is a hang
FIU_RUN = shutil.which("fiu-run")
FIU_CTRL = shutil.which("fiu-ctrl")

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the server's data and log, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the disk-full tests run as root in CI)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file, returned (delete it to free the disk)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            try:
                while f.write(block):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


class Writer:
    """One author appending events to one case over HTTP; remembers what was acknowledged."""

    def __init__(self, caller: Caller, net: Network, author: Actor, case: CaseState) -> None:
        self.caller, self.net, self.author, self.case = caller, net, author, case
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self._next: dict[str, Any] | None = None

    async def attempt(self) -> Reply:
        """Send the next event (the same one again after a refusal) and return the answer;
        an acknowledged event is remembered."""
        event = self._next or self.net.event(self.case, self.author)
        self._next = event
        reply = await self.caller.post(self.net.path(f"/cases/{self.case.case}/events"),
                                       self.author, {"event": event}, timeout=REQUEST_TIMEOUT)
        if reply.ok:
            self.acknowledged[event["signed"]["event"]] = event
            self.case.commit(event)
            self._next = None
        return reply

    async def append(self) -> Reply:
        """:meth:`attempt`, which must be acknowledged or refused with 503 and Retry-After."""
        reply = await self.attempt()
        if not reply.ok:
            assert_error(reply, 503, "unavailable")
            assert reply.headers.get("Retry-After") == "1", reply.headers
            assert reply.json["error"]["details"] == {"retry_after": 1}
        return reply

    async def until_refused(self, attempts: int = 50) -> None:
        for _ in range(attempts):
            if not (await self.append()).ok:
                return
        raise AssertionError(f"{attempts} writes on a full disk were all acknowledged")

    async def until_acknowledged(self) -> float:
        """Seconds until a write is acknowledged again (retrying every 20 ms)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not (await self.append()).ok:
            assert loop.time() - started < STEP_TIMEOUT, "writes did not resume by themselves"
            await asyncio.sleep(0.02)
        return loop.time() - started

    async def check_nothing_lost(self) -> None:
        items = await sync_all(self.caller, self.net, self.author)
        stored = {i["envelope"]["signed"]["event"]: i["envelope"] for i in items
                  if i["kind"] == "event"}
        lost = sorted(set(self.acknowledged) - set(stored))
        assert not lost, f"{len(lost)} acknowledged events lost"
        assert all(stored[e] == envelope for e, envelope in self.acknowledged.items())


@contextlib.asynccontextmanager
async def running(server: ServerProcess) -> Any:
    """The started server and a :class:`Writer` on a bootstrapped network."""
    try:
        server.start(timeout=STEP_TIMEOUT)
        async with aiohttp.ClientSession() as session:
            clock = RealClock()
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=REQUEST_TIMEOUT)
            net = Network(await server_keys(caller), clock)
            author = net.actor("writer", ring="core", party="formal")
            await register(caller, net, [author])
            writer = Writer(caller, net, author, await create_case(caller, net, author))
            for _ in range(5):
                assert (await writer.append()).ok
            yield session, writer
    finally:
        server.stop()


async def reads_answer(session: aiohttp.ClientSession, server: ServerProcess,
                       writer: Writer) -> None:
    """/healthz and the reads that serve no case data answer.  A read of case data is
    logged before it is served (protocol.md §15.6), so it is answered as a write is: served
    with its entry, or 503 ``unavailable`` with Retry-After and nothing served.  Nothing
    acknowledged is lost: callers check that once the disk takes writes again."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with session.get(server.url + "/healthz", timeout=timeout) as resp:
        assert resp.status == 200, await resp.text()
    c, net, author = writer.caller, writer.net, writer.author
    assert_status(await c.get(net.path("/members"), author, timeout=REQUEST_TIMEOUT), 200)
    feed = await c.get(net.path("/sync?after=0&limit=500"), author, timeout=REQUEST_TIMEOUT)
    if not feed.ok:
        assert_error(feed, 503, "unavailable")
        assert feed.headers.get("Retry-After") == "1" and b"envelope" not in feed.raw


def stops_on_sigterm(server: ServerProcess) -> int:
    """Send SIGTERM; the exit status (the test fails if the server does not stop)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM did not stop the server within {STOP_BOUND} s") from None


def no_server_errors(server: ServerProcess) -> None:
    log = server.output()
    assert "Traceback" not in log and '"status": 500' not in log, log[-3000:]


async def test_a_full_disk_refuses_writes_with_503_and_they_resume_by_themselves(
        small_disk: Path) -> None:
    """Data and log on one full tmpfs: every refused write is 503 ``unavailable`` with
    ``Retry-After`` (not 500), reads and /healthz answer (a read of case data, which must
    log its entry first, as a write does), a write succeeds again without a restart once
    space returns, nothing acknowledged is lost, SIGTERM stops the server."""
    server = ServerProcess(small_disk / "data", limits=LIMITS)
    async with running(server) as (session, writer):
        filler = fill(small_disk)
        await writer.until_refused()
        for _ in range(10):                  # the writer thread survives every refusal
            assert not (await writer.append()).ok
        await reads_answer(session, server, writer)

        filler.unlink()
        resumed = await writer.until_acknowledged()
        print(f"writes resumed {resumed:.3f} s after space returned")
        for _ in range(5):
            assert (await writer.append()).ok
        await writer.check_nothing_lost()
        assert stops_on_sigterm(server) == 0, server.tail()
    no_server_errors(server)
    assert "log lines dropped" in server.output()   # the log says what it could not hold


async def test_sigterm_stops_the_server_while_its_disk_is_full(small_disk: Path) -> None:
    """Whatever the writes on the full disk were answered, SIGTERM ends the server."""
    server = ServerProcess(small_disk / "data", limits=LIMITS)
    async with running(server) as (_, writer):
        fill(small_disk)
        for _ in range(5):
            with contextlib.suppress(asyncio.TimeoutError):
                await writer.attempt()
        assert stops_on_sigterm(server) == 0


@pytest.mark.skipif(FIU_RUN is None or FIU_CTRL is None,
                    reason="libfiu's fiu-run is not installed (Debian package fiu-utils)")
async def test_injected_io_errors_refuse_writes_with_503_and_they_resume_by_themselves(
        tmp_path: Path) -> None:
    """``pwrite`` fails with EIO (SQLite's writes; the log uses ``write``): writes are 503,
    reads answer, and once the fault is lifted writes resume without a restart."""
    assert FIU_RUN is not None and FIU_CTRL is not None
    server = ServerProcess(tmp_path / "data", limits=LIMITS,
                           wrapper=(FIU_RUN, "-x", "-f", str(tmp_path / "fiu")))
    async with running(server) as (session, writer):
        assert server.proc is not None
        pids = [str(server.proc.pid)]

        def fiu(command: str) -> None:
            subprocess.run([FIU_CTRL, "-f", str(tmp_path / "fiu"), "-c", command, *pids],
                           check=True, timeout=STEP_TIMEOUT)

        fiu(f"enable name=posix/io/rw/pwrite,failinfo={errno.EIO}")
        try:
            await writer.until_refused()
            for _ in range(10):
                assert not (await writer.append()).ok
        finally:
            fiu("disable name=posix/io/rw/pwrite")
        await reads_answer(session, server, writer)
        await writer.until_acknowledged()
        await writer.check_nothing_lost()
        assert stops_on_sigterm(server) == 0
    no_server_errors(server)

