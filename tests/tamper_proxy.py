"""A lying server for the client's adversarial tests (docs/threat-model.md §5.2, T2).

The client must catch a server that swaps, replays, reorders or drops data, substitutes
keys, forks or rewrites its audit log, or strips receipts (docs/adr/0007-client-library.md,
the ``ServerMisbehaviour`` table).  To test that without a fake server, the tests run the
*real* Schakel application on a loopback socket and put :class:`TamperProxy`, a real aiohttp
reverse proxy on another loopback socket, in front of it.  Clients talk to the proxy only.

The proxy forwards every request byte for byte (headers, body, raw path and query) and
every answer unchanged, unless a test installed a *rewriter* for the route: ``proxy.on(method,
path_regex, fn)`` with ``fn(json_body) -> json_body``.  The canned helpers below build the
rewriters of each attack.  Request signatures still verify at the server because the
server's configured public origin is the **proxy's** URL: clients sign the URL they connect
to (docs/protocol.md §14.1, step 1), and the proxy leaves the signed request untouched.

A malicious server holds its own log key, so :class:`TamperedServer` loads it from the
server's data directory (``schakel.server.serverkeys.load_or_create``, as ``schakel serve`` does)
and the proxy uses it to sign a forked audit log: heads that are signatures of the real
key over a tree the server never had.  The log's leaves come from the server's own SQLite
file (read-only), which is what an operator who lies has.

Why not the client harness's ``running_server``: it configures the server's origin for the
URL the client connects to, which here must be the proxy's, known only once the proxy's
socket is bound; so this module starts the proxy first and builds the server after, exactly
like ``tests/server_harness.build_app`` (``schakel.server.app.make_app`` over an ``AppContext``), on
the real clock.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from schakel.keys import Fingerprint
from schakel.protocol import merkle, signing
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, Signer, VerifyKey, random_bytes
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.objects.audit import AuditEntry, TreeHead, entry_commitment

#: Headers that describe one hop, not the message (RFC 9110 §7.6.1) plus the ones the
#: proxy recomputes; everything else is forwarded as is.
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                  "trailer", "transfer-encoding", "upgrade", "content-length", "host",
                  "content-encoding"})

#: A rewriter gets the answer's JSON and the request it answers; it returns the new JSON
#: (or mutates it in place and returns None).
Rewriter = Callable[[Any, "Exchange"], Any]

NETWORK = r"[A-Za-z0-9_-]+"


@dataclass
class Exchange:
    """One request the proxy forwarded and the answer it gave (after any rewrite)."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int
    body: Any = None
    rewritten: bool = False
    match: re.Match[str] | None = None
    #: What the client sent: the raw target (path and query), header fields and body.
    request_target: str = ""
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes = b""


_KEYID = re.compile(r';keyid="([A-Za-z0-9_-]+)"')


def _signer_of(signature_input: str) -> str | None:
    """The ``keyid`` parameter of a signed request's ``Signature-Input`` (protocol.md §10)."""
    m = _KEYID.search(signature_input)
    return m.group(1) if m else None


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    fn: Rewriter
    times: int | None  # None: every matching answer; else how many more
    hits: int = 0
    #: Only answers to requests signed by this key id (one partner's view); None: everyone's.
    partner: str | None = None


