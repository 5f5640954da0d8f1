"""Plaintexts of a case's encrypted layers (docs/protocol.md §C.9, §C.10).

* The **anonymous layer**: one plaintext per event, a tagged union on ``kind``
  (:class:`Intake`, :class:`Analysis`, :class:`Action`, :class:`Feedback`,
  :class:`Note`, :class:`StatusChange`), parsed by :func:`parse_anonymous_event`.
  It never contains identity; the free-text fields each class lists in
  ``FREE_TEXT`` are additionally screened by the PII guard (``schakel.protocol.pii``),
  which the caller wires in — these objects only fix the shape.
* The **sealed identity**: one plaintext per default disclosure class
  (:class:`IdentityName`, :class:`IdentityAddress`, :class:`IdentityContact`,
  :class:`IdentityOfficial`, :class:`IdentityCare`) and :class:`IdentityOther`
  for the extra classes a network policy may define; :func:`identity_plaintext_for`
  picks the right one.

Neither is signed: a plaintext travels only inside an AEAD ciphertext whose
associated data binds it to its case (protocol/envelopes.py), and inside the
signed event or identity record carrying that ciphertext.  Both are
:class:`~schakel.protocol.objects.base.WireObject` classes; each also checks that its
canonical JSON fits the ciphertext that carries it (:func:`check_plaintext_size`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from schakel.protocol import schema
from schakel.protocol.canonical import canonical_json
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.base import FrozenMap, WireObject, invalid


def check_plaintext_size(obj_type: str, value: Any, limit: int) -> None:
    """A plaintext must fit the ciphertext that will carry it: its canonical JSON
    (which also refuses lone surrogates) is at most ``limit`` bytes.  A schema
    bounds characters; this bounds the UTF-8 bytes actually encrypted."""
    try:
        size = len(canonical_json(value))
    except MalformedError:
        raise invalid(obj_type, "(root)", "is not representable as canonical JSON") from None
    if size > limit:
        raise invalid(obj_type, "(root)", f"canonical JSON is larger than {limit} bytes")


#: XChaCha20-Poly1305 nonce + tag: what an AEAD ciphertext adds to its plaintext.
AEAD_OVERHEAD = 24 + 16

# --------------------------------------------------------------------------- vocabulary

#: Problem domains (protocol.md §C.10.1), after the report's description of
#: the target group "sociaal kwetsbare burgers" (§4.1) and of OGGZ problems (§4.2.1).
PROBLEM_DOMAINS: tuple[str, ...] = (
    "physical-disability",      # lichamelijke beperking
    "chronic-mental-illness",   # chronisch psychische problemen
    "intellectual-disability",  # verstandelijke beperking
    "psychosocial",             # psychosociale problemen
    "addiction",                # verslavingsproblemen
    "financial",                # materiële problemen / schulden
    "parenting",                # opvoed- en opgroeiproblemen
    "domestic-violence",        # huiselijk geweld
    "self-care",                # problemen met zelfzorg
    "self-neglect",             # ernstige zelfverwaarlozing (OGGZ)
    "housing-pollution",        # vervuiling / woningvervuiling (OGGZ)
    "nuisance",                 # overlast (OGGZ)
    "public-aggression",        # publieke agressie (OGGZ)
    "eviction",                 # gedwongen uithuisplaatsing (OGGZ)
    "loneliness",               # eenzaamheid / sociaal isolement (§4.4.1, §4.5.2)
)
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "acute")
AGE_BANDS: tuple[str, ...] = ("0-17", "18-29", "30-44", "45-54", "55-64", "65-74", "75-84", "85+")

# --------------------------------------------------------------------------- anonymous layer


class AnonymousEvent(WireObject):
    """Base of the anonymous-event variants; ``KIND`` is the ``kind`` discriminator.

    ``AnonymousEvent.from_json`` dispatches on ``kind``; a variant's ``from_json``
    refuses a value of another kind.
    """

    TYPE = "anonymous-event"
    KIND: ClassVar[str] = ""
    #: Free-text fields the PII guard screens (schakel.protocol.pii.scan), in JSON names.
    FREE_TEXT: ClassVar[tuple[str, ...]] = ()
    #: Largest canonical plaintext: an event ciphertext is at most 64 KiB.
    MAX_BYTES: ClassVar[int] = 64 * 1024 - AEAD_OVERHEAD

    def __post_init__(self) -> None:
        super().__post_init__()
        check_plaintext_size(self.TYPE, self.to_json(), self.MAX_BYTES)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.KIND}
        out.update(super().to_json())
        return out

    @classmethod
    def from_json(cls, value: Any) -> Self:
        schema.validate("anonymous-event", value)
        variant = ANONYMOUS_EVENT_KINDS[value["kind"]]
        if not issubclass(variant, cls):        # AnonymousEvent itself: any kind
            raise invalid("anonymous-event", "kind", f"must be {cls.KIND!r} for {cls.__name__}")
        # Every variant's schema is anonymous-event's: the value has just passed it.
        built: Self = variant._from_valid_json(value)
        return built

    def free_text(self) -> dict[str, str]:
        """The present free-text fields, by JSON name, for the PII guard."""
        return {name: getattr(self, name) for name in self.FREE_TEXT
                if getattr(self, name) is not None}


@dataclass(frozen=True, kw_only=True)
class Intake(AnonymousEvent):
    """The first event of a case: who (in bands), where (neighbourhood), what."""

    KIND = "intake"
    FREE_TEXT = ("neighbourhood", "summary")
    MULTILINE = frozenset({"summary"})

    age_band: str
    neighbourhood: str
    domains: tuple[str, ...]
    severity: str
    care_status: str
    source: str
    complex: bool
    summary: str


@dataclass(frozen=True, kw_only=True)
class Analysis(AnonymousEvent):
    """The core's analysis; may re-assess domains and severity."""

    KIND = "analysis"
    FREE_TEXT = ("text",)
    MULTILINE = frozenset(FREE_TEXT)

    text: str
    domains: tuple[str, ...] | None = None
    severity: str | None = None


