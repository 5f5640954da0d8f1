"""Audit log objects and the wire error (docs/protocol.md §A).

An :class:`AuditEntry` is never signed itself: the log commits to it.  The
leaf of the RFC 6962 tree is :func:`entry_commitment` of the entry — a salted
hash — so an entry's *body* can be erased after its retention period while
every inclusion and consistency proof still verifies against the stored
commitment, and the random ``salt`` stops anyone from recovering an erased
body by hashing guesses.  An erasure is itself an entry (``action: erase``,
``erased_below``) that every reader checks a missing body against, with the
day-aligned :func:`erase_cutoff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxSecretKey, random_bytes, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError, ProtocolError
from schakel.protocol.objects.base import Part, SignedObject, Timestamp, WireObject, nested, utc

#: Domain separation of audit-entry commitments (design §3: a prefix per hashed object).
COMMITMENT_PREFIX = b"schakel/v1/audit-entry"
SALT_BYTES = 16
#: Every ``action`` an audit entry may have: exactly the schema's enum
#: (tests/test_schema.py::test_the_audit_actions_are_the_schemas).
ACTIONS = ("release", "deny", "consent", "consent-revoke", "grant", "bemoeizorg-invoke",
           "bemoeizorg-release", "bemoeizorg-cosign", "bemoeizorg-alert", "review", "share", "referral-out",
           "referral-in", "shred-identity", "shred-anonymous", "purge-instruction",
           "purge-ack", "membership", "membership-revoke", "erase", "read", "policy", "lookup",
           "erasure", "rectification", "audience-widen", "key-rotation")
#: Actions whose entry may name several cases in ``cases`` (and then names no ``case``).
CASES_ACTIONS = ("read", "lookup")
ACTOR_ROLES = ("member", "coordinator", "auditor", "bemoeizorg", "server")
BASES = ("consent", "bemoeizorg", "policy", "none")


def new_salt() -> str:
    """A fresh random ``salt`` for an audit entry."""
    return b64e(random_bytes(SALT_BYTES))


@dataclass(frozen=True, kw_only=True)
class AuditActor(Part):
    """Who acted (NEN 7513): partner key id, acting user, role and organisation; for a
    member, the party its acting user acted in and the organisations it acts on behalf
    of -- both as the membership in force said, filled in by the server, never taken from
    the request (protocol.md §A.1, §N.4)."""

    TYPE = "audit-entry"
    DEF = "actor"

    partner: str
    acting_user: str
    role: str
    organisation: str
    party: str | None = None
    on_behalf_of: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class SealedPurpose(Part):
    """The purpose of the act an entry records, sealed to one reader -- an auditor or the
    coordinator, who answers the subject access request (``envelopes.seal_purpose``:
    bound to the entry's network, index and action and to the reader)."""

    TYPE = "audit-entry"
    DEF = "sealed_purpose"

    reader: str
    sealed: str

    def check(self) -> None:
        self._binary("sealed")


@dataclass(frozen=True, kw_only=True)
class AuditEntry(WireObject):
    """One record of a network's audit log.  It never contains identity: the case
    is named by its id (the pseudonym) and ``reason`` is a code or short text."""

    TYPE = "audit-entry"

    network: str
    index: int
    salt: str
    time: Timestamp
    actor: AuditActor = nested(AuditActor)
    case: str | None = None
    cases: tuple[str, ...] | None = None
    subject: str | None = None
    action: str
    classes: tuple[str, ...] | None = None
    basis: str
    ref: str | None = None
    outcome: str
    reason: str
    review_required: bool
    emergency: bool
    erased_below: int | None = None
    purpose: tuple[SealedPurpose, ...] | None = nested(SealedPurpose, many=True, default=None)

    def check(self) -> None:
        if self.purpose is not None and len({p.reader for p in self.purpose}) != len(self.purpose):
            raise self._fail("purpose", "names a reader twice")
        if self.basis == "bemoeizorg" and not self.emergency:
            raise self._fail("emergency", "must be true when the basis is bemoeizorg")
        if self.action == "deny" and self.outcome != "deny":
            raise self._fail("outcome", "must be deny for a deny action")
        if self.action == "read" and self.cases is None:
            raise self._fail("cases", "must be present on a read entry")
        if self.cases is not None and self.action not in CASES_ACTIONS:
            raise self._fail("cases", "is present only on a read or lookup entry")
        if self.action in CASES_ACTIONS and (
                self.case is not None or self.subject is not None
                or (self.basis, self.outcome) != ("policy", "allow")):
            raise self._fail("action", f"a {self.action} names its cases in cases, no case "
                                       f"or subject, on basis policy, allowed")
        if (self.action == "erase") != (self.erased_below is not None):
            raise self._fail("erased_below", "must be present exactly on an erase entry")
        if self.action == "erase":
            if self.erased_below is not None and self.erased_below > self.index:
                raise self._fail("erased_below", "must not exceed the erase entry's own index")
            if (self.actor.role, self.basis, self.outcome) != ("server", "policy", "allow"):
                raise self._fail("action", "erase is the server's, on basis policy, allowed")

    @property
    def commitment(self) -> bytes:
        return entry_commitment(self)

    def open_purpose(self, reader: str, box_secret: BoxSecretKey) -> str | None:
        """The purpose sealed to ``reader`` in this entry, or None when the entry carries
        none for it; DecryptionError if ``box_secret`` is not the reader's,
        ContextMismatchError if it was sealed for another entry, action or reader."""
        for p in self.purpose or ():
            if p.reader == reader:
                return envelopes.open_purpose(box_secret, p.sealed, network=self.network,
                                              index=self.index, action=self.action,
                                              reader=reader)
        return None


def entry_commitment(entry: AuditEntry) -> bytes:
    """SHA-256(b"schakel/v1/audit-entry" || canonical_json(entry)): the leaf bytes
    of the RFC 6962 log (``schakel.protocol.merkle.leaf_hash`` hashes them once more with
    the 0x00 leaf prefix)."""
    if not isinstance(entry, AuditEntry):
        raise MalformedError("entry_commitment needs an AuditEntry")
    return sha256(COMMITMENT_PREFIX + canonical_json(entry.to_json()))


def erase_cutoff(erased_at: datetime, audit_days: int) -> datetime:
    """The time before which an entry's body may be erased by an erasure made at
    ``erased_at`` (protocol.md §A.1, "Erasure"): the start of ``erased_at``'s UTC day,
    ``audit_days`` days back.  Day-aligned, so a retention pass erases at most once a
    day, and the server (choosing the range) and every reader (checking it) compute the
    same instant from the erase entry's own ``time``."""
    day = utc(erased_at, "erased_at").replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=audit_days)


