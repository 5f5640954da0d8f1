"""Plaintexts of a case's encrypted layers (docs/parts/objects-cases.md §C.9, §C.10).

* The **anonymous layer**: one plaintext per event, a tagged union on ``kind``
  (:class:`Intake`, :class:`Analysis`, :class:`Action`, :class:`Feedback`,
  :class:`Note`, :class:`StatusChange`), parsed by :func:`parse_anonymous_event`.
  It never contains identity; the free-text fields each class lists in
  ``FREE_TEXT`` are additionally screened by the PII guard (``protocol.pii``),
  which the caller wires in — these objects only fix the shape.
* The **sealed identity**: one plaintext per default disclosure class
  (:class:`IdentityName`, :class:`IdentityAddress`, :class:`IdentityContact`,
  :class:`IdentityOfficial`, :class:`IdentityCare`) and :class:`IdentityOther`
  for the extra classes a network policy may define; :func:`identity_plaintext_for`
  picks the right one.

Neither is signed: a plaintext travels only inside an AEAD ciphertext whose
associated data binds it to its case (protocol/envelopes.py), and inside the
signed event or identity record carrying that ciphertext.

This module also holds two small helpers the other object modules share
(:class:`FrozenWireObject`, :func:`invalid`, :func:`check_b64`).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from protocol import schema
from protocol.canonical import canonical_json
from protocol.encoding import b64d
from protocol.errors import MalformedError
from protocol.objects.base import WireObject

T = TypeVar("T", bound="WireObject")

# --------------------------------------------------------------------------- shared helpers


def invalid(obj_type: str, field: str, problem: str) -> MalformedError:
    """A :class:`MalformedError` naming the object type and field, never the value.

    Same shape as ``protocol.schema.validate``'s errors, plus ``details.field``.
    """
    text = f"{field}: {problem}"
    return MalformedError(f"invalid {obj_type}: {text}",
                          details={"type": obj_type, "field": field, "problems": [text]})


def check_b64(obj_type: str, field: str, text: Any, *, min_bytes: int, max_bytes: int) -> bytes:
    """Decode a base64url field strictly (canonical form) and bound its decoded length."""
    try:
        data = b64d(text, max_length=max_bytes, what=field)
    except MalformedError as exc:
        raise invalid(obj_type, field, exc.message.split(": ", 1)[-1]) from None
    if len(data) < min_bytes:
        raise invalid(obj_type, field, f"shorter than {min_bytes} bytes")
    return data


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


def _freeze(value: Any) -> Any:
    if isinstance(value, WireObject):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def thaw(value: Any) -> Any:
    """Plain JSON (dicts and lists) from a frozen value, e.g. to hand an embedded
    envelope to ``protocol.signing``."""
    if isinstance(value, WireObject):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: JSON keys (at any depth) of multi-line free text: tab, CR and LF allowed.
MULTILINE_FIELDS = frozenset({"summary", "text", "description", "informal_not_possible",
                              "reason", "concern"})
#: JSON keys that hold timestamps in the objects of this section.
TIMESTAMP_FIELDS = frozenset({"created", "at", "updated"})


def _json_path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def check_strict(obj_type: str, value: Any, path: list[Any] | None = None,
                 multiline: bool = False) -> None:
    """Rules a JSON Schema does not express (the same as protocol/objects/network.py):

    * no control characters in strings or keys, except tab/CR/LF in the
      ``MULTILINE_FIELDS`` (Python's ``re`` lets a pattern's ``$`` match before a
      trailing newline, so the schema alone would accept ``"<id>\\n"``);
    * no floats: JSON Schema counts ``1.0`` as an integer, we do not;
    * timestamps (``TIMESTAMP_FIELDS`` at the top level) are real calendar times.
    """
    path = path or []
    if isinstance(value, str):
        if (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value):
            raise invalid(obj_type, _json_path(path), "contains control characters")
    elif isinstance(value, float):
        raise invalid(obj_type, _json_path(path), "must be an integer")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_strict(obj_type, item, [*path, i], multiline)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if _CONTROL.search(key):
                raise invalid(obj_type, _json_path(path), "has a field name with control characters")
            if not path and key in TIMESTAMP_FIELDS and isinstance(item, str):
                try:
                    datetime.datetime.strptime(item, TIMESTAMP_FORMAT)
                except ValueError:
                    raise invalid(obj_type, key, "is not a valid UTC calendar time") from None
            check_strict(obj_type, item, [*path, key], key in MULTILINE_FIELDS)


class FrozenWireObject(WireObject):
    """A :class:`WireObject` that is deeply immutable and strict.

    Lists become tuples and JSON objects read-only mappings before validation,
    so a validated object cannot be changed afterwards and
    ``from_json(to_json(x)) == x`` holds even when ``x`` was built with lists.
    After the schema, :func:`check_strict` runs, then ``check()``.
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, (list, tuple, Mapping)) and not isinstance(value, WireObject):
                object.__setattr__(self, f.name, _freeze(value))
        as_json = self.to_json()
        schema.validate(self.TYPE, as_json)
        check_strict(self.TYPE, as_json)
        self.check()


