"""What the server verifies of disclosure objects before a ``*_txn`` decides on them
(protocol.md §D.1-§D.6, §D.10; docs/protocol.md §15 §15.2).

Each object must be signed by the caller (the request's key), name the network of the path
(400 ``context_mismatch`` otherwise) and be made out by someone allowed to make it (403
``forbidden``): a consent or revocation by the case's owner or the coordinator, a review by
an auditor.  A grant by anyone but the coordinator, and whether a *release* may happen, are
not decided here but inside the write transaction, where a denial is audited
(``schakel.protocol.policy.decide`` for releases).  Nothing here touches the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schakel.protocol import schema
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects.disclosure import (
    BemoeizorgCosign, BemoeizorgInvocation, Consent, ConsentRevocation, Grant, PurgeAck, Review,
)
from schakel.protocol.objects.network import PARTIES, acting_roles
from schakel.protocol.policy import Person
from schakel.server.audit import actor_of
from schakel.server.auth import Caller
from schakel.server.checks import canonical, same
from schakel.server.disclosure.bemoeizorg import NewCosign, NewInvocation, NewReview
from schakel.server.disclosure.data import (
    NewAck, NewConsent, NewGrant, NewRelease, NewRevocation, Signed,
)
from schakel.server.disclosure.facts import grantee_of
from schakel.server.errors import Forbidden


def signed(envelope: Any, caller: Caller, role: str) -> Signed:
    """A verified envelope as stored, with the caller as the audit actor in ``role``."""
    text, digest = canonical(envelope)
    return Signed(envelope=text, digest=digest, actor=actor_of(caller, role))


def case_of_consent(envelope: Any) -> str:
    """The case a consent names (schema-checked, not yet verified): to look up its owner,
    who may be the one that must have signed it."""
    return str(Consent.peek(envelope)["case"])


def case_of_revocation(envelope: Any) -> str:
    return str(ConsentRevocation.peek(envelope)["case"])


def _recorder_role(caller: Caller, owner: str) -> str:
    """Consents are recorded and revoked by the case's owner or the coordinator (§D.1)."""
    if caller.keyid == owner:
        return "member"
    if caller.is_coordinator:
        return "coordinator"
    raise Forbidden("only the case's owner or the coordinator records or revokes a consent")


def check_consent(envelope: Any, caller: Caller, owner: str) -> NewConsent:
    """A consent signed by the case owner or the coordinator (the caller), for classes of
    the network's policy (protocol.md §D.1)."""
    role = _recorder_role(caller, owner)
    consent = Consent.from_envelope(envelope, [caller.key])
    same("network", consent.network, caller.network.network)
    unknown = sorted(set(consent.classes) - set(caller.network.policy.classes))
    if unknown:
        raise PolicyViolation("the consent names a class the network's policy does not define",
                              details={"reason": "class-not-in-policy", "classes": unknown})
    return NewConsent(network=consent.network, consent=consent.consent, case=consent.case,
                      classes=tuple(sorted(consent.classes)),
                      partners=tuple(sorted(consent.grantees.partners)),
                      parties=tuple(sorted(consent.grantees.parties)),
                      valid_from=consent.valid_from, valid_until=consent.valid_until,
                      purpose=consent.purpose, signed=signed(envelope, caller, role))


def check_revocation(envelope: Any, caller: Caller, owner: str, consent: str) -> NewRevocation:
    """A revocation of the path's consent, signed by the case owner or the coordinator."""
    role = _recorder_role(caller, owner)
    revocation = ConsentRevocation.from_envelope(envelope, [caller.key])
    same("network", revocation.network, caller.network.network)
    same("consent", revocation.consent, consent)
    return NewRevocation(network=revocation.network, consent=revocation.consent,
                         case=revocation.case, signed=signed(envelope, caller, role))


def check_grant(envelope: Any, caller: Caller) -> NewGrant:
    """A grant signed by the caller (protocol.md §D.3); that the caller is the
    coordinator is decided after, as an audited denial when it is not."""
    grant = Grant.from_envelope(envelope, [caller.key])
    same("network", grant.network, caller.network.network)
    return NewGrant(network=grant.network, grant=grant.grant, case=grant.case,
                    grantee=grant.grantee, consent=grant.basis.consent,
                    classes=tuple(sorted(grant.classes)), reason=grant.reason,
                    signed=signed(envelope, caller,
                                  "coordinator" if caller.is_coordinator else "member"))


