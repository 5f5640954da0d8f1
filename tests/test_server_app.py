"""The real server application on a real SQLite file (pytest-aiohttp; docs/protocol.md §14).

One network per test, built the way clients build it: a genesis naming the server's keys,
memberships certified by the coordinator, signed requests (schakel.protocol.httpsig) at a fake
clock.  Covered: bootstrap -> members -> case -> events -> sync long-poll -> signals,
receipt and feedback -> duplicate hints; authentication refusals; idempotent writes; the
OpenAPI document against the routes; /metrics and /healthz; the error shape; logs free of
ciphertext, tokens and signatures; a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from schakel.keys import PartnerKeys, issue_membership, make_genesis, new_network_id, revoke_membership
from schakel.protocol import envelopes, httpsig
from schakel.protocol.crypto import BoxSecretKey, CaseKey, EpochKey, MatchKey, random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import CaseHeader, Event, GatedEnvelope, IdentityRecord, event_hash
from schakel.protocol.objects.disclosure import Share
from schakel.protocol.objects.network import (
    CovenantAcceptance, EpochKeyDistribution, EpochKeyPayload, default_policy,
)
from schakel.protocol.objects.signals import Signal, SignalFeedback, SignalStatus
from schakel.server.app import make_app
from schakel.server.config import ServerConfig
from schakel.server.context import AppContext
from schakel.server.openapi import ERROR_STATUS
from schakel.server.serverkeys import ServerKeys
from tests import pg_harness

T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
COVENANT = hashlib.sha256(b"Convenant Buurtnetwerk: wij delen alleen wat nodig is.").digest()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new_id() -> str:
    return b64e(random_bytes(16))


@dataclass
class Party:
    name: str
    ring: str = "core"
    party: str = "formal"
    roles: tuple[str, ...] = ()
    keys: PartnerKeys = field(default_factory=PartnerKeys.generate)

    @property
    def keyid(self) -> str:
        return self.keys.key_id

    @property
    def user(self) -> str:
        return f"{self.name.lower()}-1"


@dataclass
class Net:
    """A registered network and a way to talk to the server as any of its parties."""

    http: Any
    ctx: AppContext
    clock: FakeClock
    network: str
    coordinator: Party
    parties: dict[str, Party]
    serials: dict[str, int] = field(default_factory=dict)
    genesis: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Party:
        return self.parties[name]

    def signed_headers(self, method: str, path: str, body: bytes, who: Party, *,
                       created: int | None = None, nonce: str | None = None) -> dict[str, str]:
        url = self.ctx.config.public_origin + path
        return httpsig.sign_request(
            method, url, {}, body, who.keys.signer,
            created=int(self.clock().timestamp()) if created is None else created,
            nonce=nonce or b64e(random_bytes(16)), acting_user=who.user)

    async def call(self, method: str, path: str, who: Party | None = None, body: Any = None, *,
                   raw: bytes | None = None, headers: dict[str, str] | None = None,
                   **sign: Any) -> tuple[int, Any]:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if body is not None or raw is not None else {}
        if who is not None:
            hdrs.update(self.signed_headers(method, path, data, who, **sign))
        hdrs.update(headers or {})
        response = await self.http.request(method, path, data=data, headers=hdrs)
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text

    def path(self, rest: str = "") -> str:
        return f"/v1/networks/{self.network}{rest}"

    def membership(self, p: Party, *, serial: int | None = None,
                   valid_until: datetime | None = None) -> dict[str, Any]:
        serial = serial or self.serials.get(p.keyid, 0) + 1
        self.serials[p.keyid] = serial
        return issue_membership(self.coordinator.keys, network=self.network, kind="oggz",
                                member=p.keys.public, name=p.name, ring=p.ring, party=p.party,
                                roles=p.roles, serial=serial, valid_from=T0 - timedelta(hours=1),
                                valid_until=valid_until or T0 + timedelta(days=365))

    async def admit(self, p: Party) -> None:
        status, answer = await self.call("POST", self.path("/members"), self.coordinator,
                                         {"membership": self.membership(p)})
        assert status == 201, answer


def parties() -> dict[str, Party]:
    return {p.name: p for p in (
        Party("Regie", roles=("coordinator",)),
        Party("Maatschappelijkwerk", roles=("professional-secrecy", "bemoeizorg")),
        Party("Kerk", party="informal"),
        Party("Woningcorporatie", ring="shell"),
        Party("Privacyofficer", roles=("auditor",)),
    )}


async def start(aiohttp_client: Any, tmp_path: Path, *, clock: FakeClock | None = None,
                keys: ServerKeys | None = None,
                extra: tuple[tuple[str, Any], ...] = ()) -> tuple[Any, AppContext, FakeClock]:
    """The real app on ``tmp_path``; ``extra`` adds (path, handler) GET routes to it."""
    clock = clock or FakeClock(T0)
    config = ServerConfig(data_dir=tmp_path, database_url=pg_harness.database_url_for(tmp_path))
    ctx = AppContext.create(config, keys or ServerKeys.generate(), clock=clock)
    app = make_app(ctx)
    for path, handler in extra:
        app.router.add_get(path, handler)
    return await aiohttp_client(app), ctx, clock


async def bootstrap(aiohttp_client: Any, tmp_path: Path, *, policy: dict[str, Any] | None = None,
                    admit: bool = True, extra: tuple[tuple[str, Any], ...] = ()) -> Net:
    http, ctx, clock = await start(aiohttp_client, tmp_path, extra=extra)
    everyone = parties()
    coordinator = everyone["Regie"]
    network = new_network_id()
    genesis = make_genesis(coordinator.keys, network=network, name="Buurtnetwerk Noord",
                           kind="oggz", created=T0 - timedelta(days=1), server_log=ctx.keys.log,
                           server_gate=ctx.keys.gate, covenant=COVENANT,
                           policy=policy or default_policy("oggz").to_json())
    net = Net(http, ctx, clock, network, coordinator, everyone)
    status, answer = await net.call("POST", "/v1/networks", coordinator, {"genesis": genesis})
    assert (status, answer) == (201, {"network": network})
    net.genesis = genesis
    if admit:
        for p in everyone.values():
            await net.admit(p)
    return net


# --------------------------------------------------------------------------- builders


def header(net: Net, owner: Party, case: str, *, kind: str = "case") -> dict[str, Any]:
    extra: dict[str, Any] = {"identity_version": 1, "classes": ["name", "official"]} \
        if kind == "case" else {}
    return CaseHeader(network=net.network, case=case, owner=owner.keyid, acting_user=owner.user,
                      kind=kind, created=format_timestamp(net.clock()), epoch=1,
                      case_key_version=1, wrapped_case_key=b64e(random_bytes(72)),
                      **extra).sign(owner.keys.signer)


def event(net: Net, author: Party, case: str, seq: int, prev: dict[str, Any] | None, *,
          event_id: str | None = None, status: str | None = None,
          ciphertext: bytes | None = None) -> dict[str, Any]:
    return Event(network=net.network, case=case, event=event_id or new_id(), author=author.keyid,
                 acting_user=author.user, seq=seq, created=format_timestamp(net.clock()),
                 case_key_version=1, ciphertext=b64e(ciphertext or random_bytes(120)),
                 prev=b64e(event_hash(prev)) if prev is not None else None,
                 status=status).sign(author.keys.signer)


def case_body(net: Net, owner: Party, case: str, *, kind: str = "case",
              token: bytes | None = None) -> dict[str, Any]:
    first = event(net, owner, case, 1, None)
    body: dict[str, Any] = {"header": header(net, owner, case, kind=kind),
                            "events": [first, event(net, owner, case, 2, first)]}
    if kind == "case":
        body["identity"] = [IdentityRecord(network=net.network, case=case, class_="name",
                                           version=1, ciphertext=b64e(random_bytes(80))
                                           ).sign(owner.keys.signer)]
        body["gated"] = [GatedEnvelope(network=net.network, case=case, class_="name", version=1,
                                       recipient=p.keyid, blob=b64e(random_bytes(300))).to_json()
                         for p in net.parties.values() if p.ring == "core"]
        body["tokens"] = [{"kind": "bsn", "token": b64e(token or random_bytes(4))}]
    return body


def anonymous_signal(net: Net, *, sealed: bytes | None = None) -> dict[str, Any]:
    return Signal(network=net.network, signal=new_id(), source="anonymous",
                  created=format_timestamp(net.clock()), sealed=b64e(sealed or random_bytes(200)),
                  reply_key=BoxSecretKey.generate().public_key.b64()).to_json()


def shell_signal(net: Net, sender: Party, token: bytes) -> dict[str, Any]:
    return Signal(network=net.network, signal=new_id(), source="shell",
                  created=format_timestamp(net.clock()), sealed=b64e(random_bytes(200)),
                  reply_key=BoxSecretKey.generate().public_key.b64(), acting_user=sender.user,
                  tokens=[{"kind": "bsn", "token": b64e(token)}]).sign(sender.keys.signer)


# --------------------------------------------------------------------------- the flow


async def test_bootstrap_members_case_events_sync_signals_and_hints(
        aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    regie, mw, kerk, shell = net["Regie"], net["Maatschappelijkwerk"], net["Kerk"], net["Woningcorporatie"]

    # the genesis again is the same registration; members list what was admitted
    assert (await net.call("POST", "/v1/networks", regie, {"genesis": net.genesis}))[0] == 200
    status, doc = await net.call("GET", net.path(), kerk)
    assert status == 200 and doc["genesis"] == net.genesis and doc["policies"] == []
    status, members = await net.call("GET", net.path("/members"), shell)
    assert status == 200 and len(members["memberships"]) == 5

    # covenant and epoch keys: core members only, each reads only its own entry
    acceptance = CovenantAcceptance(network=net.network, member=kerk.keyid, covenant=b64e(COVENANT),
                                    acting_user=kerk.user, at=format_timestamp(T0)).sign(kerk.keys.signer)
    assert (await net.call("POST", net.path("/covenant"), kerk, {"acceptance": acceptance}))[0] == 201
    epoch_key, match_key = EpochKey.generate(), MatchKey.generate()
    core = [p for p in net.parties.values() if p.ring == "core"]
    distribution = EpochKeyDistribution(
        network=net.network, epoch=1, created=format_timestamp(T0),
        keys=[EpochKeyPayload.create(network=net.network, epoch=1, recipient=p.keyid,
                                     epoch_key=epoch_key, match_key=match_key
                                     ).seal(p.keys.box_secret.public_key) for p in core]
    ).sign(regie.keys.signer)
    assert (await net.call("POST", net.path("/epochs"), regie, {"distribution": distribution}))[0] == 201
    status, mine = await net.call("GET", net.path("/epochs/mine"), kerk)
    assert status == 200 and [e["epoch"] for e in mine["entries"]] == [1]
    opened = EpochKeyPayload.open(mine["entries"][0]["sealed"], kerk.keys.box_secret,
                                  network=net.network, epoch=1, recipient=kerk.keyid)
    assert opened.epoch_secret() == epoch_key
    status, refused = await net.call("GET", net.path("/epochs/mine"), shell)
    assert (status, refused["error"]["code"]) == (403, "forbidden")

    # a case: created once, identity only for its owner
    case, token = new_id(), random_bytes(4)
    body = case_body(net, mw, case, token=token)
    status, created = await net.call("POST", net.path("/cases"), mw, body)
    assert status == 201 and created["case"] == case
    assert await net.call("POST", net.path("/cases"), mw, body) == (200, created)
    status, own = await net.call("GET", net.path(f"/cases/{case}"), mw)
    assert status == 200 and len(own["events"]) == 2 and len(own["identity"]) == 1
    status, other = await net.call("GET", net.path(f"/cases/{case}"), kerk)
    assert status == 200 and other["identity"] == [] and other["events"] == own["events"]

    # events chain on; a stale prev is a conflict that names the last seq
    third = event(net, kerk, case, 3, own["events"][-1])
    status, appended = await net.call("POST", net.path(f"/cases/{case}/events"), kerk, {"event": third})
    assert status == 201 and appended["seq"] == 3
    fork = event(net, kerk, case, 3, own["events"][-1])
    status, conflict = await net.call("POST", net.path(f"/cases/{case}/events"), kerk, {"event": fork})
    assert (status, conflict["error"]["code"], conflict["error"]["details"]["last_seq"]) == (409, "conflict", 3)

    # sync: the core sees everything in order; the shell nothing until the case is shared
    status, page = await net.call("GET", net.path("/sync?after=0&limit=10"), kerk)
    assert [i["kind"] for i in page["items"]] == ["header", "event", "event", "event"]
    assert page["cursor"] == page["items"][-1]["cursor"]
    status, page = await net.call("GET", net.path("/sync"), shell)
    assert page == {"items": [], "cursor": "0", "head": "0"}
    status, denied = await net.call("GET", net.path(f"/cases/{case}"), shell)
    assert status == 403
    share = Share(network=net.network, case=case, partner=shell.keyid, case_key_version=1,
                  sealed_case_key=envelopes.seal_case_key(
                      shell.keys.box_secret.public_key, CaseKey.generate(), network=net.network,
                      case=case, version=1, recipient_id=shell.keyid),
                  acting_user=regie.user, at=format_timestamp(T0), reason="woonsituatie"
                  ).sign(regie.keys.signer)
    assert (await net.call("POST", net.path("/shares"), regie, {"share": share}))[0] == 201
    status, page = await net.call("GET", net.path("/sync"), shell)
    assert [i["kind"] for i in page["items"]] == ["header", "event", "event", "event", "share"]
    fourth = event(net, shell, case, 4, third)
    assert (await net.call("POST", net.path(f"/cases/{case}/events"), shell, {"event": fourth}))[0] == 201

    # an anonymous signal: a receipt, then the coordinator's signed feedback behind it
    signal = anonymous_signal(net)
    status, receipt = await net.call("POST", net.path("/signals"), None, {"signal": signal})
    assert status == 201 and len(receipt["receipt"]) == 43
    status, first = await net.call("GET", "/v1/signals/status",
                                   headers={"Schakel-Receipt": receipt["receipt"]})
    assert status == 200 and first["status"] == "received" and first["feedback"] == []
    status, listed = await net.call("GET", net.path("/signals"), regie)
    assert [i["signal"] for i in listed["items"]] == [signal]
    feedback = SignalFeedback(network=net.network, signal=signal["signal"], status="taken-up",
                              at=format_timestamp(T0)).sign(regie.keys.signer)
    assert (await net.call("POST", net.path(f"/signals/{signal['signal']}/feedback"), regie,
                           {"feedback": feedback}))[0] == 201
    status, later = await net.call("GET", "/v1/signals/status",
                                   headers={"Schakel-Receipt": receipt["receipt"]})
    verified = SignalStatus.from_json(later).verified_feedback([regie.keys.signer.verify_key],
                                                               network=net.network)
    assert later["status"] == "taken-up" and [f.status for f in verified] == ["taken-up"]
    status, unknown = await net.call("GET", "/v1/signals/status",
                                     headers={"Schakel-Receipt": b64e(random_bytes(32))})
    assert (status, unknown["error"]["code"]) == (404, "not_found")

    # duplicate hints: a second case and a shell signal carry the first case's token
    case2 = new_id()
    assert (await net.call("POST", net.path("/cases"), kerk, case_body(net, kerk, case2, token=token)))[0] == 201
    shell_sig = shell_signal(net, shell, token)
    assert (await net.call("POST", net.path("/signals"), shell, {"signal": shell_sig}))[0] == 201
    status, hints = await net.call("GET", net.path("/hints"), regie)
    assert status == 200
    found = {(h["subject"]["kind"], h["subject"]["id"], h["may_concern"]) for h in hints["items"]}
    assert found == {("case", case2, case), ("signal", shell_sig["signed"]["signal"], case),
                     ("signal", shell_sig["signed"]["signal"], case2)}
    for outsider in (mw, kerk, shell):     # only the coordinator reads hints and signals
        assert (await net.call("GET", net.path("/hints"), outsider))[0] == 403
        assert (await net.call("GET", net.path("/signals"), outsider))[0] == 403


async def test_sync_long_poll_wakes_within_the_wait(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    mw, kerk = net["Maatschappelijkwerk"], net["Kerk"]
    case = new_id()
    status, created = await net.call("POST", net.path("/cases"), mw, case_body(net, mw, case))
    cursor = created["cursor"]

    started = time.monotonic()
    status, empty = await net.call("GET", net.path(f"/sync?after={cursor}&wait=1"), kerk)
    assert empty == {"items": [], "cursor": cursor, "head": cursor} and 0.9 <= time.monotonic() - started < 5

    waiting = asyncio.ensure_future(net.call("GET", net.path(f"/sync?after={cursor}&wait=20"), kerk))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert net.ctx.metrics.registry.get_sample_value("schakel_sync_waiters") == 1
    _, doc = await net.call("GET", net.path(f"/cases/{case}"), mw)
    started = time.monotonic()
    assert (await net.call("POST", net.path(f"/cases/{case}/events"), mw,
                           {"event": event(net, mw, case, 3, doc["events"][-1])}))[0] == 201
    status, page = await asyncio.wait_for(waiting, 5)
    assert status == 200 and [i["kind"] for i in page["items"]] == ["event"]
    assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------- refusals


async def test_authentication_refusals(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    kerk, path = net["Kerk"], net.path("/members")

    async def code(**kw: Any) -> tuple[int, str]:
        status, answer = await net.call("GET", path, **kw)
        return status, answer["error"]["code"] if status >= 400 else "ok"

    assert await code(who=kerk) == (200, "ok")
    assert await code() == (401, "bad_signature")
    nonce = b64e(random_bytes(16))
    assert await code(who=kerk, nonce=nonce) == (200, "ok")
    assert await code(who=kerk, nonce=nonce) == (401, "replayed_request")
    now = int(net.clock().timestamp())
    assert await code(who=kerk, created=now - 301) == (401, "stale_request")
    net.clock.advance(1000)
    assert await code(who=kerk, created=now) == (401, "stale_request")   # signed before start
    assert await code(who=Party("Onbekend")) == (401, "untrusted_key")
    headers = net.signed_headers("GET", path, b"", kerk)
    status, answer = await net.call("GET", path, raw=b"{}", headers=headers)
    assert (status, answer["error"]["code"]) == (400, "digest_mismatch")

    # a revoked member is no longer trusted
    revocation = revoke_membership(net.coordinator.keys, network=net.network, member=kerk.keyid,
                                   serial=1, at=net.clock(), reason="vertrokken")
    assert (await net.call("POST", net.path("/revocations"), net.coordinator,
                           {"revocation": revocation}))[0] == 201
    assert await code(who=kerk) == (403, "untrusted_key")


async def test_members_of_another_network_are_forbidden(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    coordinator2 = Party("Regie2", roles=("coordinator",))
    second = new_network_id()
    genesis = make_genesis(coordinator2.keys, network=second, name="Ander netwerk", kind="oggz",
                           created=T0, server_log=net.ctx.keys.log, server_gate=net.ctx.keys.gate,
                           covenant=COVENANT, policy=default_policy("oggz").to_json())
    assert (await net.call("POST", "/v1/networks", coordinator2, {"genesis": genesis}))[0] == 201
    status, answer = await net.call("GET", f"/v1/networks/{second}/members", net["Kerk"])
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    foreign = dict(genesis)
    status, answer = await net.call("POST", "/v1/networks", net["Kerk"], {"genesis": foreign})
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    other_keys = ServerKeys.generate()
    elsewhere = make_genesis(coordinator2.keys, network=new_network_id(), name="Elders",
                             kind="oggz", created=T0, server_log=other_keys.log,
                             server_gate=other_keys.gate, covenant=COVENANT,
                             policy=default_policy("oggz").to_json())
    status, answer = await net.call("POST", "/v1/networks", coordinator2, {"genesis": elsewhere})
    assert (status, answer["error"]["code"]) == (400, "context_mismatch")


async def test_case_rules(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    mw, kerk, shell = net["Maatschappelijkwerk"], net["Kerk"], net["Woningcorporatie"]

    async def create(who: Party, body: dict[str, Any]) -> tuple[int, str]:
        status, answer = await net.call("POST", net.path("/cases"), who, body)
        return status, answer["error"]["code"] if status >= 400 else "ok"

    consult = new_id()
    with_identity = case_body(net, mw, consult, kind="consult")
    with_identity["tokens"] = [{"kind": "bsn", "token": b64e(random_bytes(4))}]
    assert await create(mw, with_identity) == (403, "policy_violation")
    assert await create(mw, case_body(net, mw, consult, kind="consult")) == (201, "ok")
    assert await create(kerk, case_body(net, mw, new_id())) == (403, "forbidden")   # not its owner
    assert await create(shell, case_body(net, shell, new_id())) == (403, "forbidden")  # shell
    case = new_id()
    body = case_body(net, mw, case)
    assert await create(mw, body) == (201, "ok")
    assert await create(mw, case_body(net, mw, case)) == (409, "conflict")  # same id, new content

    # an event retried is stored once; its id with other content is a conflict
    _, doc = await net.call("GET", net.path(f"/cases/{case}"), mw)
    event_id = new_id()
    third = event(net, mw, case, 3, doc["events"][-1], event_id=event_id)
    first = await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": third})
    again = await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": third})
    assert first[0] == 201 and again == (200, first[1])
    other = event(net, mw, case, 3, doc["events"][-1], event_id=event_id)
    assert (await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": other}))[0] == 409
    # closing: afterwards only an event that reopens the case is taken
    closing = event(net, mw, case, 4, third, status="closed")
    assert (await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": closing}))[0] == 201
    late = event(net, mw, case, 5, closing)
    status, answer = await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": late})
    assert (status, answer["error"]["code"]) == (409, "conflict")
    reopen = event(net, mw, case, 5, closing, status="open")
    assert (await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": reopen}))[0] == 201
    # an event in another partner's name is refused
    forged = event(net, kerk, case, 6, reopen)
    status, answer = await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": forged})
    assert (status, answer["error"]["code"]) == (403, "forbidden")


async def test_anonymous_intake_is_rate_limited_per_address(aiohttp_client: Any, tmp_path: Path) -> None:
    policy = default_policy("oggz").to_json() | {"intake_rate_per_hour": 2}
    net = await bootstrap(aiohttp_client, tmp_path, policy=policy, admit=False)
    statuses = [(await net.call("POST", net.path("/signals"), None,
                                {"signal": anonymous_signal(net)}))[0] for _ in range(3)]
    assert statuses == [201, 201, 429]
    net.clock.advance(1800)                                    # half an hour: one token back
    assert (await net.call("POST", net.path("/signals"), None, {"signal": anonymous_signal(net)}))[0] == 201
    signal = anonymous_signal(net)
    net.clock.advance(3600)
    first = await net.call("POST", net.path("/signals"), None, {"signal": signal})
    retry = await net.call("POST", net.path("/signals"), None, {"signal": signal})
    assert (first[0], retry[0]) == (201, 200) and first[1] != retry[1]   # a fresh receipt
    statuses = [(await net.call("GET", "/v1/signals/status", headers={"Schakel-Receipt": r[1]["receipt"]}))[0]
                for r in (first, retry)]
    assert statuses == [200, 200]


# --------------------------------------------------------------------------- operations


async def test_openapi_documents_every_route_and_error(aiohttp_client: Any, tmp_path: Path) -> None:
    http, ctx, _ = await start(aiohttp_client, tmp_path)
    response = await http.get("/v1/openapi.json")
    doc = await response.json()
    assert response.status == 200 and doc["openapi"] == "3.1.0"
    routes = {(r.method.lower(), r.resource.canonical) for r in http.app.router.routes()}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    server_codes = set()
    for (method, path), op in ((k, doc["paths"][k[1]][k[0]]) for k in documented):
        assert op["summary"] and "Example::" in op["description"], (method, path)
        assert any(s.startswith("2") for s in op["responses"]), (method, path)
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                codes = answer["content"]["application/json"]["schema"]["allOf"][1][
                    "properties"]["error"]["properties"]["code"]["enum"]
                assert all(int(status) in ERROR_STATUS[c] for c in codes)
                server_codes.update(codes)
    assert {"not_found", "forbidden", "conflict", "too_large", "rate_limited",
            "unsupported_media_type", "replayed_request", "internal_error"} <= server_codes


async def test_metrics_healthz_and_server_keys(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    mw = net["Maatschappelijkwerk"]
    await net.call("POST", net.path("/cases"), mw, case_body(net, mw, new_id()))
    assert await net.call("GET", "/healthz") == (200, {"status": "ok"})
    status, keys = await net.call("GET", "/v1/server")
    assert status == 200 and keys == net.ctx.keys.fingerprints()
    assert keys["log"] == net.genesis["signed"]["server"]["log"]
    response = await net.http.get("/metrics")
    text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    assert 'schakel_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "schakel_events_stored_total 2.0" in text
    assert "schakel_sync_waiters 0.0" in text
    assert 'route="/v1/networks/{network}/cases"' in text and net.network not in text


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail /etc/schakel")


async def test_errors_have_one_shape_and_never_leak(aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path, admit=False, extra=(("/broken", broken),))
    regie = net.coordinator

    async def refused(method: str, path: str, **kw: Any) -> tuple[int, str]:
        status, answer = await net.call(method, path, **kw)
        assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message", "details"}
        return status, answer["error"]["code"]

    assert await refused("GET", "/v1/nothing") == (404, "not_found")
    assert await refused("DELETE", "/v1/server") == (405, "method_not_allowed")
    assert await refused("POST", net.path("/members"), who=regie,
                         raw=b"[" * 10 + b"]" * 10) == (400, "malformed")
    assert await refused("POST", net.path("/members"), who=regie,
                         raw=b'{"membership": 1}') == (400, "malformed")
    assert await refused("POST", net.path("/members"), who=regie,
                         raw=b'{"membership": {}, "extra": 1}') == (400, "malformed")
    assert await refused("POST", net.path("/members"), who=regie, raw=b" " * (1 << 20 + 1)) == (413, "too_large")
    assert await refused("POST", net.path("/members"), who=regie, raw=b"{}",
                         headers={"Content-Type": "text/plain"}) == (415, "unsupported_media_type")
    assert await refused("GET", "/v1/networks/not-an-id/members", who=regie) == (400, "malformed")
    assert await refused("GET", net.path("/sync?limit=501"), who=regie) == (400, "malformed")
    assert await refused("GET", net.path("/sync?colour=red"), who=regie) == (400, "malformed")

    with capture_logs() as logs:
        response = await net.http.get("/broken", headers={"X-Request-Id": "trace-42"})
        text = await response.text()
    assert response.status == 500 and "secret" not in text and "Traceback" not in text
    assert json.loads(text)["error"]["code"] == "internal_error"
    assert response.headers["X-Request-Id"] == "trace-42"
    failure = next(e for e in logs if e["event"] == "unhandled error")
    assert failure["request_id"] == "trace-42" and failure["log_level"] == "error"


async def test_logs_hold_no_ciphertext_token_or_signature(aiohttp_client: Any, tmp_path: Path) -> None:
    with capture_logs() as logs:
        net = await bootstrap(aiohttp_client, tmp_path)
        mw = net["Maatschappelijkwerk"]
        case = new_id()
        marker = b"\x8e" * 100                                   # b64 "jo6Ojo6O..."
        first = event(net, mw, case, 1, None, ciphertext=marker)
        body = case_body(net, mw, case)
        body["events"] = [first]
        status, _ = await net.call("POST", net.path("/cases"), mw, body)
        assert status == 201
        second = event(net, mw, case, 2, first, ciphertext=marker)
        assert (await net.call("POST", net.path(f"/cases/{case}/events"), mw, {"event": second}))[0] == 201
        assert (await net.call("GET", net.path(f"/cases/{case}"), mw))[0] == 200
        status, receipt = await net.call("POST", net.path("/signals"), None,
                                         {"signal": anonymous_signal(net, sealed=marker)})
        await net.call("GET", "/v1/signals/status", headers={"Schakel-Receipt": receipt["receipt"]})
    lines = [json.dumps(entry, default=str) for entry in logs]
    access = [e for e in logs if e["event"] == "request"]
    assert len(access) >= 9 and all(e["request_id"] for e in access)
    assert any(e["key_id"] == mw.keyid and e["acting_user"] == mw.user for e in access)
    secrets = [b64e(marker)[:40], receipt["receipt"], first["signatures"][0]["sig"],
               body["header"]["signed"]["wrapped_case_key"], case]
    for secret in secrets:
        assert not any(secret in line for line in lines)


async def test_restart_keeps_data_and_refuses_requests_signed_before_it(
        aiohttp_client: Any, tmp_path: Path) -> None:
    net = await bootstrap(aiohttp_client, tmp_path)
    kerk = net["Kerk"]
    case = new_id()
    assert (await net.call("POST", net.path("/cases"), kerk, case_body(net, kerk, case)))[0] == 201
    before = net.signed_headers("GET", net.path(f"/cases/{case}"), b"", kerk)
    await net.http.close()
    net.clock.advance(5)
    http, ctx, _ = await start(aiohttp_client, tmp_path, clock=net.clock, keys=net.ctx.keys)
    net.http, net.ctx = http, ctx
    status, doc = await net.call("GET", net.path(f"/cases/{case}"), kerk)
    assert status == 200 and len(doc["events"]) == 2
    status, answer = await net.call("GET", net.path(f"/cases/{case}"), headers=before)
    assert (status, answer["error"]["code"]) == (401, "stale_request")
