"""The one base for wire objects: frozen, keyword-only dataclasses that validate
when built (style.md: an invalid object cannot exist).

A subclass of :class:`WireObject` sets ``TYPE`` (its schema,
``protocol/schemas/<TYPE>.json``) and declares fields named like the JSON keys; a
JSON key that is a Python keyword or would shadow a method is declared with
:func:`alias`.  A nested part of an object (``coordinator``, ``policy.retention``,
``consent.grantees``...) is a :class:`Part`, validated against a ``$defs`` entry
(``<TYPE>.json#/$defs/<DEF>``) with :func:`schakel.protocol.schema.validate_def`; a field
holding one (or a tuple of them) is declared with :func:`nested`.

Building an object, from Python or from JSON, does in this order:

1. lists become tuples and JSON objects :class:`FrozenMap`, so a built object cannot
   be changed through a list it holds and ``from_json(to_json(x)) == x``;
2. the JSON form is validated against the schema.  ``schakel.protocol.schema`` asserts that
   anchored patterns match the whole string, that an integer is not ``1.0`` and that
   a timestamp is a real calendar time, for objects and parts alike;
3. nested parts given as plain JSON are built into their :class:`Part` class (which
   runs its own checks), then ``_normalise()`` converts other values (subclasses);
4. no string or key contains a control character (U+0000..U+001F, U+007F), except
   tab, CR and LF in the multi-line free-text fields a class names in ``MULTILINE``;
5. ``check()``: rules a schema cannot express (cross-field rules, decoded sizes).

Every refusal is a :class:`~schakel.protocol.errors.MalformedError` naming the object (or
part) and the JSON path, never the value.  Signed objects are :class:`SignedObject`
subclasses, the only ones with ``sign`` (so signing an unsigned object is a type error);
they travel in envelopes (``schakel.protocol.signing``), and ``from_envelope`` verifies
first and only then builds the object ("verify before you believe").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from schakel.protocol import schema, signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import Signer, VerifyKey
from schakel.protocol.encoding import b64d
from schakel.protocol.errors import MalformedError, SignatureError

_V = TypeVar("_V")

#: A ``str`` field holding an RFC 3339 UTC timestamp (``common.json#/$defs/timestamp``).
Timestamp = str
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --------------------------------------------------------------------------- values


class FrozenMap(Mapping[str, _V]):
    """An immutable, hashable ``str -> value`` mapping (policy classes, error details,
    identity maps, embedded envelopes)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, _V] | Iterable[tuple[str, _V]] = ()) -> None:
        self._data: dict[str, _V] = dict(data)

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


#: Leaf types that freeze and thaw return unchanged (checked by exact type first: the
#: isinstance checks against the Mapping ABC below are the slow part of both).
_LEAVES = frozenset({str, int, bool, float, type(None)})


