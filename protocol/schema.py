"""JSON Schema validation of every wire object (docs/protocol.md §4).

Schemas live in ``protocol/schemas/<type>.json`` (JSON Schema draft 2020-12),
one per object type, sharing ``common.json``.  They are package data, loaded
once through :mod:`importlib.resources`; no reference is ever retrieved from
anywhere else.

Two validators, each built once per schema on first use (ADR 0020; the reference
only when a process first needs it, so that one that meets only good JSON never
imports jsonschema):

* **jsonschema-rs** gives the verdict.  It is a compiled draft 2020-12 validator,
  9 to 56 times faster here than :mod:`jsonschema`, and runs on every value
  that is plain JSON (:func:`_plain_json`), i.e. every value the JSON parser makes.
* **jsonschema** (a strict extension of its ``Draft202012Validator``) is the
  reference: it words every refusal, and it gives the verdict on the rare value
  that is not plain JSON (a tuple, a float, a ``str`` subclass, a huge integer),
  where the two libraries could disagree.  ``tests/test_schema_verdicts.py``
  checks that both give the same verdict on every example object, thousands of
  broken variants and arbitrary JSON.

Error messages name the JSON path and the rule that failed but never echo the
offending value: a value may be ciphertext or, through a client's mistake,
identity data, and error messages end up in logs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from schakel.protocol.errors import MalformedError

if TYPE_CHECKING:   # jsonschema is imported when a refusal is worded (_reference_class)
    import jsonschema
    from jsonschema.protocols import Validator
    from referencing import Registry

BASE_URI = "https://schakel.invalid/v1/"
#: Maximum number of schema violations reported in one error's details.
MAX_REPORTED = 5


# --- stricter-than-default JSON Schema semantics -------------------------------------
# (1) A pattern anchored with "$" must match the whole string: Python's "$" also
#     matches before a final newline, which would let "<id>\n" through.  (The "$" of
#     jsonschema-rs's regular expressions matches only at the end.)
# (2) "integer" means a JSON integer, never 1.0 (draft 2020-12 accepts 1.0).  Plain JSON
#     has no floats (:func:`_plain_json`), so jsonschema-rs never sees one.
# (3) "format": "date-time" is asserted, and means Schakel's timestamp: RFC 3339 UTC
#     with whole seconds and a real calendar date (the pattern alone accepts Feb 31).
# (4) "format": "printable" (a Schakel format, common.json#/$defs/printable_text) is
#     asserted: Python's str.isprintable, so no control, format or separator
#     character other than the space.  Names and reasons people read use it.
# No other format is asserted; a schema that names another is refused when it is loaded.

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema

    if not isinstance(instance, str):
        return
    match = re.search(pattern, instance)
    if match is None or (pattern.endswith("$") and match.end() != len(instance)):
        yield jsonschema.ValidationError("pattern")


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_timestamp(instance: str) -> bool:
    if not _TIMESTAMP.fullmatch(instance):
        return False
    # The datetime constructor checks what strptime("%Y-%m-%dT%H:%M:%SZ") checks of
    # these fixed-width digits (years 1..9999, months 1..12, the month's days, hours
    # 0..23, minutes and seconds 0..59), Feb 31 and the like included.
    try:
        datetime(int(instance[0:4]), int(instance[5:7]), int(instance[8:10]),
                 int(instance[11:13]), int(instance[14:16]), int(instance[17:19]))
    except ValueError:
        return False
    return True


#: The asserted formats, by name: each a test of a string (any other value passes).
_FORMAT_TESTS: dict[str, Callable[[str], bool]] = {"date-time": _is_timestamp,
                                                   "printable": str.isprintable}


def _is_date_time(instance: object) -> bool:
    return not isinstance(instance, str) or _is_timestamp(instance)


def _is_printable(instance: object) -> bool:
    return not isinstance(instance, str) or instance.isprintable()


@cache
def _reference_class() -> tuple[type[Validator], jsonschema.FormatChecker]:
    """jsonschema's validator class with the strict semantics above, and its format
    checker.  Built when a process first words a refusal or judges a value that is not
    plain JSON: a process that only validates good JSON never imports jsonschema (it and
    what it brings cost a tenth of a second of every command line start)."""
    import jsonschema
    from jsonschema import validators

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_date_time)
    formats.checks("printable")(_is_printable)
    # (types-jsonschema leaves ``extend`` untyped; it returns a validator class.)
    strict: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator,
        validators={"pattern": _pattern},
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    return strict, formats


@cache
def _load() -> dict[str, dict[str, Any]]:
    """Every schema document by name.  That each is a valid draft 2020-12 schema is a
    fact of the shipped files, checked by the tests (``tests/test_schema.py``), not again
    by every process that loads them (it cost a tenth of a second each time)."""
    schemas: dict[str, dict[str, Any]] = {}
    for entry in resources.files("schakel.protocol.schemas").iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            expected = BASE_URI + entry.name
            if schema.get("$id") != expected:
                raise RuntimeError(f"schema {entry.name} must have $id {expected}")
            unknown = _formats_in(schema) - set(_FORMAT_TESTS)
            if unknown:
                raise RuntimeError(f"schema {entry.name} names formats no validator here "
                                   f"asserts: {sorted(unknown)}")
            schemas[entry.name[: -len(".json")]] = schema
    return schemas


def _formats_in(node: Any) -> set[str]:
    """Every ``format`` a schema document names (in a schema or in a value: a superset)."""
    if isinstance(node, dict):
        found = {node["format"]} if isinstance(node.get("format"), str) else set()
        return found.union(*(_formats_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_formats_in(v) for v in node))
    return set()


def _no_retrieval(uri: str) -> Any:
    raise LookupError(f"{uri} is not one of the protocol's schema documents; "
                      "no schema is fetched from anywhere else")


@cache
def _fast_registry() -> jsonschema_rs.Registry:
    """The schema documents, for jsonschema-rs."""
    return jsonschema_rs.Registry([(d["$id"], d) for d in _load().values()],
                                  draft=jsonschema_rs.Draft202012, retriever=_no_retrieval)


@cache
def _reference_registry() -> Registry[Any]:
    """The schema documents, for jsonschema.  Its copies lack ``$schema``: with it,
    jsonschema would switch to its stock draft 2020-12 class inside a referenced document
    (``policy.json``, ``signal-feedback.json``), where the strict rules above would then
    not hold."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    reference: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents({k: v for k, v in d.items() if k != "$schema"},
                                          default_specification=DRAFT202012))
        for d in _load().values())
    return reference