@dataclass(frozen=True, kw_only=True)
class TreeHead(SignedObject):
    """The size and root of a network's audit log, signed by the server's log key."""

    TYPE = "tree-head"

    network: str
    size: int
    root: str
    time: Timestamp


# --------------------------------------------------------------------------- errors

_MESSAGE_MAX = 500


@dataclass(frozen=True, kw_only=True)
class ErrorBody(Part):
    """``{code, message, details}`` of an error response."""

    TYPE = "error"
    DEF = "body"

    code: str
    message: str
    details: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ErrorResponse(WireObject):
    """The JSON body of every error response (design §6): ``{"error": {...}}``."""

    TYPE = "error"

    error: ErrorBody = nested(ErrorBody)

    @classmethod
    def of(cls, code: str, message: str, details: dict[str, Any] | None = None) -> "ErrorResponse":
        return cls(error=ErrorBody(code=code, message=message, details=details or {}))

    @classmethod
    def from_protocol_error(cls, exc: ProtocolError) -> "ErrorResponse":
        """The wire form of ``exc``: message cut to 500 characters, control characters
        replaced, and details dropped if they do not fit the schema."""
        message = "".join(c if c.isprintable() else " " for c in exc.message)[:_MESSAGE_MAX]
        try:
            return cls.of(exc.code, message, exc.details)
        except MalformedError:
            return cls.of(exc.code, message)


__all__ = [
    "COMMITMENT_PREFIX", "SALT_BYTES", "ACTIONS", "CASES_ACTIONS", "ACTOR_ROLES", "BASES", "new_salt",
    "AuditActor", "SealedPurpose", "AuditEntry", "entry_commitment", "erase_cutoff", "TreeHead", "ErrorBody",
    "ErrorResponse",
]