@dataclass
class TamperProxy:
    """The reverse proxy.  ``upstream`` is set once the real server runs."""

    upstream: str = ""
    url: str = ""
    rules: list[_Rule] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ rules

    def on(self, method: str, path_regex: str, fn: Callable[[Any], Any], *,
           times: int | None = None) -> _Rule:
        """Rewrite the 2xx JSON answers of ``method`` requests whose path (without the
        query) matches ``path_regex`` in full: ``fn(json_body) -> json_body`` (a mutating
        ``fn`` may return None).  ``times`` limits how many answers it rewrites."""
        return self.on_exchange(method, path_regex, lambda body, _ex: fn(body), times=times)

    def on_exchange(self, method: str, path_regex: str, fn: Rewriter, *,
                    times: int | None = None, partner: str | None = None) -> _Rule:
        """Like :meth:`on`, for rewriters that need the request (query, path groups).
        With ``partner`` (a key id) only the answers to that partner's signed requests are
        rewritten: a server that shows one partner another view than the others."""
        rule = _Rule(method.upper(), re.compile(path_regex), fn, times, partner=partner)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Stop tampering: every answer is forwarded unchanged again."""
        self.rules.clear()

    def hits(self) -> int:
        """How many answers the installed rules actually changed (a test that tampers must
        see > 0, or the attack never reached the client)."""
        return sum(r.hits for r in self.rules)

    def seen(self, method: str, path_regex: str) -> list[Exchange]:
        pattern = re.compile(path_regex)
        return [e for e in self.exchanges
                if e.method == method.upper() and pattern.fullmatch(e.path)]

    # ------------------------------------------------------------------ serving

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None and self.upstream, "proxy not started"
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        target = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(request.method, target, data=body or None,
                                         headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=60)) as resp:
            raw = await resp.read()
            status = resp.status
            out_headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP]
        ex = Exchange(request.method, request.path, dict(request.query), status,
                      request_target=request.raw_path,
                      request_headers=tuple(request.headers.items()), request_body=body)
        parsed: Any = None
        if raw and resp.content_type == "application/json":
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        ex.body = parsed
        signer = _signer_of(request.headers.get("Signature-Input", ""))
        if parsed is not None and 200 <= status < 300:
            for rule in self.rules:
                if rule.method != request.method or (rule.times is not None and rule.times <= 0):
                    continue
                if rule.partner is not None and rule.partner != signer:
                    continue
                m = rule.pattern.fullmatch(request.path)
                if m is None:
                    continue
                ex.match = m
                before = json.dumps(parsed, sort_keys=True)
                result = rule.fn(parsed, ex)
                parsed = parsed if result is None else result
                if json.dumps(parsed, sort_keys=True) == before:
                    continue          # nothing to tamper with in this answer
                rule.hits += 1
                if rule.times is not None:
                    rule.times -= 1
                ex.rewritten = True
            if ex.rewritten:
                raw = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
                ex.body = parsed
        self.exchanges.append(ex)
        return web.Response(status=status, body=raw, headers=out_headers)

    # ------------------------------------------------------------------ canned attacks:
    # the sync feed (docs/protocol.md §14.3 "Sync": items {cursor, kind, case, envelope})

    def on_sync(self, network: str, fn: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                *, times: int | None = None) -> _Rule:
        """Rewrite the item list of the network's sync pages that hold at least one item."""
        def rewrite(body: Any) -> Any:
            if body.get("items"):
                body["items"] = fn(body["items"])
            return body
        return self.on("GET", rf"/v1/networks/{re.escape(network)}/sync", rewrite, times=times)

    def swap_event_ciphertext(self, network: str, case_a: str, case_b: str) -> _Rule:
        """Put the ciphertext of case B's newest event in this page into case A's newest
        event (the signed part changes; the signature is left as it was)."""
        def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            a = _last_event(items, case_a)
            b = _last_event(items, case_b)
            if a is None or b is None:
                return items
            a["envelope"]["signed"]["ciphertext"] = b["envelope"]["signed"]["ciphertext"]
            return items
        return self.on_sync(network, fn)

    def move_event_envelope(self, network: str, case_a: str, case_b: str) -> _Rule:
        """Serve case B's newest event envelope (validly signed, naming case B) in the item
        of case A's newest event."""
        def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            a = _last_event(items, case_a)
            b = _last_event(items, case_b)
            if a is None or b is None:
                return items
            a["envelope"] = copy.deepcopy(b["envelope"])
            return items
        return self.on_sync(network, fn)

    def replay_event(self, network: str, old_item: Mapping[str, Any]) -> _Rule:
        """Append a copy of an earlier event item (already delivered) to the next page."""
        def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [*items, copy.deepcopy(dict(old_item))]
        return self.on_sync(network, fn)

    def reorder_events(self, network: str, case: str) -> _Rule:
        """Swap the first two consecutive event items of ``case`` in a page (their
        positions, cursors kept in page order)."""
        def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            idx = [i for i, it in enumerate(items) if it["kind"] == "event" and it["case"] == case]
            for i, j in zip(idx, idx[1:]):
                if j == i + 1:
                    items[i]["envelope"], items[j]["envelope"] = \
                        items[j]["envelope"], items[i]["envelope"]
                    break
            return items
        return self.on_sync(network, fn)

    def drop_event(self, network: str, case: str, seq: int) -> _Rule:
        """Remove the event item of ``case`` with ``seq`` from the page."""
        def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [it for it in items
                    if not (it["kind"] == "event" and it["case"] == case
                            and it["envelope"]["signed"].get("seq") == seq)]
        return self.on_sync(network, fn)

    # ------------------------------------------------------------------ keys and members

    def substitute_member_key(self, network: str, member: str, which: str) -> tuple[_Rule, str]:
        """In ``GET .../members``, replace ``member``'s ``box`` key (or its ``sign`` key,
        with ``member`` renamed to the new key id so the object stays self-consistent) by
        a key the server holds.  Returns the rule and the substituted key's key id."""
        assert which in ("box", "sign")
        if which == "box":
            box = BoxSecretKey.generate().public_key
            new_value, new_id = box.b64(), box.key_id
        else:
            signer = Signer.generate()
            new_value, new_id = signer.verify_key.b64(), signer.key_id

        def rewrite(body: Any) -> Any:
            for env in body.get("memberships", []):
                signed = env["signed"]
                if signed.get("member") == member:
                    signed[which] = new_value
                    if which == "sign":
                        signed["member"] = new_id
            return body
        rule = self.on("GET", rf"/v1/networks/{re.escape(network)}/members", rewrite)
        return rule, new_id

    def substitute_genesis(self, network: str) -> tuple[_Rule, Signer]:
        """Serve a genesis for ``network`` whose coordinator is a key the server made, signed
        by that key: a valid-looking anchor that is not the configured fingerprint's."""
        attacker = Signer.generate()
        attacker_box = BoxSecretKey.generate().public_key

        def rewrite(body: Any) -> Any:
            signed = dict(body["genesis"]["signed"])
            signed["coordinator"] = {"sign": attacker.verify_key.b64(), "box": attacker_box.b64()}
            body["genesis"] = signing.sign("network-genesis", signed, attacker)
            return body
        return self.on("GET", rf"/v1/networks/{re.escape(network)}", rewrite), attacker

    def substitute_server_keys(self, which: str) -> _Rule:
        """In ``GET /v1/server``, replace the ``log`` key, the ``gate`` key or ``both`` by
        keys the attacker holds, with key ids and fingerprints to match (the answer is
        unsigned, so it stays self-consistent)."""
        assert which in ("log", "gate", "both")
        log = Signer.generate().verify_key
        gate = BoxSecretKey.generate().public_key

        def rewrite(body: Any) -> Any:
            for name, key in (("log", log), ("gate", gate)):
                if which in (name, "both"):
                    body[name] = key.b64()
                    body[f"{name}_key_id"] = key.key_id
                    body[f"{name}_fingerprint"] = str(Fingerprint.of(key))
            body["fingerprint"] = str(Fingerprint.of_server(
                VerifyKey.from_b64(body["log"]), BoxPublicKey.from_b64(body["gate"])))
            return body
        return self.on("GET", "/v1/server", rewrite)

    # ------------------------------------------------------------------ releases

    def strip_receipt(self, network: str) -> _Rule:
        """Drop ``receipt`` from release answers (``POST .../releases``)."""
        def rewrite(body: Any) -> Any:
            body.pop("receipt", None)
            return body
        return self.on("POST", rf"/v1/networks/{re.escape(network)}/releases", rewrite)

    def corrupt_receipt(self, network: str, how: str = "entry") -> _Rule:
        """Corrupt the release receipt: ``entry`` changes the audited entry's classes and
        reason (so its commitment is not the proven leaf); ``proof`` flips a bit of the
        first proof hash; ``index`` moves the receipt to the next index."""
        def rewrite(body: Any) -> Any:
            receipt = body["receipt"]
            if how == "entry":
                receipt["entry"]["reason"] = "released on a consent the person never gave"
                receipt["entry"]["ref"] = b64e(random_bytes(16))
            elif how == "proof":
                if receipt["proof"]:
                    raw = bytearray(b64d(receipt["proof"][0]))
                    raw[0] ^= 1
                    receipt["proof"][0] = b64e(bytes(raw))
                else:  # a one-leaf tree has an empty proof: lie about the leaf instead
                    receipt["entry"]["salt"] = b64e(random_bytes(16))
            elif how == "index":
                receipt["index"] = receipt["index"] + 1
                receipt["entry"]["index"] = receipt["index"]
            else:
                raise ValueError(how)
            return body
        return self.on("POST", rf"/v1/networks/{re.escape(network)}/releases", rewrite)

    def swap_released_class_keys(self, network: str) -> _Rule:
        """Swap the ``inner`` class-key envelopes of the first two released classes (each
        is sealed to the grantee with its own class in the sealed context)."""
        def rewrite(body: Any) -> Any:
            env = body.get("envelopes", [])
            if len(env) >= 2:
                env[0]["inner"], env[1]["inner"] = env[1]["inner"], env[0]["inner"]
            return body
        return self.on("POST", rf"/v1/networks/{re.escape(network)}/releases", rewrite)


