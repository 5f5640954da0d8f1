"""Base class for wire objects: frozen, keyword-only dataclasses that validate
when built (style.md: an invalid object cannot exist).

A subclass sets ``TYPE`` (its schema name, ``protocol/schemas/<TYPE>.json``) and
declares fields named like the JSON keys.  A JSON key that is a Python keyword is
declared with ``field(metadata={"json": "class"})``.  Nested wire objects and
tuples of them convert automatically.  Construction validates the JSON form
against the schema and then runs ``check()`` for rules a schema cannot express
(for example ``valid_until`` after ``valid_from``).

Signed objects are carried in envelopes (``protocol.signing``); ``from_envelope``
verifies first and only then builds the object ("verify before you believe").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from protocol import schema, signing
from protocol.crypto import Signer, VerifyKey

T = TypeVar("T", bound="WireObject")


def _to_json(value: Any) -> Any:
    if isinstance(value, WireObject):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value


class WireObject:
    """Mixin for ``@dataclass(frozen=True, kw_only=True)`` wire objects."""

    TYPE: ClassVar[str]
    #: Set on signed object types: the value of ``signed.type`` (equals TYPE).
    SIGNED: ClassVar[bool] = False

    def __post_init__(self) -> None:
        schema.validate(self.TYPE, self.to_json())
        self.check()

    def check(self) -> None:
        """Semantic rules beyond the schema; raise MalformedError.  Default: none."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.SIGNED:
            out["type"] = self.TYPE
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none", True):
                continue
            out[f.metadata.get("json", f.name)] = _to_json(value)
        return out

    @classmethod
    def from_json(cls: type[T], value: Any) -> T:
        """Validate ``value`` against the schema, then build the object."""
        schema.validate(cls.TYPE, value)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("json", f.name)
            if key not in value:
                continue
            kwargs[f.name] = _from_json(f, value[key])
        return cls(**kwargs)

    # -- signed objects ---------------------------------------------------------

    def sign(self, signer: Signer) -> dict[str, Any]:
        """An envelope of this object signed by ``signer``."""
        if not self.SIGNED:
            raise TypeError(f"{self.TYPE} is not a signed object")
        return signing.sign(self.TYPE, self.to_json(), signer)

    @classmethod
    def from_envelope(cls: type[T], envelope: Any, keys: Iterable[VerifyKey],
                      *, threshold: int = 1) -> T:
        """Verify ``envelope`` with ``keys`` and only then build the object."""
        schema.validate("envelope", envelope)
        signed = signing.verify(envelope, cls.TYPE, keys, threshold=threshold)
        return cls.from_json(signed)


def _from_json(f: dataclasses.Field[Any], raw: Any) -> Any:
    kind = f.metadata.get("wire")
    if kind is None:
        return tuple(raw) if isinstance(raw, list) else raw
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


__all__ = ["WireObject", "nested", "alias"]
