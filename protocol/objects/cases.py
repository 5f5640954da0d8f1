"""Case objects: header, events, sealed identity, gated envelopes, blind-index
tokens and case-key rotations (docs/protocol.md §C.1–§C.5, §C.11).

What the server sees of a case is exactly what these objects carry in clear: ids,
key ids, acting users, timestamps, key and identity versions, the names of the
disclosure classes present, the event sequence and an open/closed status.
Everything about the person is inside ``wrapped_case_key``-protected events or
class-key-protected identity records; the AEAD context (associated data) that
binds each ciphertext to its case is built in ``protocol/envelopes.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schakel.protocol import envelopes, schema, signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import BoxSecretKey, CaseKey, EpochKey, VerifyKey, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, DecryptionError, SignatureError
from schakel.protocol.objects.base import (
    Part, SignedObject, Timestamp, WireObject, alias, nested, thaw,
)
from schakel.protocol.objects.plaintext import AEAD_OVERHEAD, AnonymousEvent, StatusChange

#: Domain separation of the event hash chain (protocol.md §C.3).
EVENT_HASH_DOMAIN = b"schakel/v1/event-hash"

# Decoded size bounds of the binary fields (protocol.md §C); the schemas
# carry the matching base64url lengths.
SEAL_OVERHEAD = 48               # crypto_box_seal
TOKEN_MIN_BYTES, TOKEN_MAX_BYTES = 4, 16
WRAPPED_KEY_MAX_BYTES = 128     # schakel.protocol.envelopes.unwrap_case_key; a wrap is 72
EVENT_CIPHERTEXT_MAX_BYTES = 64 * 1024
IDENTITY_CIPHERTEXT_MAX_BYTES = 16 * 1024
GATED_BLOB_MAX_BYTES = 1024
MAX_TOKENS = 4
#: Most members a case's audience names, and most sealed case keys a header or rekey
#: carries (protocol.md §C.1, "Audience").
MAX_AUDIENCE = 32
MAX_AUDIENCE_KEYS = 256


def verified_signers(envelope: Mapping[str, Any], keys: Iterable[VerifyKey]) -> set[str]:
    """Key ids among ``keys`` that signed ``envelope``.  Only meaningful after
    ``signing.verify`` succeeded with the same keys: it raises when a counted
    key's signature fails, so every claimed signer among ``keys`` is verified."""
    return set(signing.signers_of(envelope)) & {k.key_id for k in keys}


@dataclass(frozen=True, kw_only=True)
class BlindIndexToken(WireObject):
    """A truncated Argon2id blind index (design §4.8); matches are hints only."""

    TYPE = "blind-index-token"

    kind: str
    token: str

    def check(self) -> None:
        self.raw  # decoding checks the form and length of the token

    @property
    def raw(self) -> bytes:
        return self._binary("token", min_bytes=TOKEN_MIN_BYTES, max_bytes=TOKEN_MAX_BYTES)


@dataclass(frozen=True, kw_only=True)
class AudienceKey(Part):
    """One version of a case key sealed to one member of the case's audience
    (protocol.md §C.1, "Audience"): :func:`schakel.protocol.envelopes.seal_case_key`, a
    ``case-key`` payload bound to the network, the case, ``version`` and ``member``.  Used
    in a subset case's header and in its rekeys (§C.11)."""

    TYPE = "case-header"
    DEF = "audience_key"

    member: str
    version: int
    sealed: str

    def check(self) -> None:
        self._binary("sealed", min_bytes=SEAL_OVERHEAD, max_bytes=WRAPPED_KEY_MAX_BYTES * 4)

    def open(self, box_secret: BoxSecretKey, *, network: str, case: str) -> CaseKey:
        """The case key, opened with ``member``'s box key and checked against this entry's
        context: DecryptionError for another key, ContextMismatchError for a payload made
        for another network, case, version or member."""
        return envelopes.open_case_key(box_secret, self.sealed, network=network, case=case,
                                       version=self.version, recipient_id=self.member)


def _check_audience_keys(obj: WireObject, keys: tuple[AudienceKey, ...],
                         audience: frozenset[str] | None) -> None:
    """No (member, version) twice; with ``audience``, every key for one of its members."""
    seen: set[tuple[str, int]] = set()
    for k in keys:
        if (k.member, k.version) in seen:
            raise obj._fail("audience_keys", "seals one version to one member twice")
        seen.add((k.member, k.version))
        if audience is not None and k.member not in audience:
            raise obj._fail("audience_keys", "seals a key to a partner outside the audience")


