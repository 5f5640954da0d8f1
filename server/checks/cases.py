"""Checks of cases, events and shares (protocol.md §C.1-§C.5, §D.7; flow 2 and 6).

* a header is signed by its owner, who is the caller, a core member;
* each event is signed by its author, who is the caller, and the first events of a new
  case form a chain (``seq`` 1.., ``prev`` = ``event_hash`` of the previous envelope);
* identity records are the owner's, for the header's classes and identity version;
* a consult carries no identity, gated envelopes or tokens (403 ``policy_violation``,
  design §4.2);
* the first events of a case use the header's case key version (409 otherwise, ADR 0007);
* a share is signed by the coordinator and goes to a current member of either ring;
* a rekey is signed by the caller (the case owner or the coordinator, which the route
  checks) and names the path's network and case;
* backfilled gated envelopes are for the case's classes at its identity version, each
  for a current member (ADR 0007);
* a replacement header is the owner's, changes only ``identity_version`` and ``classes``,
  and carries one identity record per class at its version (ADR 0011);
* a subset case's audience names its owner and the coordinator, all current core
  members; its gated envelopes and rekeys are for its audience only, a widening adds
  current core members and only them, and a share never gives a core member outside the
  audience the case key (ADR 0031).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, PolicyViolation, UntrustedKeyError,
)
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import sha256
from schakel.protocol.objects.cases import (
    EVENT_HASH_DOMAIN, BlindIndexToken, CaseHeader, CaseRekey, Event, GatedEnvelope,
    IdentityPurge, IdentityRecord, added_members, check_link, check_replacement, check_widening,
)
from schakel.protocol.objects.disclosure import Share
from schakel.server.audit import actor_of
from schakel.server.auth import Caller
from schakel.server.checks import canonical, same
from schakel.server.data.cases import NewCase, NewEvent, NewGated, NewHeader, NewRekey, NewShare
from schakel.server.data.signals import Token
from schakel.server.disclosure.erasure import NewPurge
from schakel.server.directory import NetworkState
from schakel.server.errors import Conflict, Forbidden


def check_tokens(values: list[Any], state: NetworkState) -> tuple[Token, ...]:
    """Blind-index tokens of the policy's length, without repeats."""
    size = state.policy.blind_index.token_bytes
    out: list[Token] = []
    for value in values:
        token = BlindIndexToken.from_json(value)
        if len(token.raw) != size:
            raise MalformedError(f"blind-index tokens of this network are {size} bytes",
                                 details={"field": "tokens"})
        if (token.kind, token.raw) not in out:
            out.append((token.kind, token.raw))
    return tuple(out)


def audience_candidates(state: NetworkState, now: datetime) -> set[str]:
    """Who a subset case's audience may name at ``now``: the current core members and
    the coordinator (ADR 0031)."""
    out = {k for k, m in state.current_members(now).items() if m.ring == "core"}
    out.add(state.genesis.coordinator.key_id)
    return out


def _check_audience(header: CaseHeader, state: NetworkState, now: datetime) -> None:
    """A new subset case (ADR 0031): its audience names the owner (the header's own
    check) and the coordinator, and only current core members; each member is sealed the
    header's case-key version only."""
    assert header.audience is not None
    if state.genesis.coordinator.key_id not in header.audience:
        raise PolicyViolation("a subset case's audience names the coordinator",
                              details={"reason": "audience-without-coordinator"})
    if not set(header.audience) <= audience_candidates(state, now):
        raise PolicyViolation("a subset case's audience names current core members only",
                              details={"reason": "audience-not-core"})
    if any(k.version != header.case_key_version for k in header.audience_keys or ()):
        raise MalformedError("a new subset case seals its first case-key version only",
                             details={"field": "audience_keys"})


def _authored(cls: type[CaseHeader] | type[Event], field: str, envelope: Any, caller: Caller) -> Any:
    """``cls`` from ``envelope``, signed by the caller, who must be its ``field`` (owner or
    author): 403 ``forbidden`` for an object made out in another partner's name."""
    if cls.peek(envelope)[field] != caller.keyid:
        raise Forbidden(f"the {cls.TYPE}'s {field} must be the caller", details={"field": field})
    return cls.from_envelope(envelope, [caller.key])


def new_event(envelope: Any, event: Event, *, received: str, acting_user: str) -> NewEvent:
    # The envelope was validated by Event.from_envelope, so its canonical bytes are encoded
    # once and give the stored text, the idempotency digest and the event hash (the same
    # bytes event_hash() would encode again).
    data = canonical_json(envelope)
    return NewEvent(network=event.network, case=event.case, event=event.event, seq=event.seq,
                    prev=event.prev, author=event.author, case_key_version=event.case_key_version,
                    status=event.status, envelope=data.decode("utf-8"),
                    digest=sha256(data), hash=sha256(EVENT_HASH_DOMAIN + data), received=received,
                    acting_user=acting_user)