class _Validators:
    """One schema's two validators: ``fast`` decides plain JSON, ``reference`` the rest
    and words every refusal.  The reference is built on first use (:func:`_reference_class`)."""

    __slots__ = ("fast", "_root", "_reference")

    def __init__(self, fast: jsonschema_rs.Validator, root: dict[str, Any]) -> None:
        self.fast = fast
        self._root = root
        self._reference: Validator | None = None

    @property
    def reference(self) -> Validator:
        if self._reference is None:
            strict, formats = _reference_class()
            self._reference = strict({k: v for k, v in self._root.items() if k != "$schema"},
                                     registry=_reference_registry(), format_checker=formats)
        return self._reference


def _build(root: dict[str, Any]) -> _Validators:
    fast = jsonschema_rs.Draft202012Validator(
        root, registry=_fast_registry(), retriever=_no_retrieval,
        validate_formats=True, formats=dict(_FORMAT_TESTS))
    return _Validators(fast, root)


@cache
def _validators(obj_type: str, def_name: str = "") -> _Validators:
    """The validators of an object type's schema, or of one of its ``$defs`` entries."""
    schemas = _load()
    if def_name:
        if def_name not in schemas.get(obj_type, {}).get("$defs", {}):
            raise MalformedError(f"unknown schema definition {obj_type}#/$defs/{def_name}")
        return _build({"$ref": f"{BASE_URI}{obj_type}.json#/$defs/{def_name}"})
    if obj_type not in schemas or obj_type == "common":
        raise MalformedError(f"unknown object type {obj_type!r}")
    return _build(schemas[obj_type])


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is built only of what :func:`json.loads` makes of a float-free
    document: ``dict`` (with ``str`` keys), ``list``, ``str``, ``int`` within 64 bits,
    ``bool`` and ``None``, each of exactly that type.  On these the two validators agree;
    they part on what JSON cannot say (jsonschema-rs reads a tuple as an array and 1.0 as
    an integer, and refuses a ``str`` subclass)."""
    try:
        return _plain(value)
    except RecursionError:
        return False


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is dict:
        for key, member in value.items():
            if type(key) is not str or not _plain(member):
                return False
        return True
    if kind is list:
        for member in value:
            if not _plain(member):
                return False
        return True
    return kind is int and -(2**63) <= value < 2**64


def prepare(*obj_types: str) -> None:
    """Load the schema documents and build the validators of ``obj_types`` now, so that
    the first object a process validates does not pay for them (a worker that is started
    ahead of its work)."""
    for obj_type in obj_types:
        _validators(obj_type)


def known_types() -> list[str]:
    """Every object type that has a schema."""
    return sorted(t for t in _load() if t != "common")


def schema_of(obj_type: str) -> dict[str, Any]:
    """The JSON Schema document of ``obj_type`` (for the OpenAPI document)."""
    _validators(obj_type)
    return _load()[obj_type]


def schema_documents() -> dict[str, dict[str, Any]]:
    """A copy of every schema document by name, ``common`` (the shared definitions)
    included: the components of the server's OpenAPI document, where each keeps its
    ``$id`` so that its relative ``$ref``s resolve inside the document."""
    return copy.deepcopy(_load())


def json_path(parts: Any) -> str:
    """``a.b[0].c`` for a JSON path given as keys and indexes; ``(root)`` when empty."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def _describe(err: jsonschema.ValidationError) -> str:
    rule = err.validator
    value: Any = err.validator_value
    if rule == "required":
        missing = [k for k in value if isinstance(err.instance, Mapping) and k not in err.instance]
        return f"missing field(s) {missing}"
    if rule == "additionalProperties":
        schema = err.schema if isinstance(err.schema, Mapping) else {}
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extra = sorted(str(k)[:40] for k in err.instance if k not in known and not (
            isinstance(k, str) and any(p.search(k) for p in patterns))
                       ) if isinstance(err.instance, Mapping) else []
        return f"unknown field(s) {extra[:5]}"
    if rule == "format":
        return "contains non-printable characters" if value == "printable" \
            else f"is not a valid {value}"
    if rule == "type":
        return f"must be of type {value}"
    if rule in ("enum", "const"):
        return f"must be one of {value if rule == 'enum' else [value]}"
    if rule in ("maxLength", "minLength", "maxItems", "minItems", "maximum", "minimum",
                "maxProperties", "minProperties"):
        return f"violates {rule} {value}"
    if rule == "pattern":
        return "has the wrong format"
    return f"violates {rule}"