def freeze(value: Any) -> Any:
    """``value`` with lists as tuples and JSON objects as :class:`FrozenMap`, deeply."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, (WireObject, FrozenMap)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return FrozenMap((k, freeze(v)) for k, v in value.items())
    return value


def thaw(value: Any) -> Any:
    """Plain JSON (dicts and lists) from a frozen value or wire object, e.g. to hand an
    embedded envelope to ``schakel.protocol.signing``."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict or kind is FrozenMap:
        return {k: v if type(v) in _LEAVES else thaw(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _LEAVES else thaw(v) for v in value]
    if isinstance(value, WireObject):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


def invalid(obj_type: str, field: str, problem: str, *, where: str | None = None) -> MalformedError:
    """A :class:`MalformedError` naming the object (``where``, default ``obj_type``) and
    the field, never the value; the same shape as ``schakel.protocol.schema``'s errors."""
    text = f"{field}: {problem}"
    return MalformedError(f"invalid {where or obj_type}: {text}",
                          details={"type": obj_type, "field": field, "problems": [text]})


# --------------------------------------------------------------------------- timestamps


def utc(moment: object, what: str = "timestamp") -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is refused (the protocol never
    guesses a time zone)."""
    if not isinstance(moment, datetime):
        raise MalformedError(f"{what}: expected a datetime, got {type(moment).__name__}",
                             details={"field": what})
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MalformedError(f"{what}: datetime must be timezone-aware (UTC)",
                             details={"field": what})
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime, what: str = "timestamp") -> Timestamp:
    """An aware datetime in wire form, floored to whole seconds."""
    m = utc(moment, what)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}"
            f"T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z")


def parse_timestamp(text: Timestamp) -> datetime:
    """A validated timestamp field as an aware UTC datetime."""
    if type(text) is str and _TIMESTAMP_DIGITS.fullmatch(text):
        # What strptime(TIMESTAMP_FORMAT) reads from these fixed-width digits, without
        # its per-call parsing machinery; a day or hour out of range falls through to
        # strptime, which refuses it in its own words.
        try:
            return datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                            int(text[14:16]), int(text[17:19]), tzinfo=UTC)
        except ValueError:
            pass
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


_TIMESTAMP_DIGITS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)


# --------------------------------------------------------------------------- objects


class WireObject:
    """Mixin for ``@dataclass(frozen=True, kw_only=True)`` wire objects (module docstring)."""

    TYPE: ClassVar[str]
    #: True on :class:`SignedObject`: ``to_json`` carries ``"type": TYPE``.
    SIGNED: ClassVar[bool] = False
    #: Unsigned objects that still carry ``"type": TYPE`` (sealed payloads).
    TYPED: ClassVar[bool] = False
    #: JSON keys (at any depth) whose strings may contain tab, CR and LF.
    MULTILINE: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for f in _fields(type(self)):
            value = getattr(self, f.name)
            if type(value) in _LEAVES:
                continue
            frozen = freeze(value)
            if frozen is not value:
                object.__setattr__(self, f.name, frozen)
        validated = _JUST_VALIDATED.get()
        if validated is not None and validated[0] is type(self):
            # Built by from_json of a flat class from JSON that has just passed this very
            # schema: that JSON is this object's JSON form (nothing in step 3 changes a
            # flat object), so step 2 has been done and step 4 reads it.
            _JUST_VALIDATED.set(None)
            self._no_control(validated[1], [], False)
            self.check()
            return
        plain = self.to_json()
        self._validate_json(plain)
        if not _is_flat(type(self)):
            self._build_nested()
            self._normalise()
            plain = self.to_json()
        # A flat class (no nested parts, no _normalise) has nothing that could change its
        # JSON form between the two steps: the JSON just validated is the JSON to check.
        self._no_control(plain, [], False)
        self.check()

    # hooks --------------------------------------------------------------------

    @classmethod
    def _where(cls) -> str:
        """How errors name this object."""
        return cls.TYPE

    @classmethod
    def _validate_json(cls, value: Any) -> None:
        schema.validate(cls.TYPE, value)

    def _normalise(self) -> None:
        """Convert validated raw values into their typed form (subclasses)."""

    def _is_multiline(self, key: str) -> bool:
        return key in self.MULTILINE

    def check(self) -> None:
        """Semantic rules beyond the schema; raise :meth:`_fail`.  Default: none."""

    # helpers for checks ---------------------------------------------------------

    def _fail(self, field: str, problem: str) -> MalformedError:
        return invalid(self.TYPE, field, problem, where=self._where())

    def _binary(self, name: str, *, length: int | None = None, min_bytes: int = 0,
                max_bytes: int | None = None) -> bytes:
        """Field ``name`` decoded as canonical unpadded base64url, of exactly ``length``
        or ``min_bytes..max_bytes`` bytes."""
        try:
            data = b64d(getattr(self, name), length=length, max_length=max_bytes, what=name)
        except MalformedError as exc:
            raise self._fail(name, exc.message.split(": ", 1)[-1]) from None
        if len(data) < min_bytes:
            raise self._fail(name, f"shorter than {min_bytes} bytes")
        return data

    # building -------------------------------------------------------------------

    def _build_nested(self) -> None:
        """Nested parts given as plain JSON become their wire objects (and run their checks)."""
        for f in _fields(type(self)):
            kind = f.metadata.get("wire")
            value = getattr(self, f.name)
            if kind is None or value is None:
                continue
            if f.metadata.get("many"):
                if any(not isinstance(v, kind) for v in value):
                    built = tuple(v if isinstance(v, kind) else kind.from_json(thaw(v)) for v in value)
                    object.__setattr__(self, f.name, built)
            elif not isinstance(value, kind):
                object.__setattr__(self, f.name, kind.from_json(thaw(value)))

    def _no_control(self, value: Any, path: list[Any], multiline: bool) -> None:
        if type(value) is dict and not multiline and not self.MULTILINE and \
                _no_control_flat(value):
            return
        if isinstance(value, str):
            if (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value):
                raise self._fail(schema.json_path(path), "contains control characters")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._no_control(item, [*path, i], multiline)
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or _CONTROL.search(key):
                    raise self._fail(schema.json_path(path), "has a field name that is not "
                                     "a string without control characters")
                kind = type(item)
                if kind is int or kind is bool or item is None:
                    continue                    # nothing to check (as the call below)
                if kind is str:                 # the call below, inline
                    if (_CONTROL_BUT_LINES if self._is_multiline(key) else _CONTROL
                            ).search(item):
                        raise self._fail(schema.json_path([*path, key]),
                                         "contains control characters")
                    continue
                self._no_control(item, [*path, key], self._is_multiline(key))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.SIGNED or self.TYPED:
            out["type"] = self.TYPE
        for name, key in _json_names(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            out[key] = value if type(value) in _LEAVES else thaw(value)
        return out

    @classmethod
    def from_json(cls, value: Any) -> Self:
        """Validate ``value`` against the schema, then build the object."""
        cls._validate_json(value)
        return cls._from_valid_json(value)

    @classmethod
    def _from_valid_json(cls, value: Any) -> Self:
        """:meth:`from_json` of ``value`` that has just passed this class's schema."""
        kwargs: dict[str, Any] = {}
        for f in _fields(cls):
            key = f.metadata.get("json", f.name)
            if key in value:
                kwargs[f.name] = _from_json(f, value[key])
        if not _is_flat(cls):
            return cls(**kwargs)
        token = _JUST_VALIDATED.set((cls, value))
        try:
            return cls(**kwargs)
        finally:
            _JUST_VALIDATED.reset(token)


#: (class, JSON) while :meth:`WireObject._from_valid_json` builds a flat object from JSON
#: that has just passed the class's schema; ``__post_init__`` takes it (and clears it) so
#: the same JSON is not validated twice.  A context variable: each thread has its own.
_JUST_VALIDATED: ContextVar[tuple[type, Any] | None] = ContextVar("just_validated",
                                                                  default=None)


def _no_control_flat(value: dict[str, Any]) -> bool:
    """Whether ``value`` is a JSON object of scalars with no control character in a key
    or a string: one regex scan of them all (keys and strings joined by a space, which
    the pattern does not match).  False also when a member is an object or an array:
    the caller then walks it, and finds the path of what it refuses."""
    texts: list[str] = []
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            texts.append(item)
        elif not (kind is int or kind is bool or item is None):
            return False
        if type(key) is not str:
            return False
        texts.append(key)
    return _CONTROL.search(" ".join(texts)) is None


# Per-class facts, computed once: dataclasses.fields() builds a new tuple on every call.
_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}
_JSON_NAMES: dict[type, tuple[tuple[str, str], ...]] = {}
_FLAT: dict[type, bool] = {}


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    out = _FIELDS.get(cls)
    if out is None:
        out = _FIELDS[cls] = dataclasses.fields(cls)
    return out