@dataclass(frozen=True, kw_only=True)
class Action(AnonymousEvent):
    """An agreed action (report §4.4.1: informal help preceding, complementing,
    co-partnering with or following formal help)."""

    KIND = "action"
    FREE_TEXT = ("description", "informal_not_possible")
    MULTILINE = frozenset(FREE_TEXT)

    description: str
    help_type: str
    relation: str
    by: str
    informal_not_possible: str | None = None
    supporting_professional: str | None = None

    def check(self) -> None:
        # protocol.md §C.10: the reason informal help was impossible only
        # makes sense for formal or combined help.  Whether it is *required* is
        # the network policy's decision (schakel.protocol.policy), not the object's.
        if self.help_type == "informal" and self.informal_not_possible is not None:
            raise self._fail("informal_not_possible", "must be absent when help_type is informal")


@dataclass(frozen=True, kw_only=True)
class Feedback(AnonymousEvent):
    """How an action worked out."""

    KIND = "feedback"
    FREE_TEXT = ("text",)
    MULTILINE = frozenset(FREE_TEXT)

    text: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class Note(AnonymousEvent):
    KIND = "note"
    FREE_TEXT = ("text",)
    MULTILINE = frozenset(FREE_TEXT)

    text: str


@dataclass(frozen=True, kw_only=True)
class StatusChange(AnonymousEvent):
    """Opening, closing or referring the case (kind ``status``)."""

    KIND = "status"
    FREE_TEXT = ("reason",)
    MULTILINE = frozenset(FREE_TEXT)

    status: str
    reason: str


ANONYMOUS_EVENT_KINDS: Mapping[str, type[AnonymousEvent]] = FrozenMap(
    {c.KIND: c for c in (Intake, Analysis, Action, Feedback, Note, StatusChange)})


def parse_anonymous_event(value: Any) -> AnonymousEvent:
    """Parse a decrypted event plaintext into its variant; MalformedError otherwise
    (including an unknown ``kind``)."""
    return AnonymousEvent.from_json(value)


# --------------------------------------------------------------------------- sealed identity


class IdentityPlaintext(WireObject):
    """Base of the identity plaintexts; ``CLASS`` is the default disclosure class.

    The ``repr`` names the fields present, never their values, so a plaintext
    that ends up in a log line or a traceback does not disclose the person.
    """

    CLASS: ClassVar[str | None] = None
    #: Largest canonical plaintext: an identity ciphertext is at most 16 KiB.
    MAX_BYTES: ClassVar[int] = 16 * 1024 - AEAD_OVERHEAD

    def __post_init__(self) -> None:
        super().__post_init__()
        check_plaintext_size(self.TYPE, self.to_json(), self.MAX_BYTES)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<identity: {', '.join(sorted(self.to_json()))}>)"


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityName(IdentityPlaintext):
    TYPE = "identity-name"
    CLASS = "name"

    given_names: str
    family_name: str
    initials: str | None = None


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityAddress(IdentityPlaintext):
    TYPE = "identity-address"
    CLASS = "address"

    street: str
    house_number: str
    postcode: str
    city: str


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityContact(IdentityPlaintext):
    """At least one of ``phone`` and ``email``."""

    TYPE = "identity-contact"
    CLASS = "contact"

    phone: str | None = None
    email: str | None = None