def _last_event(items: list[dict[str, Any]], case: str) -> dict[str, Any] | None:
    found = [it for it in items if it["kind"] == "event" and it["case"] == case]
    return found[-1] if found else None


# =========================================================================== the audit log


class ForgedLog:
    """The log a malicious server shows: the real leaves from its database with one entry
    replaced, heads re-signed with the real log key (docs/protocol.md §15.1, §A.2).

    Installed on every audit route and on ``GET /v1/networks/{n}`` (which carries the
    latest head), so the client sees one consistent forged log: same size as the real
    one, another root."""

    def __init__(self, db_path: Path, network: str, log_signer: Signer, index: int) -> None:
        self.network, self.signer, self.index = network, log_signer, index
        rows = _read(db_path, "SELECT idx, body, commitment FROM audit_entries WHERE network = ?"
                              " ORDER BY idx", (network,))
        heads = _read(db_path, "SELECT size, time FROM tree_heads WHERE network = ? ORDER BY size",
                      (network,))
        assert rows and 0 <= index < len(rows), "no such entry to fork"
        self.times = {size: time for size, time in heads}
        self.bodies: list[dict[str, Any] | None] = [
            json.loads(b) if b is not None else None for _, b, _ in rows]
        self.leaves: list[bytes] = [bytes(c) for _, _, c in rows]
        original = self.bodies[index]
        assert original is not None, "the forked entry must have a body"
        forged = dict(original)
        forged["salt"] = b64e(random_bytes(16))
        forged["reason"] = "entry the server swapped in after the fact"
        self.forged_entry = forged
        self.bodies[index] = forged
        self.leaves[index] = entry_commitment(AuditEntry.from_json(forged))

    @property
    def size(self) -> int:
        return len(self.leaves)

    def head(self, size: int | None = None) -> dict[str, Any]:
        size = self.size if size is None else size
        root = merkle.root_hash(self.leaves[:size])
        time = self.times.get(size) or self.times[max(self.times)]
        return TreeHead(network=self.network, size=size, root=b64e(root), time=time).sign(self.signer)

    def install(self, proxy: TamperProxy, partner: str | None = None) -> None:
        """Show the forged log to every client, or only to ``partner`` (a key id): a split
        view, where the other partners see the real log."""
        n = re.escape(self.network)
        base = rf"/v1/networks/{n}"

        def network_info(body: Any, _ex: Exchange) -> Any:
            body["tree_head"] = self.head()
            return body

        def head(body: Any, _ex: Exchange) -> Any:
            body["tree_head"] = self.head()
            return body

        def head_at(body: Any, ex: Exchange) -> Any:
            assert ex.match is not None
            size = int(ex.match.group("size"))
            if size <= self.size:
                body["tree_head"] = self.head(size)
            return body

        def entries(body: Any, ex: Exchange) -> Any:
            size = int(ex.query.get("size", self.size))
            for item in body.get("items", []):
                i = item["index"]
                if i < self.size:
                    item["entry"] = copy.deepcopy(self.bodies[i]) if item["entry"] is not None \
                        else None
                    item["commitment"] = b64e(self.leaves[i])
                    if "proof" in item and size <= self.size:
                        item["proof"] = [b64e(h) for h in
                                         merkle.inclusion_proof(self.leaves[:size], i)]
            return body

        def inclusion(body: Any, ex: Exchange) -> Any:
            index, size = int(ex.query["index"]), int(ex.query["size"])
            if size <= self.size:
                body["proof"] = [b64e(h) for h in merkle.inclusion_proof(self.leaves[:size], index)]
            return body

        def consistency(body: Any, ex: Exchange) -> Any:
            old, new = int(ex.query["old"]), int(ex.query["new"])
            if new <= self.size and 0 < old <= new:
                body["proof"] = [b64e(h) for h in merkle.consistency_proof(self.leaves[:new], old)]
            return body

        proxy.on_exchange("GET", base, network_info, partner=partner)
        proxy.on_exchange("GET", base + "/audit/head", head, partner=partner)
        proxy.on_exchange("GET", base + r"/audit/heads/(?P<size>[0-9]+)", head_at,
                          partner=partner)
        proxy.on_exchange("GET", base + "/audit/entries", entries, partner=partner)
        proxy.on_exchange("GET", base + "/audit/proof/inclusion", inclusion, partner=partner)
        proxy.on_exchange("GET", base + "/audit/proof/consistency", consistency,
                          partner=partner)


