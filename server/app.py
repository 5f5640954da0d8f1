"""The aiohttp application: :func:`make_app` installs every route of the
registry, the middleware (``observe``, which maps errors too) and the lifecycle;
:func:`serve` runs it behind the HTTP edge of server/connections.py (per-address cap, head
and body timeouts, parser refusals as the error object).

Lifecycle: on start-up the store opens (schema, writer and reader threads) and the member
directory is rebuilt from it. Two background tasks run: a retention pass
(server/retention.py) every ``limits.retention_interval`` seconds, and a pass that submits
each network's newest checkpoints to its witnesses (server/witnessing.py) every
``limits.witness_interval`` seconds; both are cancelled before the store closes.  On SIGTERM or SIGINT the server stops accepting connections
and runs ``on_shutdown`` (long-poll waiters are released at once), gives in-flight
requests ``shutdown_timeout`` seconds to finish, then runs the cleanup, which closes the
store: the writer commits every write already queued before it stops.  A shutdown that
has not ended :data:`STOP_GRACE` seconds after that (a thread stuck in I/O), or a second
signal, ends the process at once: every acknowledged write is already durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from schakel.server import datalock
from schakel.server.connections import Edge
from schakel.server.context import CTX, AppContext
from schakel.server.directory import load_directory
from schakel.server.middleware import observe
from schakel.server.openapi import build_openapi
from schakel.server.registry import Route
from schakel.server.retention import retention_task
from schakel.server.witnessing import witness_task
from schakel.server.routes import TABLES
from schakel.server.routes.ops import OPENAPI


def _handler(route: Route) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await route(request)
    handle.__name__ = route.name
    return handle


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    await ctx.store.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        await load_directory(ctx.store, ctx.directory)
        limits = ctx.config.limits
        tasks.append(asyncio.create_task(
            retention_task(ctx, limits.retention_interval), name="retention"))
        tasks.append(asyncio.create_task(
            witness_task(ctx, limits.witness_interval), name="witnesses"))
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await ctx.store.close()
        ctx.log.info("stopped", commits=ctx.store.commits)


async def _release_waiters(app: web.Application) -> None:
    app[CTX].notifier.close()


def make_app(ctx: AppContext) -> web.Application:
    """The application for ``ctx`` (its store is started by the app's lifecycle)."""
    app = web.Application(client_max_size=ctx.config.limits.max_body,
                          middlewares=[observe])        # observe maps errors too
    app[CTX] = ctx
    for table in TABLES:
        for route in table.routes:
            app.router.add_route(route.method, route.path, _handler(route), name=route.name)
    app[OPENAPI] = build_openapi(TABLES)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_release_waiters)
    return app


#: Seconds a stopping server gets beyond ``limits.shutdown_timeout`` before it exits
#: without waiting any longer.
STOP_GRACE = 10.0
#: The exit status of a server that had to end without finishing its shutdown.
EXIT_FORCED = 1


def serve(ctx: AppContext, *, announce: Callable[[str], None] = print) -> None:
    """Run the server until SIGTERM or SIGINT (graceful shutdown, see the module doc).  On
    SQLite it holds the data directory's lock all along (server/datalock.py:
    :class:`~schakel.server.datalock.DataDirBusy` at once when another process holds it);
    on PostgreSQL other processes may serve the same database (ADR 0052)."""
    config = ctx.config
    where = config.data_dir if config.database_url is None else "PostgreSQL"
    with datalock.hold(config.data_dir) if config.database_url is None \
            else contextlib.nullcontext():
        announce(f"Schakel server on http://{config.host}:{config.port} "
                 f"(requests are signed for {config.public_origin}); data in {where}")
        asyncio.run(_run(ctx))


def run_on(ctx: AppContext, sock: socket.socket) -> int:
    """Serve ``sock`` (a listening socket other processes serve too) until SIGTERM or
    SIGINT, as :func:`serve` does: one worker of ``schakel serve --workers``
    (server/workers.py).  Returns the process's exit status."""
    asyncio.run(_run(ctx, sock))
    return 0


async def _run(ctx: AppContext, sock: socket.socket | None = None) -> None:
    config, limits = ctx.config, ctx.config.limits
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            _exit_now(ctx, "a second signal")
        stopping.set()
        _exit_after(ctx, limits.shutdown_timeout + STOP_GRACE)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    runner = web.AppRunner(make_app(ctx), access_log=None,
                           shutdown_timeout=limits.shutdown_timeout)
    await runner.setup()
    try:
        assert runner.server is not None
        factory = Edge(ctx).serve_on(runner.server)
        listener = await (loop.create_server(factory, sock=sock) if sock is not None else
                          loop.create_server(factory, config.host, config.port, backlog=128))
        try:
            await stopping.wait()
        finally:
            listener.close()
    finally:
        await runner.cleanup()


def _exit_after(ctx: AppContext, seconds: float) -> None:
    """End the process ``seconds`` from now unless it has ended by then (a daemon timer:
    it runs even when the event loop or the interpreter's exit waits on a stuck thread)."""
    timer = threading.Timer(seconds, _exit_now, args=(ctx, f"shutdown still running after "
                                                           f"{seconds:g} s"))
    timer.daemon = True
    timer.start()


def _exit_now(ctx: AppContext, why: str) -> None:
    with contextlib.suppress(Exception):
        ctx.log.error("exiting without finishing the shutdown", reason=why)
    os._exit(EXIT_FORCED)


__all__ = ["STOP_GRACE", "EXIT_FORCED", "make_app", "run_on", "serve"]
