"""In-process client <-> server harness for the HTTP API (docs/protocol.md §14).

Like h11's connection pairs and python-tuf's ``RepositorySimulator``: the tests drive
the *real* application (``schakel.server.app.make_app``) on a real SQLite file in a temporary
directory (or, in a ``[postgresql]`` run of a file, a database of its own in a throw-away
PostgreSQL cluster: tests/pg_harness.py, tests/conftest.py), with real keys and real protocol objects, and sign every request with
``schakel.protocol.httpsig.sign_request`` exactly as a partner's client would.  Nothing is
mocked; the only thing the harness controls is the server's clock (:class:`FakeClock`).

Three layers:

* **Objects** -- :class:`Network` builds everything a network needs with real keys:
  the genesis (carrying the server's real log and gate keys from ``GET /v1/server``),
  memberships, revocations, covenant acceptances, epoch-key distributions, cases
  (header, encrypted events, sealed identity, gated envelopes, blind-index tokens),
  consults, shares, signals (shell and anonymous) and feedback.  It keeps each case's
  event chain so the next event links to the last accepted one.
* **Requests** -- :class:`Caller` prepares a signed request (:class:`Prepared`: fresh
  nonce, ``created`` from the clock, the actor's acting user) and sends it through a
  :class:`Transport`: an aiohttp ``TestClient`` (in-process) or a ``ClientSession``
  (a ``schakel serve`` subprocess).  A prepared request can be sent twice (replay);
  :meth:`Caller.prepare` also makes a stale ``created`` and a wrong ``Content-Digest``.
* **Worlds** -- :func:`build_world` bootstraps over HTTP the standard cast that the
  authorization matrix and the attack tests use: network A (coordinator, core formal,
  core informal, two shell partners -- one with a share of the main case -- and an
  auditor), network B with a member of its own (the "other network"), and an unknown
  key; a case with events, identity, gated envelopes and tokens; a consult; a shell
  signal and an anonymous signal with their receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from multidict import CIMultiDict

from schakel.keys import PartnerKeys, issue_membership, make_genesis, new_network_id, revoke_membership
from schakel.protocol import envelopes, schema
from schakel.protocol.crypto import (
    BoxPublicKey, BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey, VerifyKey, random_bytes,
)
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError
from schakel.protocol.httpsig import DEFAULT_MAX_SKEW, sign_request
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import (
    AudienceKey, CaseHeader, CaseRekey, Event, GatedEnvelope, IdentityRecord, event_hash,
)
from schakel.protocol.objects.disclosure import Share
from schakel.protocol.objects.network import (
    CovenantAcceptance, EpochKeyDistribution, EpochKeyPayload, default_policy,
)
from schakel.protocol.objects.signals import Signal, SignalContent, SignalFeedback
from tests import pg_harness

#: The public origin the in-process server is configured with; requests are signed for it
#: (docs/protocol.md §14, Authentication step 1: the server's own origin, not the Host header).
ORIGIN = "http://schakel.test"
#: Seconds beyond the skew window: a ``created`` this far off is stale (protocol.md §14: ±300 s).
STALE_BY = DEFAULT_MAX_SKEW + 1
JSON_TYPE = "application/json"
COVENANT_TEXT = "Convenant Buurtnetwerk Soesterkwartier: wij delen alleen wat nodig is."


def ts(moment: datetime) -> str:
    """A wire timestamp (RFC 3339, UTC, whole seconds)."""
    return format_timestamp(moment)


def new_id() -> str:
    """A fresh object id: 16 random bytes, base64url."""
    return b64e(random_bytes(16))


def new_nonce() -> str:
    return b64e(random_bytes(16))


# =========================================================================== clock


class FakeClock:
    """The server's clock in tests.  Starts at the real current second (so that a
    server part that reads the wall clock by mistake is still roughly consistent)
    and moves only when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        self._now = start.replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def __call__(self) -> datetime:
        return self._now

    def unix(self) -> int:
        return int(self._now.timestamp())

    def time(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class RealClock:
    """The wall clock, for a ``schakel serve`` subprocess."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now()

    def unix(self) -> int:
        return int(time.time())

    def time(self) -> float:
        return time.time()


Clock = FakeClock | RealClock


# =========================================================================== actors


@dataclass
class Actor:
    """A partner (or a stranger) with real keys.  ``ring`` is None for a key that holds
    no membership (the unknown key, a coordinator before its genesis is registered)."""

    label: str
    keys: PartnerKeys
    name: str
    acting_user: str
    ring: str | None = None
    party: str = "formal"
    roles: tuple[str, ...] = ()
    serial: int = 1
    #: The membership's ``on_behalf_of`` and ``users`` (protocol.md §N.4); none by default.
    on_behalf_of: tuple[str, ...] = ()
    users: dict[str, str] | None = None

    @classmethod
    def fresh(cls, label: str, *, ring: str | None = None, party: str = "formal",
              roles: Iterable[str] = (), name: str | None = None) -> "Actor":
        return cls(label=label, keys=PartnerKeys.generate(), name=name or f"Partner {label}",
                   acting_user=f"{label[:20]}-user-1", ring=ring, party=party,
                   roles=tuple(sorted(roles)))

    @property
    def key_id(self) -> str:
        return self.keys.key_id

    @property
    def signer(self) -> Any:
        return self.keys.signer

    @property
    def box(self) -> BoxPublicKey:
        return self.keys.box_secret.public_key

    def __repr__(self) -> str:
        return f"Actor({self.label})"


# =========================================================================== objects


@dataclass(frozen=True)
class ServerKeys:
    """What ``GET /v1/server`` answers, typed."""

    log: VerifyKey
    gate: BoxPublicKey
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "ServerKeys":
        return cls(log=VerifyKey.from_b64(value["log"], "log"),
                   gate=BoxPublicKey.from_b64(value["gate"], "gate"), raw=dict(value))


@dataclass
class CaseState:
    """What the owner's client knows about one case: its keys and the accepted chain."""

    network: str
    case: str
    owner: Actor
    kind: str
    header: dict[str, Any]
    case_key: CaseKey
    class_keys: dict[str, ClassKey]
    identity: list[dict[str, Any]]
    gated: list[dict[str, Any]]
    tokens: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    #: Every case key version the owner holds (``case_key`` is the current one).
    case_keys: dict[int, CaseKey] = field(default_factory=dict)
    case_key_version: int = 1
    #: Accepted ``case-rekey`` envelopes, in version order.
    rekeys: list[dict[str, Any]] = field(default_factory=list)
    #: New keys of rekeys built but not yet acknowledged, by version.
    pending_keys: dict[int, CaseKey] = field(default_factory=dict)
    #: The identity version of ``header`` (``class_keys`` are its keys), and the class keys
    #: of replacement headers built but not yet acknowledged, by version.
    identity_version: int = 1
    pending_class_keys: dict[int, dict[str, ClassKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.case_keys.setdefault(self.case_key_version, self.case_key)

    @property
    def last_seq(self) -> int:
        return len(self.events)

    def commit_rekey(self, envelope: dict[str, Any]) -> None:
        """Record a rekey the server acknowledged: its key becomes the current one."""
        version = envelope["signed"]["case_key_version"]
        assert version == self.case_key_version + 1, "harness key versions out of step"
        self.case_key = self.case_keys[version] = self.pending_keys.pop(version)
        self.case_key_version = version
        self.rekeys.append(envelope)

    def commit_replacement(self, body: dict[str, Any]) -> None:
        """Record a replacement header the server acknowledged (``POST .../header``)."""
        version = body["header"]["signed"]["identity_version"]
        assert version == self.identity_version + 1, "harness identity versions out of step"
        self.class_keys = self.pending_class_keys.pop(version)
        self.identity_version, self.header = version, body["header"]
        self.identity, self.gated = body["identity"], body.get("gated", [])

    def commit(self, envelope: dict[str, Any]) -> None:
        """Record an event the server acknowledged as the new end of the chain."""
        assert envelope["signed"]["seq"] == self.last_seq + 1, "harness chain out of step"
        self.events.append(envelope)
        if envelope["signed"].get("status") == "closed":
            self.closed = True


@dataclass
class SignalDraft:
    """A signal as sent, with the signaller's one-time reply key and, once sent, the receipt."""

    network: str
    signal: str
    body: dict[str, Any]
    reply_secret: BoxSecretKey
    source: str
    receipt: str | None = None


INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
          "domains": ["loneliness", "self-care"], "severity": "medium",
          "care_status": "avoids-care", "source": "partner", "complex": False,
          "summary": "Woont alleen, komt de deur nauwelijks uit."}
IDENTITY = {"name": {"given_names": "Hendrik", "family_name": "de Vries"},
            "address": {"street": "Soesterweg", "house_number": "12", "postcode": "3812 AB",
                        "city": "Amersfoort"},
            "official": {"bsn": "111222333", "date_of_birth": "1946-05-04"}}


def network_policy(kind: str = "neighbourhood", **overrides: Any) -> dict[str, Any]:
    """The default policy of ``kind`` with a cheap blind index (so tests compute real
    Argon2id tokens in milliseconds) and the given overrides."""
    policy = default_policy(kind).to_json()
    policy["blind_index"] = {"opslimit": 1, "memlimit": 8192, "token_bytes": 4}
    policy.update(overrides)
    return policy


class Network:
    """Builds one network's objects with real keys and remembers its state.

    Nothing here talks HTTP: the builders return envelopes and request bodies; the
    caller sends them and tells the network what the server accepted (``commit``).
    """

    def __init__(self, server: ServerKeys, clock: Clock, *, kind: str = "neighbourhood",
                 name: str = "Buurtnetwerk Soesterkwartier", policy: dict[str, Any] | None = None,
                 coordinator: Actor | None = None, network: str | None = None,
                 covenant: str = COVENANT_TEXT) -> None:
        self.server, self.clock, self.kind = server, clock, kind
        self.id = network or new_network_id()
        self.policy = policy or network_policy(kind)
        self.covenant = hashlib.sha256(covenant.encode()).digest()
        self.coordinator = coordinator or Actor.fresh("coordinator", ring="core",
                                                      roles=("coordinator",),
                                                      name="Welzijn Amersfoort (regie)")
        self.coordinator.ring, self.coordinator.party = "core", "formal"
        self.coordinator.roles = tuple(sorted(set(self.coordinator.roles) | {"coordinator"}))
        self.members: dict[str, Actor] = {}
        self.epoch = 0
        self.epoch_keys: dict[int, tuple[EpochKey, MatchKey]] = {}
        self.distributions: dict[int, dict[str, Any]] = {}
        self.cases: dict[str, CaseState] = {}
        self.genesis = make_genesis(
            self.coordinator.keys, network=self.id, name=name, kind=kind, created=self.now(),
            server_log=server.log, server_gate=server.gate, covenant=self.covenant,
            policy=self.policy)

    # --------------------------------------------------------------------- time

    def now(self) -> datetime:
        return self.clock.now()

    def stamp(self) -> str:
        return ts(self.now())

    # --------------------------------------------------------------------- membership

    def actor(self, label: str, *, ring: str, party: str = "formal",
              roles: Iterable[str] = ()) -> Actor:
        """A new partner of this network (not yet certified: see :meth:`membership`)."""
        return Actor.fresh(label, ring=ring, party=party, roles=roles)

    def membership(self, actor: Actor, *, days: int = 365) -> dict[str, Any]:
        """The coordinator certifies ``actor`` (ring, party, roles, serial)."""
        assert actor.ring is not None
        return issue_membership(
            self.coordinator.keys, network=self.id, kind=self.kind, member=actor.keys.public,
            name=actor.name, ring=actor.ring, party=actor.party, roles=actor.roles,
            serial=actor.serial, valid_from=self.now() - timedelta(minutes=5),
            valid_until=self.now() + timedelta(days=days), on_behalf_of=actor.on_behalf_of,
            users=actor.users)

    def revocation(self, actor: Actor, *, reason: str = "left the network") -> dict[str, Any]:
        return revoke_membership(self.coordinator.keys, network=self.id, member=actor.key_id,
                                 serial=actor.serial, at=self.now(), reason=reason)

    def acceptance(self, actor: Actor, *, covenant: bytes | None = None) -> dict[str, Any]:
        return CovenantAcceptance(network=self.id, member=actor.key_id,
                                  covenant=b64e(covenant if covenant is not None else self.covenant),
                                  acting_user=actor.acting_user, at=self.stamp()).sign(actor.signer)

    def core(self) -> list[Actor]:
        return [a for a in [self.coordinator, *self.members.values()] if a.ring == "core"]

    # --------------------------------------------------------------------- epochs

    def distribution(self, epoch: int | None = None, recipients: Iterable[Actor] | None = None,
                     ) -> dict[str, Any]:
        """An epoch-key distribution sealed to ``recipients`` (default: the core).  The
        keys are remembered under ``epoch`` (default: the next epoch); call
        :meth:`commit_epoch` when the server accepted it."""
        epoch = epoch or self.epoch + 1
        if epoch not in self.epoch_keys:
            self.epoch_keys[epoch] = (EpochKey.generate(), MatchKey.generate())
        epoch_key, match_key = self.epoch_keys[epoch]
        sealed = [EpochKeyPayload.create(network=self.id, epoch=epoch, recipient=a.key_id,
                                         epoch_key=epoch_key, match_key=match_key).seal(a.box)
                  for a in (self.core() if recipients is None else recipients)]
        envelope = EpochKeyDistribution(network=self.id, epoch=epoch, created=self.stamp(),
                                        keys=sealed).sign(self.coordinator.signer)
        self.distributions[epoch] = envelope
        return envelope

    def commit_epoch(self, envelope: Mapping[str, Any]) -> None:
        self.epoch = max(self.epoch, envelope["signed"]["epoch"])

    @property
    def match_key(self) -> MatchKey:
        return self.epoch_keys[self.epoch][1]

    # --------------------------------------------------------------------- cases

    def token(self, kind: str, value: str) -> dict[str, Any]:
        """A real blind-index token (Argon2id with the policy's cost, truncated)."""
        bi = self.policy["blind_index"]
        normalised = envelopes.normalise_bsn(value) if kind == "bsn" else value
        raw = envelopes.blind_index(self.match_key, kind, normalised,  # type: ignore[arg-type]
                                    opslimit=bi["opslimit"], memlimit=bi["memlimit"],
                                    size=bi["token_bytes"])
        return {"kind": kind, "token": b64e(raw)}

    def new_case(self, owner: Actor, *, kind: str = "case",
                 identity: Mapping[str, Any] | None = None, recipients: Iterable[Actor] | None = None,
                 tokens: list[dict[str, Any]] | None = None, events: int = 1,
                 case: str | None = None, audience: Iterable[Actor] | None = None
                 ) -> tuple[dict[str, Any], CaseState]:
        """The body of ``POST /v1/networks/{network}/cases`` and the owner's state.
        With ``audience``, a subset case (protocol.md §C.1 "Audience") read by those
        actors, the owner and the coordinator, its key sealed to each of them and its
        gated envelopes for them only.

        A case gets sealed identity (default :data:`IDENTITY`), gated envelopes of every
        class key for every core member (or ``recipients``) and a BSN token; a consult
        gets none of them (pass ``identity``/``tokens`` explicitly to build a forbidden
        consult).  The returned state already holds the first ``events`` events; they
        count as accepted once the server acknowledged the creation."""
        assert self.epoch >= 1, "distribute an epoch key first"
        case = case or new_id()
        case_key = CaseKey.generate()
        epoch_key = self.epoch_keys[self.epoch][0]
        if identity is None:
            identity = IDENTITY if kind == "case" else {}
        classes = sorted(identity)
        header_fields: dict[str, Any] = dict(
            network=self.id, case=case, owner=owner.key_id, acting_user=owner.acting_user,
            kind=kind, created=self.stamp(), epoch=self.epoch, case_key_version=1)
        readers: list[Actor] | None = None
        if audience is None:
            header_fields["wrapped_case_key"] = envelopes.wrap_case_key(
                epoch_key, case_key, network=self.id, case=case, epoch=self.epoch, version=1)
        else:
            by_id = {a.key_id: a for a in (owner, self.coordinator, *audience)}
            readers = [by_id[k] for k in sorted(by_id)]
            header_fields["audience"] = tuple(sorted(by_id))
            header_fields["audience_keys"] = tuple(AudienceKey(
                member=a.key_id, version=1, sealed=envelopes.seal_case_key(
                    a.box, case_key, network=self.id, case=case, version=1,
                    recipient_id=a.key_id)) for a in readers)
            if recipients is None:
                recipients = readers
        if kind == "case":
            header_fields["identity_version"] = 1
            if classes:
                header_fields["classes"] = classes
        header = CaseHeader(**header_fields).sign(owner.signer)
        class_keys = {cls: ClassKey.generate() for cls in classes}
        identity_records = [
            IdentityRecord(network=self.id, case=case, class_=cls, version=1,
                           ciphertext=envelopes.encrypt_json(
                               class_keys[cls], identity[cls],
                               envelopes.identity_context(self.id, case, cls, version=1))
                           ).sign(owner.signer)
            for cls in classes]
        gated = [
            GatedEnvelope(network=self.id, case=case, class_=cls, version=1, recipient=m.key_id,
                          blob=envelopes.make_gated(
                              self.server.gate, m.box, class_keys[cls],
                              envelopes.GateContext(network=self.id, case=case, cls=cls,
                                                    version=1, recipient=m.key_id))).to_json()
            for m in (self.core() if recipients is None else recipients) for cls in classes]
        if tokens is None:
            tokens = [self.token("bsn", IDENTITY["official"]["bsn"])] if kind == "case" else []
        state = CaseState(network=self.id, case=case, owner=owner, kind=kind, header=header,
                          case_key=case_key, class_keys=class_keys, identity=identity_records,
                          gated=gated, tokens=list(tokens))
        first = []
        for _ in range(events):
            ev = self.event(state, owner, _pending=first)
            first.append(ev)
        state.events = first
        body: dict[str, Any] = {"header": header, "events": first, "identity": identity_records,
                                "gated": gated, "tokens": list(tokens)}
        return body, state

    def event(self, state: CaseState, author: Actor, *, status: str | None = None,
              seq: int | None = None, prev: str | None | bool = True, event: str | None = None,
              plaintext: Mapping[str, Any] | None = None, signer: Actor | None = None,
              case_key_version: int | None = None,
              _pending: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The next event of ``state`` by ``author`` (linked to the last accepted event),
        under the case's current key version.  ``seq``/``prev``/``signer`` override the
        honest values to build broken chains and forged authors (``prev=True``: the
        honest link); ``case_key_version`` encrypts under an older key the state holds."""
        chain = state.events if _pending is None else _pending
        seq = seq if seq is not None else len(chain) + 1
        if prev is True:  # the honest link: the hash of the event before this one
            if seq == 1:
                prev = None
            elif len(chain) >= seq - 1:
                prev = b64e(event_hash(chain[seq - 2]))
            else:
                prev = b64e(random_bytes(32))
        event = event or new_id()
        if plaintext is None:
            plaintext = INTAKE if seq == 1 else (
                {"kind": "status", "status": status, "reason": "afgerond"} if status
                else {"kind": "note", "text": f"Overleg {seq}: huisbezoek gepland."})
        version = case_key_version or state.case_key_version
        ciphertext = envelopes.encrypt_json(
            state.case_keys[version], dict(plaintext),
            envelopes.event_context(self.id, state.case, event, version=version))
        fields: dict[str, Any] = dict(network=self.id, case=state.case, event=event,
                                      author=author.key_id, acting_user=author.acting_user,
                                      seq=seq, created=self.stamp(), case_key_version=version,
                                      ciphertext=ciphertext)
        if prev:
            fields["prev"] = prev
        if status:
            fields["status"] = status
        return Event(**fields).sign((signer or author).signer)

    def share(self, state: CaseState, partner: Actor, *, version: int | None = None,
              key: CaseKey | None = None) -> dict[str, Any]:
        """The coordinator's share of ``state``'s case key ``version`` (default: the
        current one) with ``partner``; ``key`` seals another key under that version."""
        version = version or state.case_key_version
        key = key or state.case_keys.get(version) or CaseKey.generate()
        sealed = envelopes.seal_case_key(partner.box, key, network=self.id,
                                         case=state.case, version=version,
                                         recipient_id=partner.key_id)
        return Share(network=self.id, case=state.case, partner=partner.key_id,
                     case_key_version=version, sealed_case_key=sealed,
                     acting_user=self.coordinator.acting_user, at=self.stamp(),
                     reason="vraagt hulp bij de administratie").sign(self.coordinator.signer)

    def rekey(self, state: CaseState, *, signer: Actor | None = None, version: int | None = None,
              epoch: int | None = None, reason: str = "member removed") -> dict[str, Any]:
        """A ``case-rekey`` of ``state`` (ADR 0007): a fresh case key, version current + 1
        (or ``version``), wrapped under the key of ``epoch`` (default: the network's latest
        committed epoch), signed by ``signer`` (default: the owner).  The new key is held
        as pending until :meth:`CaseState.commit_rekey`."""
        version = version or state.case_key_version + 1
        epoch = epoch or self.epoch
        if epoch not in self.epoch_keys:
            self.epoch_keys[epoch] = (EpochKey.generate(), MatchKey.generate())
        key = state.pending_keys.setdefault(version, CaseKey.generate())
        signer = signer or state.owner
        return CaseRekey(network=self.id, case=state.case, case_key_version=version, epoch=epoch,
                         wrapped_case_key=envelopes.wrap_case_key(
                             self.epoch_keys[epoch][0], key, network=self.id, case=state.case,
                             epoch=epoch, version=version),
                         acting_user=signer.acting_user, at=self.stamp(),
                         reason=reason).sign(signer.signer)

    def gated(self, state: CaseState, recipients: Iterable[Actor],
              classes: Iterable[str] | None = None, *, version: int | None = None,
              keys: Mapping[str, ClassKey] | None = None) -> list[dict[str, Any]]:
        """Gated envelopes of ``state``'s class keys (all classes, or ``classes``; or
        ``keys``) for ``recipients``: what an owner backfills for members who joined
        later.  ``version`` defaults to the state's identity version."""
        version = version or state.identity_version
        keys = state.class_keys if keys is None else keys
        return [GatedEnvelope(network=self.id, case=state.case, class_=cls, version=version,
                              recipient=m.key_id,
                              blob=envelopes.make_gated(
                                  self.server.gate, m.box, keys[cls],
                                  envelopes.GateContext(network=self.id, case=state.case,
                                                        cls=cls, version=version,
                                                        recipient=m.key_id))).to_json()
                for m in recipients for cls in (sorted(keys) if classes is None
                                                else classes)]

    def replacement(self, state: CaseState, *, recipients: Iterable[Actor] = (),
                    identity: Mapping[str, Any] | None = None, version: int | None = None,
                    signer: Actor | None = None, **header: Any) -> dict[str, Any]:
        """The body of ``POST .../cases/{case}/header`` (ADR 0011): the owner's header with
        the next identity version (or ``version``; ``header`` overrides other fields),
        ``identity`` (default :data:`IDENTITY`, by the state's classes) sealed under new
        class keys -- held as pending until :meth:`CaseState.commit_replacement` -- and
        gated envelopes of them for ``recipients``; signed by ``signer`` (the owner)."""
        version = version or state.identity_version + 1
        signer = signer or state.owner
        identity = identity or {cls: IDENTITY[cls] for cls in state.class_keys}
        keys = state.pending_class_keys.setdefault(
            version, {cls: ClassKey.generate() for cls in identity})
        fields = {k: v for k, v in state.header["signed"].items() if k != "type"}
        fields.update(identity_version=version, classes=sorted(identity), **header)
        records = [IdentityRecord(network=self.id, case=state.case, class_=cls, version=version,
                                  ciphertext=envelopes.encrypt_json(
                                      keys[cls], identity[cls],
                                      envelopes.identity_context(self.id, state.case, cls,
                                                                 version=version))
                                  ).sign(signer.signer)
                   for cls in sorted(identity)]
        return {"header": CaseHeader(**fields).sign(signer.signer), "identity": records,
                "gated": self.gated(state, recipients, version=version, keys=keys)}

    # --------------------------------------------------------------------- signals

    def signal(self, sender: Actor | None = None, *, tokens: list[dict[str, Any]] | None = None,
               signal: str | None = None, concern: str = "Buurman wordt al weken niet gezien.",
               ) -> SignalDraft:
        """A signal sealed to the coordinator: signed by ``sender`` (source shell) or bare
        (``sender=None``: source anonymous).  The body is ``{"signal": ...}``."""
        signal = signal or new_id()
        reply = BoxSecretKey.generate()
        content = SignalContent(network=self.id, signal=signal, reply_key=reply.public_key.b64(),
                                signaller_kind="shell-partner" if sender else "neighbour",
                                concern=concern, urgency="medium", contact_back=True)
        sealed = b64e(self.coordinator.box.seal(content.plaintext()))
        fields: dict[str, Any] = dict(network=self.id, signal=signal,
                                      source="shell" if sender else "anonymous",
                                      created=self.stamp(), sealed=sealed,
                                      reply_key=reply.public_key.b64())
        if tokens:
            fields["tokens"] = tokens
        if sender is not None:
            fields["acting_user"] = sender.acting_user
            value: dict[str, Any] = Signal(**fields).sign(sender.signer)
        else:
            value = Signal(**fields).to_json()
        return SignalDraft(network=self.id, signal=signal, body={"signal": value},
                           reply_secret=reply, source=fields["source"])

    def feedback(self, draft: SignalDraft, status: str = "taken-up",
                 message: str | None = "We gaan langs.") -> dict[str, Any]:
        fields: dict[str, Any] = dict(network=self.id, signal=draft.signal, status=status,
                                      at=self.stamp())
        if message is not None:
            fields["message"] = b64e(draft.reply_secret.public_key.seal(message.encode()))
        return SignalFeedback(**fields).sign(self.coordinator.signer)

    def card(self) -> dict[str, Any]:
        """The coordinator's network card (docs/protocol.md §N.11), each one with the next
        serial, so every card built is newer than the last one sent."""
        from schakel.keys import fingerprint
        from schakel.keys.card import issue_card
        from schakel.keys.chain import verify_genesis

        self.card_serial = getattr(self, "card_serial", 0) + 1
        return issue_card(self.coordinator.keys,
                          verify_genesis(self.genesis, fingerprint(self.coordinator.keys.public.sign)),
                          origin="http://127.0.0.1:8470", serial=self.card_serial,
                          issued=self.now(), valid_until=self.now() + timedelta(days=30),
                          signaller_kinds=("resident", "neighbour"))

    # --------------------------------------------------------------------- paths

    def path(self, suffix: str = "") -> str:
        return f"/v1/networks/{self.id}{suffix}"


# =========================================================================== HTTP


@dataclass(frozen=True)
class Prepared:
    """One HTTP request exactly as it goes on the wire (send it twice to replay it)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    raw: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def code(self) -> str | None:
        """The error code of a JSON error answer, else None."""
        try:
            value = json.loads(self.raw)
        except ValueError:
            return None
        if isinstance(value, dict) and isinstance(value.get("error"), dict):
            code = value["error"].get("code")
            return code if isinstance(code, str) else None
        return None

    def __repr__(self) -> str:
        text = self.raw[:300].decode("utf-8", "replace")
        return f"Reply({self.status}, {text!r})"


class Transport(Protocol):
    async def __call__(self, prepared: Prepared, *, timeout: float) -> Reply: ...


class TestClientTransport:
    """Sends through an aiohttp ``TestClient`` (in-process server)."""

    __test__ = False

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __call__(self, prepared: Prepared, *, timeout: float) -> Reply:
        import aiohttp
        async with self.client.request(
                prepared.method, prepared.path, data=prepared.body or None,
                headers=list(prepared.headers), allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await resp.read()
            return Reply(resp.status, CIMultiDict(resp.headers), raw)


class SessionTransport:
    """Sends through a real ``aiohttp.ClientSession`` to ``base`` (a subprocess server)."""

    def __init__(self, session: Any, base: str) -> None:
        self.session, self.base = session, base.rstrip("/")

    async def __call__(self, prepared: Prepared, *, timeout: float) -> Reply:
        import aiohttp
        from yarl import URL
        url = URL(self.base + prepared.path, encoded=True)
        async with self.session.request(
                prepared.method, url, data=prepared.body or None, headers=list(prepared.headers),
                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await resp.read()
            return Reply(resp.status, CIMultiDict(resp.headers), raw)


#: "No body given" (``json=None`` sends the JSON ``null``).
MISSING: Any = object()


class Caller:
    """Signs and sends requests as an :class:`Actor` (docs/protocol.md §14, Authentication).

    ``origin`` is the server's public origin, which is what the server verifies the
    signature's target URI against; ``clock`` gives ``created``.
    """

    def __init__(self, transport: Transport, origin: str, clock: Clock, *,
                 timeout: float = 15.0) -> None:
        self.transport, self.origin, self.clock, self.timeout = transport, origin, clock, timeout

    def prepare(self, method: str, path: str, actor: Actor | None = None, *, json: Any = MISSING,
                body: bytes | None = None, content_type: str | None = JSON_TYPE,
                created: int | None = None, nonce: str | None = None,
                digest_of: bytes | None = None, acting_user: str | None = None,
                headers: Iterable[tuple[str, str]] = ()) -> Prepared:
        """A request to ``path`` (raw path and query), signed by ``actor`` unless None.

        ``json`` is serialised compactly; ``body`` gives raw bytes instead.  Attacks:
        ``created`` (e.g. ``clock.unix() - STALE_BY``), ``digest_of`` (sign a
        ``Content-Digest`` of other bytes than the body sent), ``nonce`` (reuse one).
        """
        if json is not MISSING:
            body = _dumps(json)
        body = body or b""
        extra = list(headers)
        if content_type and (body or method in ("POST", "PUT", "PATCH")) and not any(
                k.lower() == "content-type" for k, _ in extra):
            extra.append(("Content-Type", content_type))
        if actor is not None:
            # digest_of: sign over a Content-Digest of other bytes than the body sent,
            # so the signature verifies and the digest does not (protocol.md §14 step 7).
            signed = sign_request(method, self.origin + path, extra,
                                  body if digest_of is None else digest_of, actor.signer,
                                  created=self.clock.unix() if created is None else created,
                                  nonce=nonce or new_nonce(),
                                  acting_user=acting_user or actor.acting_user)
            extra += list(signed.items())
        return Prepared(method, path, tuple(extra), body)

    async def send(self, prepared: Prepared, *, timeout: float | None = None) -> Reply:
        return await self.transport(prepared, timeout=timeout or self.timeout)

    async def __call__(self, method: str, path: str, actor: Actor | None = None, *,
                       timeout: float | None = None, **kwargs: Any) -> Reply:
        return await self.send(self.prepare(method, path, actor, **kwargs), timeout=timeout)

    async def get(self, path: str, actor: Actor | None = None, **kwargs: Any) -> Reply:
        return await self("GET", path, actor, **kwargs)

    async def post(self, path: str, actor: Actor | None, json: Any, **kwargs: Any) -> Reply:
        return await self("POST", path, actor, json=json, **kwargs)

    # the three classic request attacks ------------------------------------------

    async def replayed(self, method: str, path: str, actor: Actor, **kwargs: Any
                       ) -> tuple[Reply, Reply]:
        """Send one signed request twice, byte for byte: (first answer, replay answer)."""
        prepared = self.prepare(method, path, actor, **kwargs)
        return await self.send(prepared), await self.send(prepared)

    def stale(self, method: str, path: str, actor: Actor, *, by: int = STALE_BY,
              **kwargs: Any) -> Prepared:
        """A request whose ``created`` is ``by`` seconds in the past."""
        return self.prepare(method, path, actor, created=self.clock.unix() - by, **kwargs)

    def wrong_digest(self, method: str, path: str, actor: Actor, **kwargs: Any) -> Prepared:
        """A request whose signed ``Content-Digest`` is of other bytes than its body."""
        json_value, body = kwargs.pop("json", MISSING), kwargs.pop("body", None) or b""
        if json_value is not MISSING:
            body = _dumps(json_value)
        return self.prepare(method, path, actor, body=body, digest_of=body + b" ", **kwargs)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# =========================================================================== checks


def error_shape_problems(reply: Reply) -> list[str]:
    """What is wrong with ``reply`` as a design §6 error answer (empty list: nothing): a
    JSON body valid against ``protocol/schemas/error.json`` (code, message of at most 500
    characters, bounded details), served as application/json, with no stack trace."""
    problems = []
    if b"Traceback" in reply.raw or b'File "' in reply.raw:
        problems.append("the answer leaks a stack trace")
    try:
        value = json.loads(reply.raw)
    except ValueError:
        return [*problems, f"not JSON: {reply.raw[:120]!r}"]
    try:
        schema.validate("error", value)
    except MalformedError as exc:
        problems.append(f"not an error object ({exc.message})")
    ctype = reply.headers.get("Content-Type", "")
    if not ctype.startswith(JSON_TYPE):
        problems.append(f"Content-Type {ctype!r}, want application/json")
    return problems


def assert_error(reply: Reply, status: int, code: str | Iterable[str] | None = None) -> None:
    """``reply`` is a JSON error with ``status`` (and ``code``, or one of several)."""
    assert reply.status == status, f"want {status} {code or ''}, got {reply!r}"
    problems = error_shape_problems(reply)
    assert not problems, f"{problems}: {reply!r}"
    if code is not None:
        codes = {code} if isinstance(code, str) else set(code)
        assert reply.code in codes, f"want code {sorted(codes)}, got {reply!r}"


def assert_status(reply: Reply, status: int) -> Any:
    assert reply.status == status, f"want {status}, got {reply!r}"
    return reply.json if reply.raw else None


# =========================================================================== the server


def build_app(data_dir: Path, clock: Clock, *, origin: str = ORIGIN, keys: Any = None,
              limits: Any = None) -> Any:
    """The real application on ``data_dir`` (created on first use) with ``clock``.

    This is the one place that knows how the server is assembled: a
    ``schakel.server.config.ServerConfig`` whose public origin is ``origin`` (and whose
    ``limits`` are given, or the defaults), the server's log and
    gate keys (``schakel.server.serverkeys.ServerKeys``; in memory, generated unless given), an
    ``schakel.server.context.AppContext`` with the clock, and ``schakel.server.app.make_app``."""
    from schakel.server.app import make_app
    from schakel.server.config import Limits, ServerConfig
    from schakel.server.context import AppContext
    from schakel.server.serverkeys import ServerKeys as ServerKeyPair

    data_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(data_dir=data_dir, public_url=origin, limits=limits or Limits(),
                          database_url=pg_harness.database_url_for(data_dir))
    ctx = AppContext.create(config, keys or ServerKeyPair.generate(), clock=clock)
    return make_app(ctx)


class InProcessServer:
    """The application behind an aiohttp ``TestServer``/``TestClient`` pair.  ``keys``
    (the server's log and gate keys) are kept so that a second instance on the same
    data directory is the same server after a restart."""

    def __init__(self, data_dir: Path, clock: Clock, *, origin: str = ORIGIN,
                 keys: Any = None) -> None:
        from schakel.server.serverkeys import ServerKeys as ServerKeyPair

        self.data_dir, self.clock, self.origin = data_dir, clock, origin
        self.keys = keys or ServerKeyPair.generate()
        self.client: Any = None

    async def start(self) -> Caller:
        from aiohttp.test_utils import TestClient, TestServer
        app = build_app(self.data_dir, self.clock, origin=self.origin, keys=self.keys)
        self.client = TestClient(TestServer(app))
        await self.client.start_server()
        return Caller(TestClientTransport(self.client), self.origin, self.clock)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def restarted(self) -> "InProcessServer":
        """The same server (data directory, keys, clock), to be started again."""
        return InProcessServer(self.data_dir, self.clock, origin=self.origin, keys=self.keys)


# =========================================================================== worlds


async def register(caller: Caller, net: Network, members: Iterable[Actor] = (), *,
                   accept: bool = True, epoch: bool = True) -> None:
    """Bootstrap ``net`` over HTTP: genesis, the coordinator's own membership first, then
    the members' memberships, their covenant acceptances and (with ``epoch``) epoch 1 for
    the core.  Independent requests go concurrently (the server group-commits them)."""
    assert_status(await caller.post("/v1/networks", net.coordinator, {"genesis": net.genesis}), 201)
    members = list(members)
    for actor in members:
        net.members[actor.label] = actor

    async def admit(actor: Actor) -> None:
        assert_status(await caller.post(net.path("/members"), net.coordinator,
                                        {"membership": net.membership(actor)}), 201)

    async def accept_covenant(actor: Actor) -> None:
        assert_status(await caller.post(net.path("/covenant"), actor,
                                        {"acceptance": net.acceptance(actor)}), 201)

    await admit(net.coordinator)
    await asyncio.gather(*(admit(a) for a in members))
    if accept:
        await asyncio.gather(*(accept_covenant(a) for a in [net.coordinator, *members]))
    if epoch:
        dist = net.distribution()
        assert_status(await caller.post(net.path("/epochs"), net.coordinator,
                                        {"distribution": dist}), 201)
        net.commit_epoch(dist)


async def enrol(caller: Caller, net: Network, label: str, *, ring: str = "core",
                party: str = "formal", roles: Iterable[str] = ()) -> Actor:
    """Admit one more member over HTTP (membership by the coordinator)."""
    actor = net.actor(label, ring=ring, party=party, roles=roles)
    net.members[label] = actor
    assert_status(await caller.post(net.path("/members"), net.coordinator,
                                    {"membership": net.membership(actor)}), 201)
    return actor


async def create_case(caller: Caller, net: Network, owner: Actor, **kwargs: Any) -> CaseState:
    body, state = net.new_case(owner, **kwargs)
    answer = assert_status(await caller.post(net.path("/cases"), owner, body), 201)
    assert answer["case"] == state.case, answer
    net.cases[state.case] = state
    return state


async def append(caller: Caller, net: Network, state: CaseState, author: Actor,
                 **kwargs: Any) -> dict[str, Any]:
    envelope = net.event(state, author, **kwargs)
    answer = assert_status(await caller.post(net.path(f"/cases/{state.case}/events"), author,
                                             {"event": envelope}), 201)
    state.commit(envelope)
    return answer


async def rekey(caller: Caller, net: Network, state: CaseState, signer: Actor | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """Rotate ``state``'s case key over HTTP (``POST .../rekeys``) and commit it."""
    envelope = net.rekey(state, signer=signer, **kwargs)
    answer = assert_status(await caller.post(net.path(f"/cases/{state.case}/rekeys"),
                                             signer or state.owner, {"rekey": envelope}), 201)
    state.commit_rekey(envelope)
    return answer


async def new_epoch(caller: Caller, net: Network,
                    recipients: Iterable[Actor] | None = None) -> int:
    """Distribute the next epoch (default: to the core) over HTTP and commit it."""
    dist = net.distribution(recipients=recipients)
    assert_status(await caller.post(net.path("/epochs"), net.coordinator,
                                    {"distribution": dist}), 201)
    net.commit_epoch(dist)
    return net.epoch


async def send_signal(caller: Caller, draft: SignalDraft, sender: Actor | None,
                      path: str) -> SignalDraft:
    answer = assert_status(await caller.post(path, sender, draft.body), 201)
    draft.receipt = answer["receipt"]
    return draft


async def server_keys(caller: Caller) -> ServerKeys:
    return ServerKeys.from_json(assert_status(await caller.get("/v1/server"), 200))


@dataclass
class World:
    """The standard cast (module docstring), registered on a running server."""

    caller: Caller
    clock: Clock
    server: ServerKeys
    a: Network
    b: Network
    actors: dict[str, Actor]
    case: CaseState
    consult: CaseState
    shell_signal: SignalDraft
    anonymous_signal: SignalDraft

    def __getitem__(self, kind: str) -> Actor:
        return self.actors[kind]


#: The caller kinds of the authorization table that are actors of the world.
ACTOR_KINDS = ("core-formal", "core-informal", "shell", "shell-shared", "coordinator", "auditor",
               "other-network", "unknown-key")


async def build_world(caller: Caller, *, a_policy: dict[str, Any] | None = None,
                      b_policy: dict[str, Any] | None = None) -> World:
    """Register network A and B with their members; create the main case (owned by the
    core formal partner, shared with one shell partner), a consult and two signals."""
    server = await server_keys(caller)
    clock = caller.clock
    a = Network(server, clock, policy=a_policy)
    core_formal = a.actor("core-formal", ring="core", party="formal", roles=("professional-secrecy",))
    core_informal = a.actor("core-informal", ring="core", party="informal")
    shell = a.actor("shell", ring="shell", party="formal")
    shell_shared = a.actor("shell-shared", ring="shell", party="informal")
    auditor = a.actor("auditor", ring="shell", party="formal", roles=("auditor",))
    b = Network(server, clock, name="OGGZ-netwerk Eemland", kind="oggz",
                policy=b_policy or network_policy("oggz", anonymous_signals=False))
    other = b.actor("other-network", ring="core", party="formal")
    await asyncio.gather(
        register(caller, a, [core_formal, core_informal, shell, shell_shared, auditor]),
        register(caller, b, [other]))

    unknown = Actor.fresh("unknown-key", ring=None)
    case, consult, shell_signal, anonymous_signal = await asyncio.gather(
        create_case(caller, a, core_formal),
        create_case(caller, a, core_informal, kind="consult"),
        send_signal(caller, a.signal(shell), shell, a.path("/signals")),
        send_signal(caller, a.signal(None), None, a.path("/signals")))
    _, shared = await asyncio.gather(
        append(caller, a, case, core_informal),
        caller.post(a.path("/shares"), a.coordinator, {"share": a.share(case, shell_shared)}))
    assert_status(shared, 201)
    actors = {"core-formal": core_formal, "core-informal": core_informal, "shell": shell,
              "shell-shared": shell_shared, "coordinator": a.coordinator, "auditor": auditor,
              "other-network": other, "unknown-key": unknown}
    return World(caller=caller, clock=clock, server=server, a=a, b=b, actors=actors, case=case,
                 consult=consult, shell_signal=shell_signal, anonymous_signal=anonymous_signal)


@asynccontextmanager
async def running_world(data_dir: Path) -> AsyncIterator[World]:
    """The standard world on an in-process server on ``data_dir``, stopped afterwards (for
    a module-scoped fixture: ``async with running_world(tmp) as world: yield world``)."""
    server = InProcessServer(data_dir, FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


async def sync_all(caller: Caller, net: Network, actor: Actor, *, after: str = "0",
                   limit: int = 500, max_pages: int = 100) -> list[dict[str, Any]]:
    """Every sync item ``actor`` may see, page by page from ``after``."""
    items: list[dict[str, Any]] = []
    for _ in range(max_pages):
        page = assert_status(await caller.get(net.path(f"/sync?after={after}&limit={limit}&wait=0"),
                                              actor), 200)
        items += page["items"]
        if not page["items"] or page["cursor"] == after:
            return items
        after = page["cursor"]
    raise AssertionError("sync did not end")


__all__ = [
    "MISSING", "ORIGIN", "STALE_BY", "FakeClock", "RealClock", "Actor", "ServerKeys", "CaseState",
    "SignalDraft", "Network", "Prepared", "Reply", "Caller", "TestClientTransport",
    "SessionTransport", "InProcessServer", "World", "ACTOR_KINDS", "build_app", "build_world",
    "running_world", "register", "enrol", "create_case", "append", "rekey", "new_epoch",
    "send_signal", "server_keys", "sync_all",
    "assert_error", "assert_status", "error_shape_problems", "network_policy", "new_id", "ts",
]
