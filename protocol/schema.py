"""JSON Schema validation of every wire object (docs/protocol.md §4).

Schemas live in ``protocol/schemas/<type>.json`` (JSON Schema draft 2020-12),
one per object type, sharing ``common.json``.  They are package data, loaded
once through :mod:`importlib.resources`; no network references are resolved.

Error messages name the JSON path and the rule that failed but never echo the
offending value: a value may be ciphertext or, through a client's mistake,
identity data, and error messages end up in logs.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urldefrag, urljoin

import jsonschema
from jsonschema import validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from protocol.errors import MalformedError

BASE_URI = "https://schakel.invalid/v1/"
#: Maximum number of schema violations reported in one error's details.
MAX_REPORTED = 5


# --- stricter-than-default JSON Schema semantics -------------------------------------
# (1) A pattern anchored with "$" must match the whole string: Python's "$" also
#     matches before a final newline, which would let "<id>\n" through.
# (2) "integer" means a JSON integer, never 1.0 (draft 2020-12 accepts 1.0).
# (3) "format": "date-time" is asserted, and means Schakel's timestamp: RFC 3339 UTC
#     with whole seconds and a real calendar date (the pattern alone accepts Feb 31).
# (4) "format": "printable" (a Schakel format, common.json#/$defs/printable_text) is
#     asserted: Python's str.isprintable, so no control, format or separator
#     character other than the space.  Names and reasons people read use it.

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, str):
        return
    match = re.search(pattern, instance)
    if match is None or (pattern.endswith("$") and match.end() != len(instance)):
        yield jsonschema.ValidationError("pattern")


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_timestamp(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _TIMESTAMP.fullmatch(instance):
        return False
    datetime.strptime(instance, "%Y-%m-%dT%H:%M:%SZ")  # ValueError for Feb 31 and the like
    return True


@_FORMATS.checks("printable")
def _is_printable(instance: object) -> bool:
    return not isinstance(instance, str) or instance.isprintable()


_StrictValidator = validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _load() -> tuple[dict[str, dict[str, Any]], Registry]:
    schemas: dict[str, dict[str, Any]] = {}
    for entry in resources.files("protocol.schemas").iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            expected = BASE_URI + entry.name
            if schema.get("$id") != expected:
                raise RuntimeError(f"schema {entry.name} must have $id {expected}")
            schemas[entry.name[: -len(".json")]] = schema
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in schemas.values())
    return schemas, registry


# --- references resolved once ----------------------------------------------------------
# jsonschema resolves every "$ref" again on every validation (URI joins and registry
# look-ups: most of the time a validation takes).  The schemas have no recursive
# references, so each validator gets a *bundled* copy of its schema instead, in which every
# "$ref" is replaced by the schema it names: a node that is only a "$ref" becomes that
# schema, a "$ref" beside other keywords becomes "allOf": [that schema] in the same place
# (draft 2020-12 applies a "$ref" beside its siblings exactly like an allOf of one).  The
# same keywords apply to the same places in the same order, so the verdicts and reported
# problems are those of the registry; a schema that cannot be bundled (a reference cycle)
# keeps the registry.  One difference, on purpose: a referenced whole document loses its
# "$schema", so the strict rules above hold inside it too -- through the registry,
# jsonschema validated such a part ("policy.json", "signal-feedback.json") with the stock
# draft 2020-12 class its "$schema" names.  tests/test_schema.py checks all of this.

#: Keywords whose value is one subschema, a list of them, or a map of names to them.
_SUBSCHEMA = frozenset({"additionalProperties", "items", "contains", "not", "if", "then", "else",
                        "propertyNames", "unevaluatedItems", "unevaluatedProperties"})
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})


class _Cycle(Exception):
    pass


def _pointer(document: Any, fragment: str) -> Any:
    node = document
    for part in fragment.lstrip("/").split("/") if fragment.strip("/") else ():
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _bundle(node: Any, base: str, documents: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    """``node`` (a schema in the document ``base``) with every reference replaced."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            target = urljoin(base, value)
            document, fragment = urldefrag(target)
            if target in seen or document not in documents:
                raise _Cycle(target)
            resolved = _bundle(_pointer(documents[document], fragment), document, documents,
                               (*seen, target))
            resolved = {k: v for k, v in resolved.items() if k not in ("$id", "$schema")}
            if len(node) == 1:
                return resolved
            if "allOf" in node:
                raise _Cycle(target)        # not used by the schemas; keep the registry
            out["allOf"] = [resolved]
        elif key in ("$dynamicRef", "$recursiveRef", "$anchor", "$dynamicAnchor"):
            raise _Cycle(key)
        elif key in _SUBSCHEMA:
            out[key] = _bundle(value, base, documents, seen)
        elif key in _SUBSCHEMA_LIST:
            out[key] = [_bundle(v, base, documents, seen) for v in value]
        elif key in _SUBSCHEMA_MAP:
            out[key] = {k: _bundle(v, base, documents, seen) for k, v in value.items()}
        else:
            out[key] = value
    return out