#: XChaCha20-Poly1305 nonce + tag: what an AEAD ciphertext adds to its plaintext.
AEAD_OVERHEAD = 24 + 16

# --------------------------------------------------------------------------- vocabulary

#: Problem domains (objects-cases.md §C.10.1), after the report's description of
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


class AnonymousEvent(FrozenWireObject):
    """Base of the anonymous-event variants; ``KIND`` is the ``kind`` discriminator.

    ``AnonymousEvent.from_json`` dispatches on ``kind``; a variant's ``from_json``
    refuses a value of another kind.
    """

    TYPE = "anonymous-event"
    KIND: ClassVar[str] = ""
    #: Free-text fields the PII guard screens (protocol.pii.scan), in JSON names.
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
    def from_json(cls: type[T], value: Any) -> T:
        if cls is AnonymousEvent:
            return parse_anonymous_event(value)  # type: ignore[return-value]
        schema.validate("anonymous-event", value)
        if value["kind"] != cls.KIND:  # type: ignore[attr-defined]
            raise invalid("anonymous-event", "kind",
                          f"must be {cls.KIND!r} for {cls.__name__}")  # type: ignore[attr-defined]
        return super().from_json(value)  # type: ignore[misc]

    def free_text(self) -> dict[str, str]:
        """The present free-text fields, by JSON name, for the PII guard."""
        return {name: getattr(self, name) for name in self.FREE_TEXT
                if getattr(self, name) is not None}


@dataclass(frozen=True, kw_only=True)
class Intake(AnonymousEvent):
    """The first event of a case: who (in bands), where (neighbourhood), what."""

    KIND = "intake"
    FREE_TEXT = ("neighbourhood", "summary")

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

    text: str
    domains: tuple[str, ...] | None = None
    severity: str | None = None


@dataclass(frozen=True, kw_only=True)
class Action(AnonymousEvent):
    """An agreed action (report §4.4.1: informal help preceding, complementing,
    co-partnering with or following formal help)."""

    KIND = "action"
    FREE_TEXT = ("description", "informal_not_possible")

    description: str
    help_type: str
    relation: str
    by: str
    informal_not_possible: str | None = None
    supporting_professional: str | None = None

    def check(self) -> None:
        # objects-cases.md §C.10: the reason informal help was impossible only
        # makes sense for formal or combined help.  Whether it is *required* is
        # the network policy's decision (protocol.policy), not the object's.
        if self.help_type == "informal" and self.informal_not_possible is not None:
            raise invalid(self.TYPE, "informal_not_possible",
                          "must be absent when help_type is informal")


@dataclass(frozen=True, kw_only=True)
class Feedback(AnonymousEvent):
    """How an action worked out."""

    KIND = "feedback"
    FREE_TEXT = ("text",)

    text: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class Note(AnonymousEvent):
    KIND = "note"
    FREE_TEXT = ("text",)

    text: str


@dataclass(frozen=True, kw_only=True)
class StatusChange(AnonymousEvent):
    """Opening, closing or referring the case (kind ``status``)."""

    KIND = "status"
    FREE_TEXT = ("reason",)

    status: str
    reason: str