@dataclass(frozen=True, kw_only=True)
class CaseHeader(SignedObject):
    """The cleartext header of a case or consult, signed by the owning partner.

    A consult (``kind == "consult"``) is anonymous: no ``identity_version`` or
    ``classes``.  A case has an ``identity_version``.  A *subset case* names its
    ``audience`` -- the core members that may read it, the owner among them -- and
    carries its case key sealed to each of them in ``audience_keys`` instead of
    ``wrapped_case_key`` under the epoch key, which every core member holds (protocol.md
    §C.1, "Audience"; ADR 0031).  Without ``audience`` the whole core reads the case.
    Blind-index tokens are
    never part of the header: every core member syncs headers and holds the
    match key, so tokens there would let any member test whether a person it
    knows is a case (ADR 0004).  They travel beside the header, to the server only.
    """

    TYPE = "case-header"

    network: str
    case: str
    owner: str
    acting_user: str
    kind: str
    created: str
    epoch: int
    case_key_version: int
    wrapped_case_key: str | None = None
    identity_version: int | None = None
    classes: tuple[str, ...] | None = None
    audience: tuple[str, ...] | None = None
    audience_keys: tuple[AudienceKey, ...] | None = nested(AudienceKey, many=True, default=None)

    def check(self) -> None:
        if self.audience is None:
            if self.wrapped_case_key is None:
                raise self._fail("wrapped_case_key", "is required on a case without audience")
            if self.audience_keys is not None:
                raise self._fail("audience_keys", "must be absent without audience")
            self._binary("wrapped_case_key", min_bytes=AEAD_OVERHEAD,
                         max_bytes=WRAPPED_KEY_MAX_BYTES)
        else:
            # ADR 0031: a subset case is never readable through the epoch key.
            if self.wrapped_case_key is not None:
                raise self._fail("wrapped_case_key", "must be absent on a subset case")
            if self.owner not in self.audience:
                raise self._fail("audience", "must name the owner")
            if self.audience_keys is None:
                raise self._fail("audience_keys", "are required on a subset case")
            _check_audience_keys(self, self.audience_keys, frozenset(self.audience))
            for member in self.audience:
                held = sorted(k.version for k in self.audience_keys if k.member == member)
                # Each member holds the keys of versions case_key_version..n, no gap: the
                # first header's members the first version, a member added later every
                # version the case had by then.
                if held != list(range(self.case_key_version, self.case_key_version + len(held))) \
                        or not held:
                    raise self._fail("audience_keys", "must seal to each member of the "
                                     "audience every version from the header's on, without gap")
        if self.kind == "consult":
            # design §4.2: a consult carries no identity, so no trace of one either.
            for name in ("identity_version", "classes"):
                if getattr(self, name) is not None:
                    raise self._fail(name, "must be absent on a consult")
        elif self.identity_version is None:
            raise self._fail("identity_version", "is required on a case")

    @property
    def is_consult(self) -> bool:
        return self.kind == "consult"

    @property
    def is_subset(self) -> bool:
        """Whether only the members named in ``audience`` may read the case."""
        return self.audience is not None

    def reads(self, member: str) -> bool:
        """Whether ``member`` is in the case's audience (every core member when none)."""
        return self.audience is None or member in self.audience

    def keys_for(self, member: str) -> tuple[AudienceKey, ...]:
        """The sealed case keys this header carries for ``member`` (none: not a subset
        case, or not in its audience)."""
        return tuple(k for k in self.audience_keys or () if k.member == member)

    def _after_verify(self, envelope: Any, keys: list[VerifyKey]) -> None:
        """``owner`` must be among the verified signers."""
        if self.owner not in verified_signers(envelope, keys):
            raise SignatureError("case-header is not signed by its owner")


#: The fields an identity replacement may change (protocol.md §C.1, "Header versions"):
#: everything else is the first header's, so the case's key references, owner and
#: creation stay what every member verified.
REPLACEABLE = frozenset({"identity_version", "classes"})
#: The fields a widening may change (protocol.md §C.1, "Audience"): it adds members and
#: their sealed keys, nothing else.
WIDENABLE = frozenset({"audience", "audience_keys"})


def _changed(held: CaseHeader, new: CaseHeader) -> list[str]:
    before, after = held.to_json(), new.to_json()
    return [name for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)]