def check_event(envelope: Any, caller: Caller, case: str, *, received: str) -> NewEvent:
    """An event appended to ``case`` of the caller's network, authored by the caller."""
    event: Event = _authored(Event, "author", envelope, caller)
    same("network", event.network, caller.network.network)
    same("case", event.case, case)
    return new_event(envelope, event, received=received, acting_user=caller.acting_user)


def check_case(body: Mapping[str, Any], caller: Caller, *, received: str, now: datetime) -> NewCase:
    """A case creation request (docs/protocol.md §14, ``POST .../cases``)."""
    state = caller.network
    header: CaseHeader = _authored(CaseHeader, "owner", body["header"], caller)
    same("network", header.network, state.network)
    if header.is_subset:
        _check_audience(header, state, now)
    identity, gated, tokens = body.get("identity", []), body.get("gated", []), body.get("tokens", [])
    if header.is_consult and (identity or gated or tokens):
        raise PolicyViolation("a consult is anonymous: no identity records, gated envelopes "
                              "or tokens", details={"reason": "consult-has-no-identity"})
    events: list[NewEvent] = []
    previous: Any = None
    for envelope in body["events"]:
        event: Event = _authored(Event, "author", envelope, caller)
        same("network", event.network, header.network)
        same("case", event.case, header.case)
        check_link(previous, event)        # seq 1.., prev = event_hash(previous envelope)
        if event.case_key_version != header.case_key_version:
            raise Conflict("an event is not encrypted under the header's case key version",
                           details={"case_key_version": header.case_key_version})
        events.append(new_event(envelope, event, received=received,
                                acting_user=caller.acting_user))
        previous = envelope
    if len({e.event for e in events}) != len(events):
        raise MalformedError("two events of the case have the same id", details={"field": "events"})
    classes = set(header.classes or ())
    if not classes <= set(state.policy.classes):
        raise PolicyViolation("the header lists a disclosure class the network's policy does "
                              "not define", details={"reason": "class-not-in-policy"})
    records: dict[str, tuple[str, int, str]] = {}
    for envelope in identity:
        record = IdentityRecord.from_envelope(envelope, [caller.key])
        _for_header(record.network, record.case, record.class_, record.version, header, classes)
        if record.class_ in records:
            raise MalformedError("two identity records of one class", details={"field": "identity"})
        records[record.class_] = (record.class_, record.version, canonical(envelope)[0])
    wrapped = _gated(gated, header, classes, state, now)
    _, digest = canonical(dict(body))
    return NewCase(network=state.network, case=header.case, owner=header.owner, kind=header.kind,
                   case_key_version=header.case_key_version, header=canonical(body["header"])[0],
                   digest=digest, events=tuple(events), identity=tuple(records.values()),
                   gated=wrapped, tokens=check_tokens(tokens, state),
                   received=received, acting_user=caller.acting_user,
                   audience=header.audience or ())


def _for_header(network: str, case: str, cls: str, version: int, header: CaseHeader,
                classes: set[str]) -> None:
    """An identity record or gated envelope must belong to the header's case, one of its
    classes and its identity version."""
    same("network", network, header.network)
    same("case", case, header.case)
    if cls not in classes:
        raise MalformedError("identity for a class the header does not list",
                             details={"field": "class"})
    if version != header.identity_version:
        raise MalformedError("identity of another version than the header's identity_version",
                             details={"field": "version"})


def _gated(values: list[Any], header: CaseHeader, classes: set[str], state: NetworkState,
           now: datetime) -> tuple[tuple[str, int, str, str], ...]:
    """Gated envelopes of ``header``'s case: its classes at its identity version, one per
    (class, version, recipient), each for a current member of the network."""
    wrapped: dict[tuple[str, int, str], tuple[str, int, str, str]] = {}
    current = state.current_members(now) if values else {}
    for value in values:
        g = GatedEnvelope.from_json(value)
        _for_header(g.network, g.case, g.class_, g.version, header, classes)
        if g.recipient not in current:
            # A revoked or expired member must not get envelopes it could later have released.
            raise PolicyViolation("gated envelopes are for current members of the network",
                                  details={"reason": "recipient-not-member"})
        if not header.reads(g.recipient):
            # ADR 0031: identity of a subset case goes to its audience only.
            raise PolicyViolation("a subset case's gated envelopes are for its audience",
                                  details={"reason": "recipient-not-in-audience"})
        key = (g.class_, g.version, g.recipient)
        if key in wrapped:
            raise MalformedError("two gated envelopes for one class and recipient",
                                 details={"field": "gated"})
        wrapped[key] = (g.class_, g.version, g.recipient, g.blob)
    return tuple(wrapped.values())