def _strict(schema: dict[str, Any], base: str) -> Any:
    """A strict validator of ``schema`` (whose references are relative to ``base``),
    bundled when it can be."""
    schemas, registry = _load()
    try:
        schema = _bundle(schema, base, {s["$id"]: s for s in schemas.values()}, ())
    except (_Cycle, KeyError, TypeError):
        pass
    return _StrictValidator(schema, registry=registry, format_checker=_FORMATS)


@cache
def _validator(obj_type: str) -> Any:
    schemas, registry = _load()
    if obj_type not in schemas or obj_type == "common":
        raise MalformedError(f"unknown object type {obj_type!r}")
    schema = schemas[obj_type]
    jsonschema.Draft202012Validator.check_schema(schema)
    return _strict(schema, schema["$id"])


def known_types() -> list[str]:
    """Every object type that has a schema."""
    return sorted(t for t in _load()[0] if t != "common")


def schema_of(obj_type: str) -> dict[str, Any]:
    """The JSON Schema document of ``obj_type`` (for the OpenAPI document)."""
    _validator(obj_type)
    return _load()[0][obj_type]


def schema_documents() -> dict[str, dict[str, Any]]:
    """A copy of every schema document by name, ``common`` (the shared definitions)
    included: the components of the server's OpenAPI document, where each keeps its
    ``$id`` so that its relative ``$ref``s resolve inside the document."""
    return copy.deepcopy(_load()[0])


def json_path(parts: Any) -> str:
    """``a.b[0].c`` for a JSON path given as keys and indexes; ``(root)`` when empty."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def _describe(err: jsonschema.ValidationError) -> str:
    rule = err.validator
    value = err.validator_value
    if rule == "required":
        missing = [k for k in value if isinstance(err.instance, Mapping) and k not in err.instance]
        return f"missing field(s) {missing}"
    if rule == "additionalProperties":
        known = set(err.schema.get("properties", {}))
        patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
        extra = sorted(k[:40] for k in err.instance
                       if k not in known and not any(p.search(k) for p in patterns)
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


def _report(validator: Any, value: Any, where: str, details: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [f"{json_path(e.absolute_path)}: {_describe(e)}" for e in errors[:MAX_REPORTED]]
        raise MalformedError(f"invalid {where}: {problems[0]}",
                             details={**details, "problems": problems})


# --- one check per value ------------------------------------------------------------------
# Building one verified object validates the same value several times (an event's envelope
# and signed part in ``peek``, ``from_envelope``, ``from_json``, the built object's own
# ``to_json`` and ``event_hash``).  Validation is a pure function of the value, so the
# values most recently found valid are remembered -- by schema and by ``repr``, which
# tells every JSON type apart (a list from a tuple, 1 from 1.0 and True, a dict from any
# other mapping) -- and not checked again.  Only verdicts of "valid" are kept, only for JSON
# objects and strings of a bounded size, and only a bounded number of them.

_MEMO_ENTRIES = 512
_MEMO_CHARS = 16_384
_valid: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_valid_lock = threading.Lock()


def _check(schema_key: tuple[str, str], validator: Any, value: Any, where: str,
           details: dict[str, Any]) -> None:
    key = None
    if type(value) is dict or type(value) is str:
        text = repr(value)
        if len(text) <= _MEMO_CHARS:
            key = (*schema_key, text)
            with _valid_lock:
                if key in _valid:
                    _valid.move_to_end(key)
                    return
    _report(validator, value, where, details)
    if key is not None:
        with _valid_lock:
            _valid[key] = None
            if len(_valid) > _MEMO_ENTRIES:
                _valid.popitem(last=False)


def validate(obj_type: str, value: Any) -> None:
    """Validate ``value`` against the schema of ``obj_type``; raise :class:`MalformedError`."""
    _check((obj_type, ""), _validator(obj_type), value, obj_type, {"type": obj_type})


@cache
def _def_validator(obj_type: str, def_name: str) -> Any:
    schemas, registry = _load()
    if def_name not in schemas.get(obj_type, {}).get("$defs", {}):
        raise MalformedError(f"unknown schema definition {obj_type}#/$defs/{def_name}")
    jsonschema.Draft202012Validator.check_schema(schemas[obj_type])
    ref = {"$ref": f"{BASE_URI}{obj_type}.json#/$defs/{def_name}"}
    return _strict(ref, BASE_URI)


def validate_def(obj_type: str, def_name: str, value: Any) -> None:
    """Validate ``value`` against ``<obj_type>.json#/$defs/<def_name>`` (a nested part,
    e.g. ``common``/``public_keys``), with the same strict semantics as :func:`validate`.
    The error names ``"<obj_type> <def_name>"``."""
    _check((obj_type, def_name), _def_validator(obj_type, def_name), value,
           f"{obj_type} {def_name}", {"type": obj_type, "def": def_name})


def validate_envelope(obj_type: str, envelope: Any) -> None:
    """Validate a signed envelope's shape and its ``signed`` part against ``obj_type``."""
    validate("envelope", envelope)
    validate(obj_type, envelope["signed"])


__all__ = ["validate", "validate_def", "validate_envelope", "known_types", "schema_of",
           "schema_documents",
           "json_path", "BASE_URI"]