def check_replacement(held: CaseHeader, new: CaseHeader) -> str:
    """``new`` may replace ``held`` as the case's header (protocol.md §C.1): either an
    *identity rotation* or a *widening*, which it returns (``"identity"`` or
    ``"audience"``); otherwise :class:`ContextMismatchError` naming the field.

    * A widening changes ``audience`` and ``audience_keys`` only (:func:`check_widening`).
    * An identity rotation is on a case, not a consult; every field but
      ``identity_version`` and ``classes`` is unchanged; and ``classes`` is present, since
      a rotation exists to seal identity under new class keys.

    The version is each side's to judge against the one it holds (the server answers 409
    for another than current + 1, a client calls a gap or a step back server
    misbehaviour), and so is the signature (the owner of ``held`` must have signed)."""
    changed = _changed(held, new)
    if WIDENABLE & set(changed):
        check_widening(held, new)
        return "audience"
    if held.is_consult or new.is_consult:
        raise ContextMismatchError("a consult has no identity: its header is replaced only to "
                                   "widen its audience", details={"field": "kind"})
    for name in changed:
        if name not in REPLACEABLE:
            raise ContextMismatchError(f"a replacement header changes {name}",
                                       details={"field": name})
    if not new.classes:
        raise ContextMismatchError("a replacement header names the classes it seals",
                                   details={"field": "classes"})
    return "identity"


def added_members(held: CaseHeader, new: CaseHeader) -> tuple[str, ...]:
    """The members ``new``'s audience names and ``held``'s does not, in ``new``'s order."""
    before = set(held.audience or ())
    return tuple(m for m in new.audience or () if m not in before)


def check_widening(held: CaseHeader, new: CaseHeader) -> None:
    """``new`` widens the audience of the subset case ``held`` (protocol.md §C.1,
    "Audience"; ADR 0031): both are subset headers; nothing but ``audience`` and
    ``audience_keys`` changes; every member of ``held``'s audience stays, with every key
    it was sealed; at least one member is added; and every added key is for an added
    member.  A case without audience is read by the whole core already: it has nothing
    to widen.  :class:`ContextMismatchError` naming the field otherwise; whether the added
    members' keys reach the case's current version is the server's to check (it knows the
    version)."""
    if held.audience is None or new.audience is None:
        raise ContextMismatchError("only a subset case's audience is widened, and a widening "
                                   "keeps an audience", details={"field": "audience"})
    for name in _changed(held, new):
        if name not in WIDENABLE:
            raise ContextMismatchError(f"a widening header changes {name}",
                                       details={"field": name})
    if not set(held.audience) < set(new.audience):
        raise ContextMismatchError("a replacement header only widens the audience: it keeps "
                                   "every member and adds one", details={"field": "audience"})
    kept = {k.sealed: k for k in new.audience_keys or ()}
    for key in held.audience_keys or ():
        if kept.get(key.sealed) != key:
            raise ContextMismatchError("a widening header drops or changes a member's sealed "
                                       "key", details={"field": "audience_keys"})
    added = set(added_members(held, new))
    held_sealed = {k.sealed for k in held.audience_keys or ()}
    for key in new.audience_keys or ():
        if key.sealed not in held_sealed and key.member not in added:
            raise ContextMismatchError("a widening header seals a new key to a member it does "
                                       "not add", details={"field": "audience_keys"})


@dataclass(frozen=True, kw_only=True)
class Event(SignedObject):
    """One encrypted entry of a case's anonymous layer, signed by its author.

    ``seq`` and ``prev`` chain the events: ``prev`` is :func:`event_hash` of the
    previous event's envelope and is absent exactly when ``seq == 1``.
    """

    TYPE = "event"

    network: str
    case: str
    event: str
    author: str
    acting_user: str
    seq: int
    created: str
    case_key_version: int
    ciphertext: str
    prev: str | None = None
    status: str | None = None

    def check(self) -> None:
        if self.seq == 1 and self.prev is not None:
            raise self._fail("prev", "must be absent on the first event (seq 1)")
        if self.seq != 1 and self.prev is None:
            raise self._fail("prev", "is required when seq > 1")
        self._binary("ciphertext", min_bytes=AEAD_OVERHEAD, max_bytes=EVENT_CIPHERTEXT_MAX_BYTES)

    @classmethod
    def _before_verify(cls, envelope: Any) -> None:
        """Exactly one signature, the author's: one signature keeps :func:`event_hash`
        of an event unique -- nobody can change the hash that the next event's ``prev``
        commits to by adding a signature entry to the envelope."""
        if len(envelope["signatures"]) != 1:
            raise SignatureError("an event carries exactly one signature, its author's")

    def _after_verify(self, envelope: Any, keys: list[VerifyKey]) -> None:
        # verified_signers(envelope, keys), without taking the verified envelope apart again.
        if self.author not in ({s["keyid"] for s in envelope["signatures"]}
                               & {k.key_id for k in keys}):
            raise SignatureError("event is not signed by its author")