def rewrite_audit_entry(proxy: TamperProxy, network: str, index: int) -> _Rule:
    """Change the body of entry ``index`` in ``GET .../audit/entries`` answers (its
    ``commitment`` field and every head left as they are): an after-the-fact edit of a
    stored entry, e.g. to hide who received identity."""
    def rewrite(body: Any) -> Any:
        for item in body.get("items", []):
            if item["index"] == index and item["entry"] is not None:
                item["entry"]["reason"] = "entry rewritten by the server"
                item["entry"]["actor"]["acting_user"] = "someone-else-1"
        return body
    return proxy.on("GET", rf"/v1/networks/{re.escape(network)}/audit/entries", rewrite)


def rewrite_audit_proof(proxy: TamperProxy, network: str, index: int, how: str) -> _Rule:
    """Break the inclusion proof that ``GET .../audit/entries?size=`` answers carry for
    entry ``index`` (body, commitment and heads left as they are), as a server whose node
    store was edited would serve it: ``changed`` (its first hash replaced), ``truncated``
    (its last hash dropped), ``dropped`` (no proof at all, as a server that ignores
    ``size`` answers)."""
    def rewrite(body: Any) -> Any:
        for item in body.get("items", []):
            if item["index"] == index and "proof" in item:
                if how == "dropped":
                    del item["proof"]
                elif how == "truncated":
                    item["proof"] = item["proof"][:-1]
                else:
                    item["proof"] = [b64e(bytes(32)), *item["proof"][1:]]
        return body
    return proxy.on("GET", rf"/v1/networks/{re.escape(network)}/audit/entries", rewrite)


