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
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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
    checked here until then, so its start-up never holds a sync up.  The exchanges with
    it run on a thread of their own, one at a time, so a page travels to the worker and
    back while this process folds the page before it (blocking pipe I/O lets the event
    loop's thread run meanwhile).  A page asked for while another is with the worker is
    checked here.  A sync that stops while its page is with the worker leaves the
    exchange to finish on that thread (the answer is dropped).  A worker that fails is
    not used again; its page is checked here.  :meth:`close` ends it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._ready: Future[Verdicts] | None = None
        self._last: Future[Verdicts] | None = None
        self._failed = False
        #: Pages checked by the worker so far.
        self.pages_in_worker = 0

    # ------------------------------------------------------------------ the worker

    def _start(self) -> None:
        if self._thread is None and self.enabled and not self._failed:
            self._thread = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="schakel-pagecheck")
            self._ready = self._thread.submit(self._launch)

    def _launch(self) -> Verdicts:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        return self._exchange([], {})           # the worker has imported what it needs

    def _exchange(self, items: list[Any], keys: dict[str, bytes]) -> Verdicts:
        """One page to the worker and its verdicts back (on the exchange thread)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise EOFError("no worker")
        data = pickle.dumps((items, keys), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(len(data).to_bytes(8, "big"))
        proc.stdin.write(data)
        proc.stdin.flush()
        head = proc.stdout.read(8)
        if len(head) != 8:
            raise EOFError("the worker ended")
        size = int.from_bytes(head, "big")
        answer = proc.stdout.read(size)
        if len(answer) != size:
            raise EOFError("the worker ended")
        verdicts: Verdicts = pickle.loads(answer)
        return verdicts

    async def start(self) -> None:
        """Start the worker and wait until it answers (for a partner that knows a long
        catch-up is coming; :meth:`submit` starts it on its own otherwise)."""
        self._start()
        if self._ready is not None:
            with contextlib.suppress(*_WORKER_FAILURES):
                await asyncio.wrap_future(self._ready)
            self._worker_ready()

    def _worker_ready(self) -> bool:
        ready, last = self._ready, self._last
        if ready is None or not ready.done() or self._failed or \
                (last is not None and not last.done()):
            return False
        if ready.exception() is not None:
            self._give_up()
            return False
        return True

    def _give_up(self) -> None:
        """The worker failed: end it, and check every page here from now on."""
        self._failed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    # ------------------------------------------------------------------ pages

    def submit(self, items: list[Any], keys: Mapping[str, VerifyKey],
               *, more: bool) -> asyncio.Future[Verdicts]:
        """Start checking ``items`` (a page; ``more``: the feed has pages after it)."""
        raw = {key_id: key.raw for key_id, key in keys.items()}
        if more:
            self._start()
        if self._thread is not None and self._worker_ready():
            self.pages_in_worker += 1
            self._last = self._thread.submit(self._exchange, items, raw)
            return asyncio.ensure_future(self._from_worker(self._last, items, raw))
        done: asyncio.Future[Verdicts] = asyncio.get_running_loop().create_future()
        done.set_result(check_page(items, raw))
        return done

    async def _from_worker(self, exchange: Future[Verdicts], items: list[Any],
                           raw: dict[str, bytes]) -> Verdicts:
        try:
            return await asyncio.wrap_future(exchange)
        except _WORKER_FAILURES:
            self._give_up()
            return check_page(items, raw)

    async def close(self) -> None:
        """End the worker: its input closed, it exits (killed after
        :data:`CLOSE_TIMEOUT` seconds); the exchange thread ends with it."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        await asyncio.wrap_future(thread.submit(self._end))
        thread.shutdown(wait=False)
        self._proc = self._ready = self._last = None

    def _end(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


#: What a worker that died, ended or answered nonsense raises in an exchange.
_WORKER_FAILURES = (OSError, EOFError, pickle.UnpicklingError)


__all__ = ["PageChecker", "WORKER", "CLOSE_TIMEOUT"]