def event_hash(envelope: Mapping[str, Any]) -> bytes:
    """SHA-256(b"schakel/v1/event-hash" || canonical_json(envelope)): the value the
    next event's ``prev`` carries (protocol.md §C.3).  Hashes the envelope
    exactly as signed and stored, signatures included."""
    plain = thaw(envelope)
    schema.validate_envelope("event", plain)
    return event_hash_of(canonical_json(plain))


def event_hash_of(canonical: bytes) -> bytes:
    """:func:`event_hash` from the canonical bytes of an event envelope that already
    passed its schema (a verified event), so that a reader that keeps those bytes does
    not serialise the envelope twice."""
    return sha256(EVENT_HASH_DOMAIN + canonical)


def check_link(previous: Mapping[str, Any] | None, event: Event) -> None:
    """Check that ``event`` directly follows the event envelope ``previous``
    (``None``: ``event`` must be the first).  Raises
    :class:`ContextMismatchError` for a dropped, reordered, replayed or
    transplanted event.  Signatures are the caller's job."""
    if previous is None:
        if event.seq != 1:
            raise ContextMismatchError("event does not start the chain (seq must be 1)")
        return
    prev = thaw(previous)
    schema.validate_envelope("event", prev)
    signed = prev["signed"]
    if signed["network"] != event.network or signed["case"] != event.case:
        raise ContextMismatchError("event belongs to another case than its predecessor")
    if event.seq != signed["seq"] + 1:
        raise ContextMismatchError("event sequence number does not follow its predecessor")
    if event.prev != b64e(event_hash(prev)):
        raise ContextMismatchError("event does not commit to its predecessor")


def check_event_status(event: Event, plaintext: AnonymousEvent) -> None:
    """The cleartext ``status`` of ``event`` must agree with its decrypted
    ``plaintext``: present exactly for a ``status`` event with status ``open`` or
    ``closed``, with the same value (protocol.md §C.3).  Otherwise the author
    told the server something else than the members: ContextMismatchError."""
    expected = None
    if isinstance(plaintext, StatusChange) and plaintext.status in ("open", "closed"):
        expected = plaintext.status
    if event.status != expected:
        raise ContextMismatchError("event's cleartext status does not match its content")


@dataclass(frozen=True, kw_only=True)
class IdentityRecord(SignedObject):
    """One sealed disclosure class of a case, signed by the case owner."""

    TYPE = "identity-record"

    network: str
    case: str
    class_: str = alias("class")
    version: int
    ciphertext: str

    def check(self) -> None:
        self._binary("ciphertext", min_bytes=AEAD_OVERHEAD, max_bytes=IDENTITY_CIPHERTEXT_MAX_BYTES)


@dataclass(frozen=True, kw_only=True)
class GatedEnvelope(WireObject):
    """A class key sealed to a member and then to the server's gate key.

    Unsigned: it is uploaded by the owner in an HTTP-signed request, and the inner
    plaintext repeats ``{case, class, version}`` for the recipient to check.
    """

    TYPE = "gated-envelope"

    network: str
    case: str
    class_: str = alias("class")
    version: int
    recipient: str
    blob: str

    def check(self) -> None:
        self._binary("blob", min_bytes=2 * SEAL_OVERHEAD, max_bytes=GATED_BLOB_MAX_BYTES)