def check_gated(body: Mapping[str, Any], header_envelope: Any, state: NetworkState,
                now: datetime) -> NewGated:
    """Gated envelopes the owner backfills for members who joined after the case was
    created (ADR 0007), checked against the case's stored header: a consult has no
    identity (403 ``policy_violation``, ``consult-has-no-identity``); otherwise the same
    rules as at creation."""
    header = CaseHeader.from_json(header_envelope["signed"])  # verified when it was stored
    if header.is_consult:
        raise PolicyViolation("a consult is anonymous: no gated envelopes",
                              details={"reason": "consult-has-no-identity"})
    gated = _gated(body["gated"], header, set(header.classes or ()), state, now)
    return NewGated(network=header.network, case=header.case, gated=gated)


def check_header(body: Mapping[str, Any], caller: Caller, case: str, held_envelope: Any, *,
                 received: str, now: datetime) -> NewHeader:
    """A replacement of ``case``'s header by its owner, the caller (protocol.md §C.1
    "Header versions"; the route has checked the caller owns the case): the header signed
    by the caller, for the path's network and case; not on a consult (403
    ``policy_violation``, ``consult-has-no-identity``); every field but
    ``identity_version`` and ``classes`` as in the held header (400
    ``context_mismatch``); one identity record for each of its classes, and gated
    envelopes, at its ``identity_version`` (400 ``malformed``), each for a current member.
    Whether the version is the current + 1 is decided in the writing transaction."""
    held = CaseHeader.from_json(held_envelope["signed"])   # verified when it was stored
    if held.is_consult:
        raise PolicyViolation("a consult is anonymous: it has no identity to rotate",
                              details={"reason": "consult-has-no-identity"})
    header: CaseHeader = _authored(CaseHeader, "owner", body["header"], caller)
    same("network", header.network, caller.network.network)
    same("case", header.case, case)
    if check_replacement(held, header) != "identity":
        raise ContextMismatchError("a header that widens the audience is sent to "
                                   ".../cases/{case}/audience", details={"field": "audience"})
    classes = set(header.classes or ())
    if not classes <= set(caller.network.policy.classes):
        raise PolicyViolation("the header lists a disclosure class the network's policy does "
                              "not define", details={"reason": "class-not-in-policy"})
    records: dict[str, tuple[str, int, str]] = {}
    for envelope in body["identity"]:
        record = IdentityRecord.from_envelope(envelope, [caller.key])
        _for_header(record.network, record.case, record.class_, record.version, header, classes)
        if record.class_ in records:
            raise MalformedError("two identity records of one class", details={"field": "identity"})
        records[record.class_] = (record.class_, record.version, canonical(envelope)[0])
    if set(records) != classes:
        raise MalformedError("a replacement carries one identity record for each of its "
                             "classes", details={"field": "identity"})
    wrapped = _gated(body.get("gated", []), header, classes, caller.network, now)
    _, digest = canonical(dict(body))
    assert header.identity_version is not None            # a case's header carries one
    return NewHeader(network=header.network, case=header.case,
                     identity_version=header.identity_version,
                     header=canonical(body["header"])[0], digest=digest,
                     identity=tuple(records.values()), gated=wrapped, received=received,
                     acting_user=caller.acting_user)


def check_rekey(envelope: Any, caller: Caller, case: str, *, received: str,
                audience: tuple[str, ...] = (), now: datetime | None = None) -> NewRekey:
    """A case-key rotation signed by the caller (the route has checked that the caller is
    the case's owner or the coordinator), for the path's network and case.  For a subset
    case (``audience``, with ``now``) the new key is sealed to exactly the members of the
    audience that may still read (current core members and the coordinator), never wrapped
    under the epoch key (400 ``context_mismatch`` otherwise; ADR 0031); for any other case
    it is wrapped under the epoch key."""
    rekey = CaseRekey.from_envelope(envelope, [caller.key])
    same("network", rekey.network, caller.network.network)
    same("case", rekey.case, case)
    if audience:
        assert now is not None
        expected = set(audience) & audience_candidates(caller.network, now)
        if rekey.audience_keys is None or rekey.recipients != expected:
            raise ContextMismatchError("a subset case's rekey seals the new key to exactly the "
                                       "current members of its audience",
                                       details={"field": "audience_keys",
                                                "audience": sorted(expected)})
    elif rekey.audience_keys is not None:
        raise ContextMismatchError("only a subset case's rekey seals to an audience",
                                   details={"field": "audience_keys"})
    text, digest = canonical(envelope)
    return NewRekey(network=rekey.network, case=rekey.case,
                    case_key_version=rekey.case_key_version, epoch=rekey.epoch, envelope=text,
                    digest=digest, received=received, acting_user=caller.acting_user)


