"""Signature checks of the hot routes, off the event loop when that helps (issue 3).

Every signed append costs two Ed25519 verifications (the request's RFC 9421 signature and
the event's own), about a quarter of the event loop's time per append.  libsodium releases
the GIL while it verifies, so a worker thread can make them while the loop serves other
requests.  A hand-off is not free, though (a future, a thread wake-up, a wake-up of the
loop): when the request being verified is the only one the server is handling, the loop
has nothing else to do and the check is made inline, at once.

:meth:`Verifier.result` takes a :class:`protocol.crypto.Pending` and returns its value
only after every check held, whichever thread made them.  The checks of one pass of the
loop go to the workers together (one queue entry, one wake-up of the loop for all their
answers), as the store does with writes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from protocol.crypto import Pending

T = TypeVar("T")

#: A batch on its way to a worker: each pending value's checks and the future to answer.
_Batch = list[tuple[Pending[Any], "asyncio.Future[None]"]]


class Verifier:
    """Worker threads that make signature checks for the event loop.

    ``busy()`` says whether the server is handling another request besides the caller's:
    only then do the checks leave the loop (tests set it to choose the path).
    """

    def __init__(self, *, threads: int, busy: Callable[[], bool]) -> None:
        if threads < 1:
            raise ValueError("a verifier needs at least one thread")
        self._threads_wanted = threads
        self.busy = busy
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, _Batch] | None] = (
            queue.SimpleQueue())
        self._threads: list[threading.Thread] = []
        self._pending: dict[asyncio.AbstractEventLoop, _Batch] = {}
        #: Signature checks made on a worker thread, and on the loop (the tests read these).
        self.offloaded = 0
        self.inline = 0

    def start(self) -> None:
        for i in range(self._threads_wanted - len(self._threads)):
            thread = threading.Thread(target=self._work, name=f"schakel-verify-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let the workers finish what they hold and end (they are daemons besides)."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    async def result(self, pending: Pending[T]) -> T:
        """``pending``'s value once its checks held (or their :class:`SignatureError`)."""
        if not pending.checks or not self._threads or not self.busy():
            self.inline += len(pending.checks)
            return pending.run()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        batch = self._pending.get(loop)
        if batch is None:
            batch = self._pending[loop] = []
            loop.call_soon(self._hand_off, loop)
        batch.append((pending, future))
        self.offloaded += len(pending.checks)
        await future
        return pending.result()

    def _hand_off(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, None)
        if batch:
            self._queue.put((loop, batch))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, batch = item
            answers: list[tuple[asyncio.Future[None], BaseException | None]] = []
            for pending, future in batch:
                try:
                    for check in pending.checks:
                        check.run()
                    answers.append((future, None))
                except Exception as exc:       # a SignatureError, answered to its request
                    answers.append((future, exc))
            try:
                loop.call_soon_threadsafe(_answer, answers)
            except RuntimeError:               # the loop closed meanwhile: nobody waits
                pass


def _answer(answers: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, error in answers:
        if future.done():                      # the request was cancelled meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


__all__ = ["Verifier"]