@dataclass(frozen=True, kw_only=True)
class CaseRekey(SignedObject):
    """A new version of a case's anonymous key, wrapped under the network's latest
    epoch key (protocol.md §C.11; ADR 0007).  Signed by the case owner or the
    coordinator.

    Why it exists: a removed member keeps the epoch keys it was sent, and so every case
    key wrapped under them.  After the coordinator distributed a new epoch to the
    remaining core, each open case gets a rekey; events written afterwards use the new
    version, which the removed member cannot unwrap.  The object names no signer: the
    verifier passes the owner's key (from the verified header) and the coordinator's
    keys, and accepts a signature by any of them.
    """

    TYPE = "case-rekey"

    network: str
    case: str
    case_key_version: int
    epoch: int
    acting_user: str
    at: Timestamp
    reason: str
    wrapped_case_key: str | None = None
    audience_keys: tuple[AudienceKey, ...] | None = nested(AudienceKey, many=True, default=None)

    def check(self) -> None:
        # Version 1 is the header's own case key: a rotation always makes version >= 2.
        if self.case_key_version < 2:
            raise self._fail("case_key_version", "must be at least 2 (version 1 is the header's)")
        # A subset case's rekey seals the new key to its audience, never under the epoch
        # key (protocol.md §C.11; ADR 0031): exactly one of the two.
        if (self.wrapped_case_key is None) == (self.audience_keys is None):
            raise self._fail("wrapped_case_key", "exactly one of wrapped_case_key and "
                             "audience_keys is present")
        if self.wrapped_case_key is not None:
            self._binary("wrapped_case_key", min_bytes=AEAD_OVERHEAD,
                         max_bytes=WRAPPED_KEY_MAX_BYTES)
        if self.audience_keys is not None:
            _check_audience_keys(self, self.audience_keys, None)
            if any(k.version != self.case_key_version for k in self.audience_keys):
                raise self._fail("audience_keys", "seal the rekey's own case_key_version")

    @property
    def recipients(self) -> frozenset[str]:
        """The members a subset case's rekey seals the new key to (empty otherwise)."""
        return frozenset(k.member for k in self.audience_keys or ())

    def key_for(self, member: str) -> AudienceKey | None:
        """The new key sealed to ``member``, if this (subset case's) rekey carries one."""
        return next((k for k in self.audience_keys or () if k.member == member), None)

    def unwrap(self, epoch_key: EpochKey) -> CaseKey:
        """The new case key, opened with the epoch key of ``epoch`` under the context
        ``{layer: case-key, version: case_key_version, object: epoch-<epoch>}``:
        DecryptionError for a wrong key or a wrap moved from another case or version
        (and for a subset case's rekey, which wraps nothing under the epoch key)."""
        if self.wrapped_case_key is None:
            raise DecryptionError("a subset case's rekey is not wrapped under an epoch key")
        return envelopes.unwrap_case_key(epoch_key, self.wrapped_case_key, network=self.network,
                                         case=self.case, epoch=self.epoch,
                                         version=self.case_key_version)


#: What an ``identity-purge`` follows: the person's erasure (AVG art. 17) or
#: rectification (AVG art. 16) of the case's identity (ADR 0034).
PURGE_KINDS = ("erasure", "rectification")


@dataclass(frozen=True, kw_only=True)
class IdentityPurge(SignedObject):
    """Every holder destroys the class keys and identity plaintext of ``case`` up to and
    including ``identity_version`` (protocol.md §C.12; ADR 0034).

    ``kind: erasure`` -- the case's identity is erased for good: signed by the case owner
    or the coordinator, ``identity_version`` is the case's current one, and no version
    is ever sealed or released again.  ``kind: rectification`` -- the owner sealed the
    corrected identity as a newer version (a replacement header); this one destroys the
    versions before it, and is signed by the owner only.  The verifier passes the keys
    allowed to sign (the owner's from the verified header, and for an erasure the
    coordinator's) and accepts any of them.
    """

    TYPE = "identity-purge"

    network: str
    case: str
    purge: str
    kind: str
    identity_version: int
    classes: tuple[str, ...]
    acting_user: str
    at: Timestamp
    reason: str

    def check(self) -> None:
        if self.kind not in PURGE_KINDS:
            raise self._fail("kind", f"must be one of {list(PURGE_KINDS)}")

    @property
    def is_erasure(self) -> bool:
        return self.kind == "erasure"


__all__ = [
    "BlindIndexToken", "AudienceKey", "CaseHeader", "REPLACEABLE", "WIDENABLE",
    "check_replacement", "check_widening", "added_members", "MAX_AUDIENCE", "MAX_AUDIENCE_KEYS",
    "Event",
    "IdentityRecord", "GatedEnvelope", "CaseRekey", "IdentityPurge", "PURGE_KINDS", "event_hash", "event_hash_of", "check_link", "check_event_status", "verified_signers", "EVENT_HASH_DOMAIN",
]
