"""The signature checks of a sync page on a second core while the page before is folded
(docs/protocol.md §16.4; ADR 0030).

:func:`schakel.protocol.pagecheck.check_page` checks what a page's events need no local
state for: schemas, signatures, canonical bytes.  :class:`PageChecker` runs it in a worker
-- a Python process of its own that imports only that function (:data:`WORKER`) and
answers each page written to its standard input on its standard output -- for long feeds,
and in this process for short ones, until the worker is ready, and when it fails.  Both
run the same function, so a page gets the same verdicts either way.  The worker only
computes: it stores nothing, and a refusal it finds is raised by the verifier
(``schakel.client.fold``) when the fold reaches that item, so the first bad object of the
feed is the one reported and nothing after it is stored.  Only public values cross to the
worker: the page's envelopes and the members' verify keys.  It writes nothing else, and
what it would print on an error is discarded (an envelope is not for a log).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from collections.abc import Mapping
from typing import Any

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.pagecheck import CheckedEvent, check_page

#: The worker's program: pages in, verdicts out, each a pickle after its length (8 bytes,
#: big-endian); it ends when its standard input does.
WORKER = """
import pickle, sys
from schakel.protocol.pagecheck import check_page, prepare
prepare()
take, give = sys.stdin.buffer, sys.stdout.buffer
while len(head := take.read(8)) == 8:
    items, keys = pickle.loads(take.read(int.from_bytes(head, "big")))
    answer = pickle.dumps(check_page(items, keys), protocol=pickle.HIGHEST_PROTOCOL)
    give.write(len(answer).to_bytes(8, "big") + answer)
    give.flush()
"""

#: Seconds :meth:`PageChecker.close` waits for the worker to end before it is killed.
CLOSE_TIMEOUT = 5.0

Verdicts = list[CheckedEvent | None]


class PageChecker:
    """Checks sync pages in a worker process when ``enabled`` (module docstring).

    The worker is started by the first page of a long feed (one with pages after it), or
    by :meth:`start`; pages go to it once it has answered a first, empty page, and are
    checked here until then, so its start-up never holds a sync up.  One page at a time
    is with the worker; another page asked for meanwhile is checked here.  A worker that
    fails is not used again (its page is checked here); one left with a page that was
    not waited for (a sync that stopped) is ended and a new one started when needed.
    :meth:`close` ends it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._proc: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._failed = False
        #: Pages checked by the worker so far.
        self.pages_in_worker = 0

    # ------------------------------------------------------------------ the worker

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ready is not None and self._loop is not loop:
            self._discard()                     # made under another event loop
        if self._ready is None and self.enabled and not self._failed:
            self._loop = loop
            self._ready = asyncio.ensure_future(self._launch())

    async def _launch(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        await self._ask([], {})                 # the worker has imported what it needs

    async def start(self) -> None:
        """Start the worker and wait until it answers (for a partner that knows a long
        catch-up is coming; :meth:`submit` starts it on its own otherwise)."""
        self._start()
        if self._ready is not None:
            with contextlib.suppress(OSError, EOFError, pickle.UnpicklingError):
                await self._ready
            self._worker_ready()

    def _worker_ready(self) -> bool:
        ready = self._ready
        if ready is None or not ready.done() or self._busy or \
                self._loop is not asyncio.get_running_loop():
            return False
        if ready.cancelled() or ready.exception() is not None:
            self._give_up()
            return False
        return True

    async def _ask(self, items: list[Any], keys: dict[str, bytes]) -> Verdicts:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise EOFError("no worker")
        data = pickle.dumps((items, keys), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(len(data).to_bytes(8, "big") + data)
        await proc.stdin.drain()
        size = int.from_bytes(await proc.stdout.readexactly(8), "big")
        verdicts: Verdicts = pickle.loads(await proc.stdout.readexactly(size))
        return verdicts

    def _give_up(self) -> None:
        """The worker failed: end it, and check every page here from now on."""
        self._failed = True
        self._discard()

    def _discard(self) -> None:
        proc, ready = self._proc, self._ready
        self._proc, self._ready, self._loop = None, None, None
        _settle(ready)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, RuntimeError):
                proc.kill()

    # ------------------------------------------------------------------ pages

    def submit(self, items: list[Any], keys: Mapping[str, VerifyKey],
               *, more: bool) -> asyncio.Future[Verdicts]:
        """Start checking ``items`` (a page; ``more``: the feed has pages after it)."""
        raw = {key_id: key.raw for key_id, key in keys.items()}
        if more:
            self._start()
        if self._worker_ready():
            self.pages_in_worker += 1
            self._busy = True
            return asyncio.ensure_future(self._from_worker(items, raw))
        done: asyncio.Future[Verdicts] = asyncio.get_running_loop().create_future()
        done.set_result(check_page(items, raw))
        return done

    async def _from_worker(self, items: list[Any], raw: dict[str, bytes]) -> Verdicts:
        try:
            return await self._ask(items, raw)
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError):
            self._give_up()
            return check_page(items, raw)
        except asyncio.CancelledError:
            self._discard()                     # its answer would be read as the next's
            raise
        finally:
            self._busy = False

    async def close(self) -> None:
        """End the worker: its input closed, it exits (killed after
        :data:`CLOSE_TIMEOUT` seconds)."""
        proc, ready = self._proc, self._ready
        if proc is None or self._loop is not asyncio.get_running_loop():
            self._discard()
            return
        self._proc, self._ready, self._loop = None, None, None
        _settle(ready)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


def _settle(ready: asyncio.Future[None] | None) -> None:
    """Cancel a start that is still under way; take the error of one that failed (it was
    answered by checking here)."""
    if ready is None:
        return
    if not ready.done():
        ready.cancel()
    elif not ready.cancelled():
        ready.exception()


__all__ = ["PageChecker", "WORKER", "CLOSE_TIMEOUT"]
