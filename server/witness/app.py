"""The witness's HTTP interface, c2sp.org/tlog-witness (docs/protocol.md §17.4).

- ``POST /add-checkpoint``: an ``old`` line, consistency-proof lines, an empty line and a
  checkpoint note in; the witness's cosignature line out (200), or a one-line
  ``text/plain`` reason with 400, 403, 404, 409 (``text/x.tlog.size``, the latest size),
  413 or 422.
- ``GET /<sha256-hex of origin>/checkpoint``: the latest cosigned checkpoint with the log's
  signature and the witness's cosignature (404 when none).

Every database call runs on one single-thread executor, and the check of ``old`` and the
store of the new checkpoint are one transaction (:meth:`WitnessStore.add_checkpoint`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from schakel.server.witness.keys import WitnessKey
from schakel.server.witness.rules import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    Refusal,
    check_signature,
    monitoring_note,
    parse_add_checkpoint,
)
from schakel.server.witness.store import WitnessStore

T = TypeVar("T")


def _posix_now() -> int:
    return int(time.time())


@dataclass
class WitnessContext:
    """What the witness's handlers need: its store, its key and its clock (POSIX seconds)."""

    store: WitnessStore
    key: WitnessKey
    clock: Callable[[], int] = _posix_now
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="witness-db"))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


CONTEXT: web.AppKey[WitnessContext] = web.AppKey("witness", WitnessContext)

_TEXT = "text/plain"


def _refused(refusal: Refusal) -> web.Response:
    if refusal.status == 409:
        return web.Response(status=409, body=f"{refusal.size}\n".encode("ascii"),
                            content_type=SIZE_CONTENT_TYPE)
    return web.Response(status=refusal.status, text=f"{refusal.reason}: {refusal.message}\n",
                        content_type=_TEXT)


async def add_checkpoint(request: web.Request) -> web.Response:
    """``POST /add-checkpoint``::

        old 4
        <base64 hash>
        <base64 hash>

        schakel/audit/<network-id>
        7
        <base64 root>

        — schakel/audit/<network-id> <base64 signature>

    answers ``200`` with ``— <witness name> <base64 cosignature>\\n``.
    """
    ctx = request.app[CONTEXT]
    too_large = Refusal(413, "too-large", f"the body is larger than {MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _refused(too_large)
    try:
        body = await request.read()          # bounded by client_max_size (MAX_BODY)
    except web.HTTPRequestEntityTooLarge:
        return _refused(too_large)
    try:
        parsed = parse_add_checkpoint(body)
        log = await ctx.run(ctx.store.log, parsed.checkpoint.origin)
        check_signature(parsed, log)
        assert log is not None
        now = ctx.clock()

        def make() -> tuple[str, str]:
            line = ctx.key.cosign(parsed.note.text, now).line()
            return line, monitoring_note(parsed, log, line)

        line = await ctx.run(ctx.store.add_checkpoint, parsed, now, make)
    except Refusal as refusal:
        return _refused(refusal)
    return web.Response(text=line, content_type=_TEXT)


async def checkpoint(request: web.Request) -> web.Response:
    """``GET /<sha256-hex of origin>/checkpoint``: the latest cosigned checkpoint."""
    ctx = request.app[CONTEXT]
    wanted = request.match_info["origin_hash"]
    for cosigned in await ctx.run(ctx.store.all_latest):
        if hashlib.sha256(cosigned.origin.encode("utf-8")).hexdigest() == wanted:
            return web.Response(text=cosigned.note, content_type=_TEXT)
    return web.Response(status=404, text="no checkpoint cosigned for this origin\n",
                        content_type=_TEXT)


def make_app(ctx: WitnessContext) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get(r"/{origin_hash:[0-9a-f]{64}}/checkpoint", checkpoint)

    async def close(app: web.Application) -> None:
        ctx.executor.shutdown(wait=True)
        ctx.store.close()

    app.on_cleanup.append(close)
    return app


def serve(ctx: WitnessContext, *, host: str, port: int) -> None:
    """Run the witness until Ctrl-C or SIGTERM (no access log: a witness logs nothing of
    what it is sent; what it refuses as evidence is in its database)."""
    web.run_app(make_app(ctx), host=host, port=port, print=None, access_log=None)


__all__ = ["CONTEXT", "WitnessContext", "make_app", "serve"]