def check_purge(envelope: Any, caller: Caller, case: str, owner: str, *,
                received: str) -> NewPurge:
    """An ``identity-purge`` signed by the caller, for the path's network and case
    (protocol.md §C.12; ADR 0034): an erasure by the case's owner or the coordinator, a
    rectification by the owner only -- it follows the owner's replacement header, which
    only the owner can seal (anyone else 403 ``forbidden``).  Whether its version fits
    the case is decided in the writing transaction."""
    purge = IdentityPurge.from_envelope(envelope, [caller.key])
    same("network", purge.network, caller.network.network)
    same("case", purge.case, case)
    if caller.keyid != owner and not (purge.is_erasure and caller.is_coordinator):
        raise Forbidden("only the case's owner, or for an erasure the coordinator, purges its "
                        "identity")
    if not set(purge.classes) <= set(caller.network.policy.classes):
        raise PolicyViolation("the purge names a disclosure class the network's policy does "
                              "not define", details={"reason": "class-not-in-policy"})
    text, digest = canonical(envelope)
    role = "coordinator" if caller.is_coordinator and caller.keyid != owner else "member"
    return NewPurge(network=purge.network, case=purge.case, purge=purge.purge, kind=purge.kind,
                    identity_version=purge.identity_version, classes=purge.classes,
                    reason=purge.reason, envelope=text, digest=digest,
                    actor=actor_of(caller, role), received=received)


def check_share(envelope: Any, state: NetworkState, now: datetime, *, received: str,
                acting_user: str, audience: tuple[str, ...] = ()) -> NewShare:
    """A coordinator's share of a case with a current member: a shell partner asked to
    help (flow 6), or a core member that joined after the case was rekeyed, to read its
    history (a re-share of an earlier version, ADR 0007).  A subset case (``audience``)
    is shared with no core member outside its audience: that is a widening, made by the
    owner and audited as one (403 ``policy_violation`` ``partner-not-in-audience``)."""
    share = Share.from_envelope(envelope, [state.coordinator_key])
    same("network", share.network, state.network)
    try:
        partner = state.current(share.partner, now)
    except UntrustedKeyError:
        partner = None
    if partner is None:
        raise PolicyViolation("a case is shared with a current member of the network",
                              details={"reason": "partner-not-member"})
    if audience and partner.ring == "core" and share.partner not in audience:
        raise PolicyViolation("a subset case is widened by its owner, not shared with a core "
                              "member outside its audience",
                              details={"reason": "partner-not-in-audience"})
    text, digest = canonical(envelope)
    return NewShare(network=share.network, case=share.case, partner=share.partner,
                    case_key_version=share.case_key_version, envelope=text, digest=digest,
                    received=received, acting_user=acting_user, reason=share.reason)


def check_widen(header_envelope: Any, caller: Caller, case: str, held_envelope: Any,
                now: datetime) -> tuple[CaseHeader, tuple[str, ...]]:
    """A widening of ``case``'s audience by its owner, the caller (protocol.md §C.1,
    "Audience"; the route has checked the caller owns the case): the header signed by the
    caller for the path's network and case, :func:`check_widening` against the held
    header (400 ``context_mismatch``), and the members it adds current core members (403
    ``policy_violation`` ``audience-not-core``).  Returns the header and the added members;
    whether their keys reach the case's current version is decided in the writing
    transaction."""
    held = CaseHeader.from_json(held_envelope["signed"])   # verified when it was stored
    header: CaseHeader = _authored(CaseHeader, "owner", header_envelope, caller)
    same("network", header.network, caller.network.network)
    same("case", header.case, case)
    check_widening(held, header)
    added = added_members(held, header)
    if not set(added) <= audience_candidates(caller.network, now):
        raise PolicyViolation("a subset case's audience names current core members only",
                              details={"reason": "audience-not-core"})
    return header, added


__all__ = ["check_tokens", "new_event", "check_event", "check_case", "check_gated",
           "check_header", "check_rekey", "check_purge", "check_share", "check_widen",
           "audience_candidates"]