def object_id(value: Any, field: str) -> str:
    """A protocol id given in a request body (400 ``malformed`` otherwise)."""
    try:
        schema.validate_def("common", "id", value)
    except MalformedError:
        raise MalformedError(f"{field} must be an id", details={"field": field}) from None
    return str(value)


def new_release(caller: Caller, ref: str, release: str, role: str,
                now: datetime) -> NewRelease:
    """The caller asks for a release under ``ref`` (grant or invocation)."""
    return NewRelease(network=caller.network.network, release=release, ref=ref,
                      actor=actor_of(caller, role),
                      grantee=grantee_of(caller.network, caller.keyid, now,
                                         (caller.acting_user,)))


def bemoeizorg_role(caller: Caller) -> str:
    return "bemoeizorg" if "bemoeizorg" in caller.roles else "member"


def check_invocation(envelope: Any, caller: Caller) -> NewInvocation:
    """A bemoeizorg invocation signed by the caller (protocol.md §D.4); whether it is
    allowed (oggz, role, ground, justification, rate) is decided in the transaction."""
    invocation = BemoeizorgInvocation.from_envelope(envelope, [caller.key])
    same("network", invocation.network, caller.network.network)
    return NewInvocation(network=invocation.network, invocation=invocation.invocation,
                         case=invocation.case, classes=tuple(sorted(invocation.classes)),
                         ground=invocation.ground,
                         auditors=frozenset(j.auditor for j in invocation.justification),
                         person=Person(partner=caller.keyid, acting_user=invocation.acting_user),
                         at=invocation.at, signed=signed(envelope, caller, bemoeizorg_role(caller)))


def check_cosign(envelope: Any, caller: Caller, invocation: str) -> NewCosign:
    """A co-sign of the path's invocation, signed by the caller (protocol.md §D.5)."""
    cosign = BemoeizorgCosign.from_envelope(envelope, [caller.key])
    same("network", cosign.network, caller.network.network)
    same("invocation", cosign.invocation, invocation)
    # The co-signer's roles are those of the lowest party of the request's acting user and
    # the one the co-sign names (protocol.md §N.4): a volunteer of a mixed organisation,
    # or an unlisted user, holds no bemoeizorg role to co-sign with.
    person_party = caller.member.party_of(cosign.acting_user) if caller.member else None
    roles = caller.roles if caller.member is None else acting_roles(
        caller.roles, None if person_party is None or caller.party is None
        else min(person_party, caller.party, key=PARTIES.index))
    return NewCosign(network=cosign.network, invocation=cosign.invocation, case=cosign.case,
                     person=Person(partner=caller.keyid, acting_user=cosign.acting_user),
                     roles=roles, at=cosign.at,
                     signed=signed(envelope, caller, bemoeizorg_role(caller)))


def check_review(envelope: Any, caller: Caller) -> NewReview:
    """A review signed by an auditor (the caller; protocol.md §D.6)."""
    review = Review.from_envelope(envelope, [caller.key])
    same("network", review.network, caller.network.network)
    return NewReview(network=review.network, invocation=review.invocation, entry=review.entry,
                     outcome=review.outcome, signed=signed(envelope, caller, "auditor"))


def check_purge_ack(envelope: Any, caller: Caller) -> NewAck:
    """An acknowledgement signed by the caller; that it is the instruction's recipient is
    checked against the stored instruction (protocol.md §D.10)."""
    ack = PurgeAck.from_envelope(envelope, [caller.key])
    same("network", ack.network, caller.network.network)
    return NewAck(network=ack.network, instruction=ack.instruction, case=ack.case,
                  signed=signed(envelope, caller, "member"))


__all__ = ["signed", "case_of_consent", "case_of_revocation", "check_consent", "check_revocation", "check_grant",
           "object_id", "new_release", "bemoeizorg_role", "check_invocation",
           "check_cosign", "check_review", "check_purge_ack"]