def _json_names(cls: type) -> tuple[tuple[str, str], ...]:
    """(Python name, JSON key) of every field of ``cls``."""
    out = _JSON_NAMES.get(cls)
    if out is None:
        out = _JSON_NAMES[cls] = tuple((f.name, f.metadata.get("json", f.name))
                                       for f in _fields(cls))
    return out


def _is_flat(cls: type) -> bool:
    """Whether ``cls`` has no nested-part fields and does not override ``_normalise`` or
    ``_build_nested`` (its values are then never changed after they were frozen)."""
    out = _FLAT.get(cls)
    if out is None:
        out = _FLAT[cls] = (
            not any(f.metadata.get("wire") is not None for f in _fields(cls))
            and getattr(cls, "_normalise") is WireObject._normalise
            and getattr(cls, "_build_nested") is WireObject._build_nested)
    return out


class SignedObject(WireObject):
    """Base for wire objects that travel signed, in an envelope (``schakel.protocol.signing``):
    only these can be signed, and they are built from an envelope only once it verifies."""

    SIGNED: ClassVar[bool] = True

    def sign(self, signer: Signer) -> dict[str, Any]:
        """An envelope of this object signed by ``signer``."""
        return signing.sign(self.TYPE, self.to_json(), signer)

    @classmethod
    def peek(cls, envelope: Any) -> dict[str, Any]:
        """The ``signed`` part of ``envelope``, schema-valid but **not verified**: only to
        find the key that must verify it, then :meth:`from_envelope`.  Another object
        type is a :class:`SignatureError`, as in :func:`schakel.protocol.signing.verify`."""
        return dict(cls.unverified(envelope).signed)

    @classmethod
    def unverified(cls, envelope: Any) -> "Unverified[Self]":
        """``envelope`` checked against the envelope schema and this type's schema, not
        yet verified: its ``signed`` part names the key that must verify it, and
        :meth:`Unverified.verify` then checks the signatures and builds the object
        without validating the same JSON again."""
        schema.validate("envelope", envelope)
        signed = envelope["signed"]
        if signed.get("type") != cls.TYPE:
            raise SignatureError(f"expected a {cls.TYPE!r} object, got {signed.get('type')!r}")
        cls._validate_json(signed)
        return Unverified(cls, envelope)

    @classmethod
    def from_envelope(cls, envelope: Any, keys: Iterable[VerifyKey],
                      *, threshold: int = 1) -> Self:
        """Verify ``envelope`` with ``keys`` and only then build the object."""
        schema.validate("envelope", envelope)
        keys = list(keys)
        cls._before_verify(envelope)
        signed = signing.verify(envelope, cls.TYPE, keys, threshold=threshold)
        obj = cls.from_json(signed)
        obj._after_verify(envelope, keys)
        return obj

    @classmethod
    def _before_verify(cls, envelope: Any) -> None:
        """Rules on a schema-valid envelope's signatures before any is checked
        (subclasses; raise :class:`SignatureError`)."""

    def _after_verify(self, envelope: Any, keys: list[VerifyKey]) -> None:
        """Rules on who verified, once the object is built (subclasses; raise
        :class:`SignatureError`)."""


