"""Authentication and per-network authorization (docs/protocol.md §14, "Authentication";
protocol.md §10).

1. :func:`authenticate` verifies the RFC 9421 signature with
   ``schakel.protocol.httpsig.verify_request`` against the server's public origin plus the raw
   path and query, at the server's clock, resolving ``keyid`` through the in-memory
   member directory (unknown key: 401 ``untrusted_key``);
2. :class:`ReplayCache` refuses a ``(keyid, nonce)`` seen within the skew window, and --
   because it lives in memory -- every request signed before the server started
   (``stale_request``), so nothing seen before a restart can be replayed after it; on
   PostgreSQL :class:`SharedReplayCache` keeps the pairs in the database, for every
   process that serves it (ADR 0052);
3. :func:`require_member` checks that the caller holds a current membership of the
   network in the path (or is that network's coordinator key), with the ring and roles
   the route needs.  A member of another network gets 403 ``forbidden``; a membership
   that expired or was revoked 403 ``untrusted_key``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from schakel.keys import Member
from schakel.protocol import httpsig
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import ReplayError, StaleRequestError, UntrustedKeyError
from schakel.server.connections import read_body
from schakel.server.data.shared import forget_nonces, remember_nonce
from schakel.server.directory import NetworkState
from schakel.server.errors import Forbidden, UnknownKey

if TYPE_CHECKING:
    from schakel.server.context import AppContext
    from schakel.server.pgstore import PgStore

VERIFIED: web.RequestKey[httpsig.VerifiedRequest] = web.RequestKey(
    "schakel.verified", httpsig.VerifiedRequest)


class ReplayCache:
    """``(keyid, nonce)`` of every accepted request until ``created + max_skew``
    (``schakel.protocol.httpsig.replay_key``), in this process's memory, and the start-time
    rule.  The cache of the one process that serves a SQLite database."""

    def __init__(self, *, started_at: int) -> None:
        self.started_at = started_at
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[int, str, str]] = []

    def __len__(self) -> int:
        return len(self._seen)

    async def check(self, verified: httpsig.VerifiedRequest, now: int) -> None:
        """Refuse a replay or a request older than the server; else remember it."""
        _check_start(verified, self.started_at)
        while self._expiry and self._expiry[0][0] < now:
            _, keyid, nonce = heapq.heappop(self._expiry)
            self._seen.discard((keyid, nonce))
        entry = httpsig.replay_key(verified)
        if (entry.keyid, entry.nonce) in self._seen:
            raise ReplayError("this request was already received (nonce seen before)")
        self._seen.add((entry.keyid, entry.nonce))
        heapq.heappush(self._expiry, (entry.remember_until, entry.keyid, entry.nonce))


class SharedReplayCache:
    """The replay cache of server processes sharing a PostgreSQL database (ADR 0052): each
    accepted ``(keyid, nonce)`` is a row of ``replay_nonces`` until ``created + max_skew``,
    inserted by one atomic statement, so a request replayed to *another* process is refused
    too.  The start-time rule stays (a request signed before this process started is
    refused; the client signs again).  Entries whose time passed are deleted at most every
    :data:`FORGET_EVERY` seconds by each process."""

    FORGET_EVERY = 60

    def __init__(self, store: "PgStore", *, started_at: int) -> None:
        self.store = store
        self.started_at = started_at
        self._forgot_at = 0

    async def check(self, verified: httpsig.VerifiedRequest, now: int) -> None:
        _check_start(verified, self.started_at)
        entry = httpsig.replay_key(verified)
        if now - self._forgot_at >= self.FORGET_EVERY:
            self._forgot_at = now
            await self.store.record(forget_nonces, now)
        if not await self.store.record(remember_nonce, entry.keyid, entry.nonce,
                                       entry.remember_until, now):
            raise ReplayError("this request was already received (nonce seen before)")


def _check_start(verified: httpsig.VerifiedRequest, started_at: int) -> None:
    if verified.created < started_at:
        raise StaleRequestError("request was signed before the server started; sign it "
                                "again", details={"max_skew": verified.max_skew})


def is_signed(request: web.Request) -> bool:
    """Whether the request carries signature fields (for routes where signing is optional)."""
    return "Signature" in request.headers or "Signature-Input" in request.headers


async def authenticate(request: web.Request, ctx: "AppContext", *,
                       resolve: Callable[[str], VerifyKey] | None = None
                       ) -> httpsig.VerifiedRequest:
    """Verify the request's signature, digest and freshness (protocol.md §10 steps 1-8);
    the result is also kept as ``request[VERIFIED]``."""
    body = await read_body(request, ctx.config.limits)  # bounded in size (413) and time (408)
    now = int(ctx.clock().timestamp())

    def verify() -> httpsig.VerifiedRequest:
        return httpsig.verify_request(
            request.method, ctx.config.public_origin + request.raw_path,
            list(request.headers.items()), body, resolve_key=resolve or ctx.directory.resolve,
            now=now, max_skew=ctx.config.limits.max_skew)
    try:
        verified = verify()
    except UnknownKey:
        # Another process sharing the database may have admitted the key a moment ago
        # (ADR 0052): follow the network in the path if its trust log grew, and look again.
        network = request.match_info.get("network")
        if resolve is not None or ctx.follower is None or network is None:
            raise
        await ctx.follower.catch_up(network)   # (or a follow under way meanwhile learnt it)
        verified = verify()
    else:
        network = request.match_info.get("network")
        if ctx.follower is not None and network is not None:
            state = ctx.directory.known(network)
            if state is None or not state.knows(verified.keyid):
                await ctx.follower.catch_up(network)   # a key of another network, admitted here
    await ctx.replay.check(verified, now)
    request[VERIFIED] = verified
    return verified


@dataclass(frozen=True)
class Caller:
    """An authenticated caller in one network."""

    keyid: str
    acting_user: str
    network: NetworkState
    #: None: the coordinator key acting without a membership, or a former member.
    member: Member | None
    #: The caller's memberships all ended (revoked or expired): admitted only where the
    #: route asks for it -- the purge routes a removed member must still reach (§N.5), and
    #: the release routes, which decide and audit its request instead of refusing it unheard.
    former: bool = False

    @property
    def is_coordinator(self) -> bool:
        return not self.former and (self.network.is_coordinator_key(self.keyid) or (
            self.member is not None and self.member.has_role("coordinator")))

    @property
    def ring(self) -> str:
        """The coordinator key without a membership acts in the core (it runs the network);
        a former member is in no ring of its own and counts as the outer one."""
        if self.member is not None:
            return self.member.ring
        return "shell" if self.former else "core"

    @property
    def party(self) -> str | None:
        """The party the acting user acts in (protocol.md §N.4, "Users"): from the
        membership in force -- its ``users`` list, else its ``party``; None for the
        coordinator key without a membership, a former member and an unlisted user."""
        return None if self.member is None else self.member.party_of(self.acting_user)

    @property
    def listed(self) -> bool:
        """Whether the acting user may act for the member: always, unless the membership
        in force lists its users and this one is not among them."""
        return self.member is None or self.member.party_of(self.acting_user) is not None

    @property
    def roles(self) -> frozenset[str]:
        """The acting user's roles: the membership's, without the formal-only roles for
        an acting user outside the formal party (``acting_roles``)."""
        roles = self.member.roles_of(self.acting_user) if self.member is not None else frozenset()
        return roles | ({"coordinator"} if self.is_coordinator else set())

    @property
    def key(self) -> VerifyKey:
        if self.member is not None:
            return self.member.sign
        if self.former:
            return self.network.last_membership(self.keyid).sign
        return self.network.coordinator_key


def require_member(request: web.Request, ctx: "AppContext", network: str, *,
                   ring: str | None = None, roles: Iterable[str] = (),
                   coordinator: bool = False, membership: bool = False,
                   former: bool = False, unlisted: bool = False) -> Caller:
    """The authenticated caller as a member of ``network``, or a refusal.

    ``ring``: the caller must be in that ring; ``roles``: it must hold all of them;
    ``coordinator``: it must be the coordinator (the genesis key, or a member with the
    ``coordinator`` role); ``membership``: the coordinator key alone is not enough (the
    route's objects must be verifiable by members, e.g. a case owner or event author);
    ``former``: a partner whose memberships all ended is admitted too, as a caller with
    ``former`` set and no rights beyond its own key (protocol.md §N.5: a removed member
    fetches and acknowledges its purge instructions; §15.2: its release attempts are
    decided and audited as ``not-a-member`` denials), and nothing else.  An acting user
    that the caller's membership does not list (§N.4, "Users") is refused (403
    ``forbidden``, ``details.reason`` ``acting-user-not-listed``) unless ``unlisted``: the
    disclosure routes that decide and audit its act instead (§15.2).
    """
    verified = request[VERIFIED]
    state = ctx.directory.member_or_forbidden(network, verified.keyid)
    roles = tuple(roles)
    ended = False
    try:
        member = state.current(verified.keyid, ctx.now())
    except UntrustedKeyError:
        if state.is_coordinator_key(verified.keyid):
            member = None
        elif former and not (membership or ring or roles or coordinator):
            member, ended = None, True        # its own purge routes, no right beyond them
        else:
            raise
    caller = Caller(verified.keyid, verified.acting_user, state, member, ended)
    if not (unlisted or caller.listed):
        raise Forbidden("the acting user is not one of the users this member's membership "
                        "lists; the coordinator lists the member's users",
                        details={"reason": "acting-user-not-listed"})
    if membership and member is None:
        raise Forbidden("this needs a current membership of the network")
    if ring is not None and caller.ring != ring:
        raise Forbidden(f"only {ring} members may do this", details={"ring": caller.ring})
    missing = sorted(set(roles) - caller.roles)
    if missing:
        raise Forbidden("the caller lacks a role this needs", details={"roles": missing})
    if coordinator and not caller.is_coordinator:
        raise Forbidden("only the network's coordinator may do this")
    return caller


__all__ = ["VERIFIED", "ReplayCache", "is_signed", "authenticate", "Caller", "require_member"]