def problems(obj_type: str, value: Any, def_name: str = "") -> list[str]:
    """Every schema violation of ``value``, as ``"<json path>: <rule>"`` in path order
    (none when it is valid), as the reference validator finds them."""
    errors = sorted(_validators(obj_type, def_name).reference.iter_errors(value),
                    key=lambda e: list(e.absolute_path))
    return [f"{json_path(e.absolute_path)}: {_describe(e)}" for e in errors]


def _check(obj_type: str, def_name: str, value: Any, where: str,
           details: dict[str, Any]) -> None:
    pair = _validators(obj_type, def_name)
    if _plain_json(value):
        try:
            if pair.fast.is_valid(value):
                return
        except ValueError:           # e.g. an unpaired surrogate, which UTF-8 cannot carry
            pass
    # The reference has the last word (the two agree on plain JSON: tests/test_schema_verdicts.py).
    found = problems(obj_type, value, def_name)
    if found:
        raise MalformedError(f"invalid {where}: {found[0]}",
                             details={**details, "problems": found[:MAX_REPORTED]})


def validate(obj_type: str, value: Any) -> None:
    """Validate ``value`` against the schema of ``obj_type``; raise :class:`MalformedError`."""
    _check(obj_type, "", value, obj_type, {"type": obj_type})


def validate_def(obj_type: str, def_name: str, value: Any) -> None:
    """Validate ``value`` against ``<obj_type>.json#/$defs/<def_name>`` (a nested part,
    e.g. ``common``/``public_keys``), with the same strict semantics as :func:`validate`.
    The error names ``"<obj_type> <def_name>"``."""
    _check(obj_type, def_name, value, f"{obj_type} {def_name}",
           {"type": obj_type, "def": def_name})


def validate_envelope(obj_type: str, envelope: Any) -> None:
    """Validate a signed envelope's shape and its ``signed`` part against ``obj_type``."""
    validate("envelope", envelope)
    validate(obj_type, envelope["signed"])


__all__ = ["validate", "validate_def", "validate_envelope", "prepare", "known_types", "schema_of",
           "schema_documents", "problems", "json_path", "BASE_URI"]