_S = TypeVar("_S", bound=SignedObject)


class Unverified(Generic[_S]):
    """An envelope of ``kind`` whose envelope and ``signed`` schemas passed, not yet
    verified (:meth:`SignedObject.unverified`).  ``signed`` is only for finding the key
    that must verify it.  The canonical JSON of the signed part is made when the schemas
    passed; the signatures are checked over those bytes and the object is built from
    them, so a change to the envelope's dict afterwards changes nothing that is
    believed."""

    __slots__ = ("kind", "envelope", "_canonical_signed")

    def __init__(self, kind: type[_S], envelope: Any) -> None:
        self.kind, self.envelope = kind, envelope
        self._canonical_signed = canonical_json(envelope["signed"])

    def canonical_signed(self) -> bytes:
        """The canonical JSON of the ``signed`` part that passed the schema: what the
        signatures must cover (after the type's domain prefix)."""
        return self._canonical_signed

    def canonical(self) -> bytes:
        """The canonical JSON of the whole envelope (what a reader stores and hashes),
        from :meth:`canonical_signed`: an envelope is exactly ``signatures`` and
        ``signed``, which sort in that order (RFC 8785 §3.2.3)."""
        return (b'{"signatures":' + canonical_json(self.envelope["signatures"]) +
                b',"signed":' + self._canonical_signed + b"}")

    @property
    def signed(self) -> dict[str, Any]:
        """The unverified ``signed`` part (read it; do not believe it)."""
        value: dict[str, Any] = self.envelope["signed"]
        return value

    def verify(self, keys: Iterable[VerifyKey], *, threshold: int = 1) -> _S:
        """:meth:`SignedObject.from_envelope`, without validating again what
        :meth:`SignedObject.unverified` validated."""
        keys = list(keys)
        self.kind._before_verify(self.envelope)
        signed = signing.verify_canonical(self.envelope, self.kind.TYPE, keys,
                                          self._canonical_signed, threshold=threshold)
        obj = self.kind._from_valid_json(signed)
        obj._after_verify(self.envelope, keys)
        return obj


class Part(WireObject):
    """A nested part of a wire object, validated against ``<TYPE>.json#/$defs/<DEF>``;
    its errors name ``"<TYPE> <DEF>"``."""

    DEF: ClassVar[str]

    @classmethod
    def _where(cls) -> str:
        return f"{cls.TYPE} {cls.DEF}"

    @classmethod
    def _validate_json(cls, value: Any) -> None:
        schema.validate_def(cls.TYPE, cls.DEF, value)


def _from_json(f: dataclasses.Field[Any], raw: Any) -> Any:
    kind = f.metadata.get("wire")
    if kind is None:
        return raw
    if f.metadata.get("many"):
        return tuple(kind.from_json(v) for v in raw)
    return kind.from_json(raw)


def nested(kind: type[WireObject], *, many: bool = False, json: str | None = None,
           default: Any = dataclasses.MISSING) -> Any:
    """Declare a field holding a nested wire object (or a tuple of them)."""
    meta: dict[str, Any] = {"wire": kind, "many": many}
    if json:
        meta["json"] = json
    return dataclasses.field(metadata=meta, default=default)


def alias(json: str, *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a field whose JSON key differs from its Python name (e.g. ``class``)."""
    return dataclasses.field(metadata={"json": json}, default=default)


__all__ = [
    "WireObject", "SignedObject", "Unverified", "Part", "FrozenMap", "Timestamp", "TIMESTAMP_FORMAT",
    "freeze", "thaw", "invalid", "utc", "format_timestamp", "parse_timestamp", "nested", "alias",
]
