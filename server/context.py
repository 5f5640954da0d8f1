"""The application context: every dependency of the handlers, passed explicitly
(style.md, "Explicit dependencies") and kept in the aiohttp app under :data:`CTX`.

Tests build one with a fake clock and in-memory server keys; ``schakel serve`` builds one
from the data directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from schakel.protocol.objects.base import format_timestamp
from schakel.server.auth import ReplayCache, SharedReplayCache
from schakel.server.config import ServerConfig
from schakel.server.directory import MemberDirectory, follow_networks
from schakel.server.metrics import Metrics
from schakel.server.notifier import Notifier
from schakel.server.ratelimit import IntakeLimiter, SharedIntakeLimiter
from schakel.server.serverkeys import ServerKeys
from schakel.server.storage import BaseStore, Store
from schakel.server.trustlog import trust_size

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
    replay: ReplayCache | SharedReplayCache
    intake: IntakeLimiter | SharedIntakeLimiter
    log: Any
    #: What this process hears of others sharing its PostgreSQL database; None on SQLite.
    follower: "Follower | None" = None
    #: ``(network, case) -> owner`` of cases a core member appended to: the append route's
    #: access check without a read on every event (``server/routes/cases.py``).  A hint
    #: only: ``append_event_txn`` re-checks the owner in the writing transaction.
    case_owners: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def create(cls, config: ServerConfig, keys: ServerKeys, *, clock: Clock = utc_now,
               log: Any = None) -> "AppContext":
        """A context whose store is not yet started (``make_app`` starts it).  The replay
        cache's start time is now: requests signed earlier are refused (protocol.md §14).
        On PostgreSQL the replay cache and the intake buckets are the database's, and the
        process follows what others sharing the database commit (ADR 0052)."""
        notifier, directory = Notifier(), MemberDirectory()
        log = log if log is not None else structlog.get_logger("schakel")
        limits = config.limits
        started = int(clock().timestamp())
        seconds = lambda: clock().timestamp()  # noqa: E731
        follower = Follower(notifier, directory, log)
        store = open_store(config, on_commit=notifier.wake, on_remote=follower.heard,
                           on_resync=follower.resync)
        follower.store = store
        replay: ReplayCache | SharedReplayCache
        intake: IntakeLimiter | SharedIntakeLimiter
        shared: Follower | None = None
        if isinstance(store, Store):
            replay = ReplayCache(started_at=started)
            intake = IntakeLimiter(seconds, max_buckets=limits.intake_buckets)
        else:
            shared = follower
            from schakel.server.pgstore import PgStore
            assert isinstance(store, PgStore)
            replay = SharedReplayCache(store, started_at=started)
            intake = SharedIntakeLimiter(store, seconds)
        return cls(config=config, store=store, keys=keys, clock=clock, directory=directory,
                   notifier=notifier, metrics=Metrics(), replay=replay, intake=intake, log=log,
                   follower=shared)

    def now(self) -> datetime:
        return self.clock()

    def timestamp(self) -> str:
        """The server's time in wire form (whole seconds, UTC)."""
        return format_timestamp(self.clock())


def open_store(config: ServerConfig, *, on_commit: Callable[[frozenset[str]], None] | None = None,
               on_remote: Callable[[frozenset[str], frozenset[str]], None] | None = None,
               on_resync: Callable[[], None] | None = None) -> BaseStore:
    """The configured backend (ADR 0051), not yet started: PostgreSQL at
    ``config.database_url`` when set (``on_remote``/``on_resync``: what the process hears
    of others sharing the database, ADR 0052), else SQLite in ``DIR/schakel.db``."""
    limits = config.limits
    if config.database_url is not None:
        from schakel.server.pgstore import PgStore    # psycopg only when PostgreSQL is used
        return PgStore(config.database_url, readers=limits.readers, batch=limits.write_batch,
                       on_commit=on_commit, on_remote=on_remote, on_resync=on_resync)
    return Store(config.database, readers=limits.readers, batch=limits.write_batch,
                 on_commit=on_commit)


class Follower:
    """What one server process hears of the others sharing its PostgreSQL database
    (:class:`~schakel.server.pgstore.PgStore`'s listener, ADR 0052): another process's
    commit to a network's feed wakes this process's long-polls of it; a trust-log append
    has the member directory follow the network from the database.  After the listener
    (re)connects -- notifications sent meanwhile are lost -- every waiter reads again and
    the whole directory is followed."""

    def __init__(self, notifier: Notifier, directory: MemberDirectory, log: Any) -> None:
        self.notifier, self.directory, self.log = notifier, directory, log
        self.store: BaseStore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._catching_up = asyncio.Lock()

    def heard(self, feeds: frozenset[str], trusts: frozenset[str]) -> None:
        self.notifier.wake(feeds)
        if trusts:
            self._follow(trusts)

    def resync(self) -> None:
        self.notifier.wake_all()
        self._follow(None)

    async def catch_up(self, network: str) -> bool:
        """Follow ``network`` now if the database's trust log holds more than this
        process followed (a request signed by a key that another process admitted a moment
        ago, before its notification arrived); whether anything was followed.  One read of
        the log's size.  Catch-ups take turns, and each reads the size after the one before
        it ended: a caller never relies on a read that began before its key was admitted."""
        assert self.store is not None
        async with self._catching_up:
            size = await self.store.read(trust_size, network)
            state = self.directory.known(network)
            if size == 0 or (state is not None and size <= state.followed):
                return False
            await follow_networks(self.store, self.directory, [network])
            return True

    def _follow(self, networks: frozenset[str] | None) -> None:
        assert self.store is not None
        task = asyncio.ensure_future(follow_networks(self.store, self.directory, networks))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        failed = None if task.cancelled() else task.exception()
        if failed is not None and not self.notifier.closed:   # closed: the store refuses now
            self.log.error("following another server process failed",
                           error=type(failed).__name__)


CTX: web.AppKey[AppContext] = web.AppKey("schakel", AppContext)


def context_of(request: web.Request) -> AppContext:
    return request.app[CTX]


__all__ = ["Clock", "utc_now", "AppContext", "CTX", "Follower", "context_of", "open_store"]