def roll_back_head(proxy: TamperProxy, db_path: Path, network: str, size: int) -> _Rule:
    """Serve the real signed head of an earlier ``size`` as the latest (a rollback)."""
    rows = _read(db_path, "SELECT envelope FROM tree_heads WHERE network = ? AND size = ?",
                 (network, size))
    assert rows, f"the server never signed a head of size {size}"
    old = json.loads(rows[0][0])

    def rewrite(body: Any) -> Any:
        if "tree_head" in body:
            body["tree_head"] = copy.deepcopy(old)
        return body
    n = re.escape(network)
    proxy.on("GET", rf"/v1/networks/{n}", rewrite)
    return proxy.on("GET", rf"/v1/networks/{n}/audit/head", rewrite)


# =========================================================================== the server's files


def _read(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query on the server's SQLite file (WAL: sees every committed write)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def stored_events(db_path: Path, network: str, case: str | None = None) -> list[dict[str, Any]]:
    """Every event envelope of ``network`` (or of one case) the server stores, in feed
    order, from its database (table ``feed``, docs/adr/0006-server-storage.md)."""
    sql = "SELECT envelope FROM feed WHERE network = ? AND kind = 'event'"
    args: tuple[Any, ...] = (network,)
    if case is not None:
        sql += " AND [case] = ?"
        args += (case,)
    return [json.loads(r[0]) for r in _read(db_path, sql + " ORDER BY id", args)]


def stored_feed(db_path: Path, network: str) -> list[dict[str, Any]]:
    """Every feed row of ``network``: {id, kind, case, envelope}, in feed order."""
    rows = _read(db_path, "SELECT id, kind, [case], envelope FROM feed WHERE network = ?"
                          " ORDER BY id", (network,))
    return [{"id": i, "kind": k, "case": c, "envelope": json.loads(e)} for i, k, c, e in rows]


def audit_size(db_path: Path, network: str) -> int:
    rows = _read(db_path, "SELECT COUNT(*) FROM audit_entries WHERE network = ?", (network,))
    return int(rows[0][0])


# =========================================================================== assembly


@dataclass
class TamperedServer:
    """The real server behind the proxy.  ``url`` is what clients connect to."""

    proxy: TamperProxy
    data_dir: Path
    upstream: str
    log_signer: Signer
    #: The real server's context (its store, directory and keys), for tests that run one
    #: of its background passes on the spot (server/witnessing.py ``collect``).
    ctx: Any = None

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def db_path(self) -> Path:
        from schakel.server.config import DATABASE_FILE
        return self.data_dir / DATABASE_FILE

    def fork_audit_log(self, network: str, index: int, partner: str | None = None) -> ForgedLog:
        """Serve a forked log (entry ``index`` replaced, heads re-signed with the real log
        key) to every client, or only to ``partner``."""
        forged = ForgedLog(self.db_path, network, self.log_signer, index)
        forged.install(self.proxy, partner)
        return forged


@contextlib.asynccontextmanager
async def tampered_server(tmp_path: Path, *, limits: Any = None
                          ) -> AsyncIterator[TamperedServer]:
    """Start the proxy on a free loopback port, then the real server (data in
    ``tmp_path/server``, with ``limits`` or the defaults) configured with the proxy's URL as
    its public origin."""
    from aiohttp.test_utils import TestServer

    from schakel.server.app import make_app
    from schakel.server.config import ServerConfig
    from schakel.server.context import AppContext
    from schakel.server.serverkeys import load_or_create
    from tests.client_harness import announced

    proxy = TamperProxy()
    proxy_app = web.Application(client_max_size=4 << 20)
    proxy_app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy_server = TestServer(proxy_app, host="127.0.0.1")
    await proxy_server.start_server()
    proxy.url = str(proxy_server.make_url("")).rstrip("/")

    data_dir = tmp_path / "server"
    keys, _created = load_or_create(data_dir, environ={})
    config = ServerConfig(data_dir=data_dir, public_url=proxy.url,
                          **({"limits": limits} if limits is not None else {}))
    ctx = AppContext.create(config, keys)
    upstream = TestServer(make_app(ctx), host="127.0.0.1")
    await upstream.start_server()
    proxy.upstream = str(upstream.make_url("")).rstrip("/")
    proxy._session = aiohttp.ClientSession(auto_decompress=True)
    try:
        with announced(proxy.url, keys):
            yield TamperedServer(proxy=proxy, data_dir=data_dir, upstream=proxy.upstream,
                                 log_signer=keys.log_signer, ctx=ctx)
    finally:
        await proxy._session.close()
        await proxy_server.close()
        await upstream.close()


__all__ = ["TamperProxy", "TamperedServer", "Exchange", "ForgedLog", "caught_by",
           "tampered_server", "rewrite_audit_entry", "roll_back_head", "stored_events", "stored_feed", "audit_size"]


async def caught_by(proxy: TamperProxy, p: Any, call: Any, what: str) -> Any:
    """``call`` raises ServerMisbehaviour ``what`` after the proxy rewrote an answer, and
    the partner ``p`` recorded it; returns the exception."""
    from schakel.client.errors import ServerMisbehaviour

    try:
        await call
    except ServerMisbehaviour as exc:
        assert proxy.hits() > 0, "the proxy rewrote nothing: the attack never reached p"
        assert exc.what == what, f"caught as {exc.what!r} ({exc.message}), want {what!r}"
        assert what in [m.get("what") for m in p.misbehaviours()], "not recorded"
        return exc
    raise AssertionError(f"no ServerMisbehaviour: the proxy rewrote {proxy.hits()} answer(s) "
                         f"and the client accepted them")