ANONYMOUS_EVENT_KINDS: Mapping[str, type[AnonymousEvent]] = MappingProxyType(
    {c.KIND: c for c in (Intake, Analysis, Action, Feedback, Note, StatusChange)})


def parse_anonymous_event(value: Any) -> AnonymousEvent:
    """Parse a decrypted event plaintext into its variant; MalformedError otherwise
    (including an unknown ``kind``)."""
    schema.validate("anonymous-event", value)
    return ANONYMOUS_EVENT_KINDS[value["kind"]].from_json(value)


# --------------------------------------------------------------------------- sealed identity


class IdentityPlaintext(FrozenWireObject):
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
            raise invalid(self.TYPE, "bsn", "fails the 11-proef")
        if self.date_of_birth is not None:
            try:
                datetime.date.fromisoformat(self.date_of_birth)
            except ValueError:
                raise invalid(self.TYPE, "date_of_birth", "is not a calendar date") from None


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityCare(IdentityPlaintext):
    """GP, carers (mantelzorgers) and other contact persons; each person is
    ``{name, relation, phone?}``."""

    TYPE = "identity-care"
    CLASS = "care"

    gp: str | None = None
    carers: tuple[Mapping[str, str], ...] | None = None
    contacts: tuple[Mapping[str, str], ...] | None = None


_OTHER_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CLASS_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: Bounds of :class:`IdentityOther` (mirrors identity-record.json#/$defs/other_plaintext).
OTHER_MAX_FIELDS = 20
OTHER_MAX_CHARS = 500


@dataclass(frozen=True, kw_only=True, repr=False)
class IdentityOther(IdentityPlaintext):
    """Plaintext of a disclosure class a network policy adds beyond the defaults:
    1..20 string fields, names ``[a-z][a-z0-9_]{0,31}``, values 1..500 characters.

    Validated here rather than by a schema file of its own; the same rule is
    ``identity-record.json#/$defs/other_plaintext``.
    """

    TYPE = "identity-other"

    fields: Mapping[str, str]

    def __post_init__(self) -> None:
        value = self.fields
        if not isinstance(value, Mapping):
            raise invalid(self.TYPE, "(root)", "must be of type object")
        if not 1 <= len(value) <= OTHER_MAX_FIELDS:
            raise invalid(self.TYPE, "(root)", f"must have 1..{OTHER_MAX_FIELDS} fields")
        for key, item in value.items():
            if not isinstance(key, str) or not _OTHER_KEY.fullmatch(key):
                raise invalid(self.TYPE, "(root)", "a field name has the wrong format")
            if not isinstance(item, str):
                raise invalid(self.TYPE, key, "must be of type string")
            if not 1 <= len(item) <= OTHER_MAX_CHARS:
                raise invalid(self.TYPE, key, f"must be 1..{OTHER_MAX_CHARS} characters")
            if _CONTROL_BUT_LINES.search(item):
                raise invalid(self.TYPE, key, "contains control characters")
        object.__setattr__(self, "fields", MappingProxyType(dict(value)))
        check_plaintext_size(self.TYPE, self.to_json(), self.MAX_BYTES)

    def to_json(self) -> dict[str, Any]:
        return dict(self.fields)

    @classmethod
    def from_json(cls: type[T], value: Any) -> T:
        if not isinstance(value, Mapping):
            raise invalid("identity-other", "(root)", "must be of type object")
        return cls(fields=value)  # type: ignore[call-arg]


IDENTITY_CLASSES: Mapping[str, type[IdentityPlaintext]] = MappingProxyType(
    {c.CLASS: c for c in (IdentityName, IdentityAddress, IdentityContact,  # type: ignore[misc]
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
    "identity_plaintext_for", "bsn_valid",
    "FrozenWireObject", "invalid", "check_b64", "check_plaintext_size", "check_strict", "thaw",
    "AEAD_OVERHEAD", "MULTILINE_FIELDS", "TIMESTAMP_FIELDS",
]
