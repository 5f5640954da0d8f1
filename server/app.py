"""The aiohttp application (issue 3): :func:`make_app` installs every route of the
registry, the middleware (``observe``, which maps errors too) and the lifecycle;
:func:`serve` runs it.

Lifecycle: on start-up the store opens (schema, writer and reader threads) and the member
directory is rebuilt from it. A background task runs a retention pass
(server/retention.py) every ``limits.retention_interval`` seconds; it is cancelled
before the store closes.  On SIGTERM or SIGINT aiohttp stops accepting connections
and runs ``on_shutdown`` (long-poll waiters are released at once), gives in-flight
requests ``shutdown_timeout`` seconds to finish, then runs the cleanup, which closes the
store: the writer commits every write already queued before it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from server.context import CTX, AppContext
from server.directory import load_directory
from server.middleware import observe
from server.openapi import build_openapi
from server.registry import Route
from server.retention import retention_task
from server.routes import TABLES
from server.routes.ops import OPENAPI


def _handler(route: Route) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await route(request)
    handle.__name__ = route.name
    return handle


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    await ctx.store.start()
    retention: asyncio.Task[None] | None = None
    try:
        await load_directory(ctx.store, ctx.directory)
        retention = asyncio.create_task(
            retention_task(ctx, ctx.config.limits.retention_interval), name="retention")
        yield
    finally:
        if retention is not None:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
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


def serve(ctx: AppContext, *, announce: Callable[[str], None] = print) -> None:
    """Run the server until SIGTERM or SIGINT (graceful shutdown, see the module doc)."""
    config = ctx.config
    announce(f"Schakel server on http://{config.host}:{config.port} "
             f"(requests are signed for {config.public_origin}); data in {config.data_dir}")
    web.run_app(make_app(ctx), host=config.host, port=config.port,
                shutdown_timeout=config.limits.shutdown_timeout, access_log=None, print=None,
                handle_signals=True)


__all__ = ["make_app", "serve"]
