"""server/verifier.py: the signature checks of authentication and of an appended event,
made off the event loop while other requests are being handled (issue 3), and inline
when the request is alone.

Whichever path a check takes, the answer must be the same: a forged request or event
signature is refused with the same status and code, nothing of it is stored, and the
honest requests sent together with it are stored.  The server tests run the real
application with ``busy`` fixed to choose the path (the real rule, "another request is
being handled", is exercised by every concurrent test of the suite).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
from typing import Any

import pytest
import pytest_asyncio

from protocol.crypto import Pending, SignatureCheck, Signer
from protocol.errors import SignatureError
from server.context import CTX
from server.verifier import Verifier
from tests.server_harness import (
    FakeClock, InProcessServer, World, assert_error, assert_status, build_world, create_case,
)

SIGNER = Signer.generate()


class ThreadRecordingCheck(SignatureCheck):
    """A real check that also records the thread that made it."""

    __slots__ = ("thread",)

    def run(self) -> None:
        self.thread = threading.get_ident()
        super().run()


def pending(message: bytes, *, forged: bool = False) -> Pending[bytes]:
    signature = SIGNER.sign(message)
    if forged:
        signature = bytes(64)
    return Pending((ThreadRecordingCheck(SIGNER.verify_key, message, signature),),
                   lambda: message)


@pytest_asyncio.fixture
async def verifier() -> Any:
    v = Verifier(threads=2, busy=lambda: True)
    v.start()
    yield v
    v.stop()


async def test_checks_leave_the_loop_when_the_server_is_busy(verifier: Verifier) -> None:
    items = [pending(bytes([i]) * 40) for i in range(20)]
    assert await asyncio.gather(*(verifier.result(p) for p in items)) == [
        bytes([i]) * 40 for i in range(20)]
    assert verifier.offloaded == 20 and verifier.inline == 0
    loop_thread = threading.get_ident()
    assert all(p.checks[0].thread != loop_thread for p in items)   # type: ignore[attr-defined]


async def test_checks_stay_on_the_loop_when_the_request_is_alone(verifier: Verifier) -> None:
    verifier.busy = lambda: False
    item = pending(b"alone")
    assert await verifier.result(item) == b"alone"
    assert item.checks[0].thread == threading.get_ident()          # type: ignore[attr-defined]
    assert (verifier.offloaded, verifier.inline) == (0, 1)


async def test_a_forged_signature_fails_only_its_own_request(verifier: Verifier) -> None:
    items = [pending(b"honest-1"), pending(b"forged", forged=True), pending(b"honest-2")]
    answers = await asyncio.gather(*(verifier.result(p) for p in items), return_exceptions=True)
    assert answers[0] == b"honest-1" and answers[2] == b"honest-2"
    assert isinstance(answers[1], SignatureError)
    with pytest.raises(RuntimeError):
        items[1].result()                       # the forged value stays locked


async def test_a_request_that_went_away_does_not_disturb_the_others(verifier: Verifier) -> None:
    gone = asyncio.ensure_future(verifier.result(pending(b"gone")))
    kept = asyncio.ensure_future(verifier.result(pending(b"kept")))
    await asyncio.sleep(0)                      # both handed to a worker
    gone.cancel()
    assert await kept == b"kept"
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_stopped_verifier_checks_inline() -> None:
    v = Verifier(threads=1, busy=lambda: True)
    v.start()
    v.stop()
    assert await v.result(pending(b"after stop")) == b"after stop"
    assert v.inline == 1


# ============================================================ the server's hot routes


@pytest_asyncio.fixture(params=["inline", "offloaded"])
async def world_and_ctx(request: Any, tmp_path: Any) -> Any:
    server = InProcessServer(tmp_path / "data", FakeClock())
    caller = await server.start()
    try:
        world = await build_world(caller)
        ctx = server.client.server.app[CTX]
        ctx.verifier.busy = (lambda: True) if request.param == "offloaded" else (lambda: False)
        yield request.param, world, ctx
    finally:
        await server.stop()


async def test_forged_signatures_are_refused_on_either_path(world_and_ctx: Any) -> None:
    """Honest appends, a request whose signature was replaced and an event signed by
    another key than its author's, all sent at once: the forgeries get 401
    ``bad_signature`` and leave nothing; the honest events are stored."""
    mode, w, ctx = world_and_ctx
    w: World
    author, other = w["core-formal"], w["core-informal"]
    cases = list(await asyncio.gather(*(create_case(w.caller, w.a, author) for _ in range(6))))
    before = (ctx.verifier.offloaded, ctx.verifier.inline)
    honest = [(state, w.a.event(state, author)) for state in cases[:4]]
    forged_event = w.a.event(cases[4], author, signer=other)
    forged_request = w.caller.prepare("POST", w.a.path(f"/cases/{cases[5].case}/events"), author,
                                      json={"event": w.a.event(cases[5], author)})
    label = forged_request.header("Signature").split("=", 1)[0]   # type: ignore[union-attr]
    zero = f"{label}=:{base64.b64encode(bytes(64)).decode('ascii')}:"
    forged_request = dataclasses.replace(forged_request, headers=tuple(
        (k, zero if k == "Signature" else v) for k, v in forged_request.headers))
    answers = await asyncio.gather(
        *(w.caller.post(w.a.path(f"/cases/{s.case}/events"), author, {"event": e})
          for s, e in honest),
        w.caller.post(w.a.path(f"/cases/{cases[4].case}/events"), author, {"event": forged_event}),
        w.caller.send(forged_request))
    for answer in answers[:4]:
        assert_status(answer, 201)
    assert_error(answers[4], 401, "bad_signature")
    assert_error(answers[5], 401, "bad_signature")
    offloaded, inline = (ctx.verifier.offloaded - before[0], ctx.verifier.inline - before[1])
    # 6 request signatures and the 4 honest events' signatures, each on the path under
    # test.  The forged request never reaches its event, and the forged event carries no
    # signature by its author's key: nothing to check, refused by the count.
    assert (offloaded, inline) == ((10, 0) if mode == "offloaded" else (0, 10))
    for (state, event), case in zip(honest, cases):
        state.commit(event)
    for state in cases:
        stored = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"), author), 200)
        assert stored["events"] == state.events
