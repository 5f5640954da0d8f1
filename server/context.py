"""The application context: every dependency of the handlers, passed explicitly
(style.md, "Explicit dependencies") and kept in the aiohttp app under :data:`CTX`.

Tests build one with a fake clock and in-memory server keys; ``schakel serve`` builds one
from the data directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from schakel.protocol.objects.base import format_timestamp
from schakel.server.auth import ReplayCache
from schakel.server.config import ServerConfig
from schakel.server.directory import MemberDirectory
from schakel.server.metrics import Metrics
from schakel.server.notifier import Notifier
from schakel.server.ratelimit import IntakeLimiter
from schakel.server.serverkeys import ServerKeys
from schakel.server.storage import BaseStore, Store

#: The server's clock: an aware UTC datetime.  Tests pass a fake one.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, kw_only=True)
class AppContext:
    config: ServerConfig
    store: BaseStore
    keys: ServerKeys
    clock: Clock
    directory: MemberDirectory
    notifier: Notifier
    metrics: Metrics
    replay: ReplayCache
    intake: IntakeLimiter
    log: Any
    #: ``(network, case) -> owner`` of cases a core member appended to: the append route's
    #: access check without a read on every event (``server/routes/cases.py``).  A hint
    #: only: ``append_event_txn`` re-checks the owner in the writing transaction.
    case_owners: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def create(cls, config: ServerConfig, keys: ServerKeys, *, clock: Clock = utc_now,
               log: Any = None) -> "AppContext":
        """A context whose store is not yet started (``make_app`` starts it).  The replay
        cache's start time is now: requests signed earlier are refused (protocol.md §14)."""
        notifier = Notifier()
        limits = config.limits
        store = open_store(config, on_commit=notifier.wake)
        started = int(clock().timestamp())
        return cls(config=config, store=store, keys=keys, clock=clock,
                   directory=MemberDirectory(), notifier=notifier, metrics=Metrics(),
                   replay=ReplayCache(started_at=started),
                   intake=IntakeLimiter(lambda: clock().timestamp(),
                                        max_buckets=limits.intake_buckets),
                   log=log if log is not None else structlog.get_logger("schakel"))

    def now(self) -> datetime:
        return self.clock()

    def timestamp(self) -> str:
        """The server's time in wire form (whole seconds, UTC)."""
        return format_timestamp(self.clock())


def open_store(config: ServerConfig, *, on_commit: Callable[[frozenset[str]], None] | None = None
               ) -> BaseStore:
    """The configured backend (ADR 0051), not yet started: PostgreSQL at
    ``config.database_url`` when set, else SQLite in ``DIR/schakel.db``."""
    limits = config.limits
    if config.database_url is not None:
        from schakel.server.pgstore import PgStore    # psycopg only when PostgreSQL is used
        return PgStore(config.database_url, readers=limits.readers, batch=limits.write_batch,
                       on_commit=on_commit)
    return Store(config.database, readers=limits.readers, batch=limits.write_batch,
                 on_commit=on_commit)


CTX: web.AppKey[AppContext] = web.AppKey("schakel", AppContext)


def context_of(request: web.Request) -> AppContext:
    return request.app[CTX]


__all__ = ["Clock", "utc_now", "AppContext", "CTX", "context_of", "open_store"]