def bsn_valid(bsn: str) -> bool:
    """The BSN 11-proef: 9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 (mod 11); all zeros is
    not a BSN."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit() or bsn == "000000000":
        return False
    digits = [int(c) for c in bsn]
    total = sum(w * d for w, d in zip(range(9, 1, -1), digits[:8])) - digits[8]
    return total % 11 == 0


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityOfficial(IdentityPlaintext):
    """At least one of ``bsn`` and ``date_of_birth`` (some people concerned have
    no BSN)."""

    TYPE = "identity-official"
    CLASS = "official"

    bsn: str | None = None
    date_of_birth: str | None = None

    def check(self) -> None:
        if self.bsn is not None and not bsn_valid(self.bsn):
            raise self._fail("bsn", "fails the 11-proef")
        if self.date_of_birth is not None:
            try:
                datetime.date.fromisoformat(self.date_of_birth)
            except ValueError:
                raise self._fail("date_of_birth", "is not a calendar date") from None


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityCare(IdentityPlaintext):
    """GP, carers (mantelzorgers) and other contact persons; each person is
    ``{name, relation, phone?}``."""

    TYPE = "identity-care"
    CLASS = "care"

    gp: str | None = None
    carers: tuple[Mapping[str, str], ...] | None = None
    contacts: tuple[Mapping[str, str], ...] | None = None


_CLASS_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: Bounds of :class:`IdentityOther` (identity-record.json#/$defs/other_plaintext).
OTHER_MAX_FIELDS = 20
OTHER_MAX_CHARS = 500


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityOther(IdentityPlaintext):
    """Plaintext of a disclosure class a network policy adds beyond the defaults:
    1..20 string fields, names ``[a-z][a-z0-9_]{0,31}``, values 1..500 characters
    that may span lines.  Its JSON is the flat ``fields`` map, validated against
    ``identity-record.json#/$defs/other_plaintext``."""

    TYPE = "identity-other"

    fields: Mapping[str, str]

    @classmethod
    def _validate_json(cls, value: Any) -> None:
        schema.validate_def("identity-record", "other_plaintext", value)

    def _is_multiline(self, key: str) -> bool:
        return True

    def to_json(self) -> dict[str, Any]:
        return dict(self.fields) if isinstance(self.fields, Mapping) else self.fields

    @classmethod
    def from_json(cls, value: Any) -> Self:
        cls._validate_json(value)
        return cls(fields=value)


IDENTITY_CLASSES: Mapping[str, type[IdentityPlaintext]] = FrozenMap(
    {c.CLASS: c for c in (IdentityName, IdentityAddress, IdentityContact,
                          IdentityOfficial, IdentityCare)})


def identity_plaintext_for(class_name: str, value: Any, *,
                           allowed: Iterable[str] | None = None) -> IdentityPlaintext:
    """Parse the decrypted plaintext of disclosure class ``class_name``.

    Default classes get their own type; any other well-formed class name gets
    :class:`IdentityOther`.  ``allowed`` (the classes of the network's policy)
    makes a class outside it a :class:`MalformedError`, as is a malformed name.
    """
    if not isinstance(class_name, str) or not _CLASS_NAME.fullmatch(class_name):
        raise invalid("identity", "class", "is not a disclosure class name")
    if allowed is not None and class_name not in set(allowed):
        raise invalid("identity", "class", "is not a disclosure class of this network")
    kind = IDENTITY_CLASSES.get(class_name, IdentityOther)
    return kind.from_json(value)


__all__ = [
    "PROBLEM_DOMAINS", "SEVERITIES", "AGE_BANDS",
    "AnonymousEvent", "Intake", "Analysis", "Action", "Feedback", "Note", "StatusChange",
    "ANONYMOUS_EVENT_KINDS", "parse_anonymous_event",
    "IdentityPlaintext", "IdentityName", "IdentityAddress", "IdentityContact",
    "IdentityOfficial", "IdentityCare", "IdentityOther", "IDENTITY_CLASSES",
    "identity_plaintext_for", "bsn_valid", "check_plaintext_size", "AEAD_OVERHEAD",
]
