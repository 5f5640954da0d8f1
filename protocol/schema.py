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
import numbers
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urldefrag, urljoin

import jsonschema
from jsonschema import validators
from jsonschema._utils import equal as _equal
from jsonschema._utils import uniq as _uniq
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schakel.protocol.errors import MalformedError

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
    # ValueError for Feb 31 and the like: the datetime constructor checks what
    # strptime("%Y-%m-%dT%H:%M:%SZ") checks of these fixed-width digits (years 1..9999,
    # months 1..12, the month's days, hours 0..23, minutes and seconds 0..59).
    datetime(int(instance[0:4]), int(instance[5:7]), int(instance[8:10]),
             int(instance[11:13]), int(instance[14:16]), int(instance[17:19]))
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
    for entry in resources.files("schakel.protocol.schemas").iterdir():
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


# --- compiled verdicts ---------------------------------------------------------------------
# Even bundled, jsonschema builds a validator object per subschema visited and walks each
# keyword through generic dispatch: most of the time an append spent on its envelope and
# event.  Each bundled schema is therefore also compiled, once, into one plain Python
# function that answers only "valid or not": straight-line checks, keyword by keyword, with
# exactly jsonschema's semantics (each keyword passes values of the types it does not
# apply to; "object" is a dict and "array" a list, as jsonschema's type checker says) and
# the strict rules above (the same pattern rule, integer type and format checks).  Only a
# refusal then goes to jsonschema, which finds and words the problems, so error messages
# are the reference validator's and stay value-free.  A schema with a keyword the compiler
# does not know (or a reference left unbundled) is not compiled and keeps the jsonschema
# path.  tests/test_schema_compiled.py checks the verdicts against jsonschema on every
# example object, thousands of broken variants and arbitrary JSON.

_Verdict = Callable[[Any], bool]

#: Keywords without an assertion (annotations, and the containers of definitions).
#: ``x-schakel-distinct`` names the member no two items of an array share: the protocol
#: objects enforce it (``schakel.protocol.signing``, the objects' ``check``); in the schema it tells
#: other readers (and the OpenAPI document) what JSON Schema cannot say.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description",
                          "examples", "default", "deprecated", "readOnly", "writeOnly",
                          "x-schakel-distinct"})
_COMPILED_KEYWORDS = frozenset({
    "type", "const", "enum", "minLength", "maxLength", "pattern", "format", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "items", "minItems", "maxItems",
    "uniqueItems", "properties", "patternProperties", "additionalProperties", "required",
    "propertyNames", "minProperties", "maxProperties", "allOf", "anyOf", "oneOf", "not", "if",
    "then", "else"}) | _ANNOTATIONS
_TYPE_TESTS = {
    "object": "isinstance({v}, dict)", "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)", "boolean": "isinstance({v}, bool)", "null": "{v} is None",
    "integer": "(isinstance({v}, int) and not isinstance({v}, bool))",
    "number": "(isinstance({v}, _Number) and not isinstance({v}, bool))",
}


class _Unsupported(Exception):
    pass


def _timestamp_conforms(value: str) -> bool:
    """``_FORMATS.conforms(value, "date-time")`` for a string."""
    try:
        return _is_timestamp(value)
    except ValueError:
        return False


class _Generator:
    """Python source of one verdict function; every failed check is ``return False``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"_Number": numbers.Number, "_equal": _equal,
                                      "_uniq": _uniq, "_timestamp": _timestamp_conforms,
                                      "_conforms": _FORMATS.conforms}
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, value: Any) -> str:
        name = self.fresh("k")
        self.names[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def fail_unless(self, depth: int, condition: str) -> None:
        self.emit(depth, f"if not ({condition}): return False")

    def node(self, schema: Any, v: str, depth: int) -> None:
        if schema is True:
            return
        if schema is False:
            self.emit(depth, "return False")
            return
        if not isinstance(schema, dict):
            raise _Unsupported("schema is not an object or a boolean")
        unknown = set(schema) - _COMPILED_KEYWORDS
        if unknown:
            raise _Unsupported(f"keywords {sorted(unknown)}")
        known = None            # the one JSON type "type" asserts, if it asserts one
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not names or any(n not in _TYPE_TESTS for n in names):
                raise _Unsupported("type")
            self.fail_unless(depth, " or ".join(_TYPE_TESTS[n].format(v=v) for n in names))
            if len(names) == 1:
                known = names[0]
        if "const" in schema:
            const = schema["const"]
            k = self.constant(const)
            self.fail_unless(depth, f"isinstance({v}, str) and {v} == {k}"
                             if isinstance(const, str) else f"_equal({v}, {k})")
        if "enum" in schema:
            enum = schema["enum"]
            if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
                k = self.constant(frozenset(enum))
                self.fail_unless(depth, f"isinstance({v}, str) and {v} in {k}")
            else:
                k = self.constant(tuple(enum))
                self.fail_unless(depth, f"any(_equal(e, {v}) for e in {k})")
        # A keyword group applies to one JSON type and passes every other value (jsonschema):
        # after "type" asserted a type, the other groups are skipped and the group of that
        # type runs unguarded ("integer" values are numbers).
        for group, kinds in ((self.string, ("string",)), (self.number, ("number", "integer")),
                             (self.array, ("array",)), (self.object, ("object",))):
            if known is None or known in kinds:
                group(schema, v, depth, guarded=known is None)
        for sub in schema.get("allOf", ()):
            self.node(sub, v, depth)
        if "anyOf" in schema:
            subs = [self.constant(_compile(s)) for s in schema["anyOf"]]
            self.fail_unless(depth, " or ".join(f"{s}({v})" for s in subs))
        if "oneOf" in schema:
            subs = [self.constant(_compile(s)) for s in schema["oneOf"]]
            self.fail_unless(depth, " + ".join(f"bool({s}({v}))" for s in subs) + " == 1")
        if "not" in schema:
            self.fail_unless(depth, f"not {self.constant(_compile(schema['not']))}({v})")
        if "if" in schema:
            cond = self.constant(_compile(schema["if"]))
            self.emit(depth, f"if {cond}({v}):")
            self.node(schema.get("then", True), v, depth + 1)
            self.emit(depth + 1, "pass")
            self.emit(depth, "else:")
            self.node(schema.get("else", True), v, depth + 1)
            self.emit(depth + 1, "pass")

    def guard(self, depth: int, condition: str, guarded: bool) -> int:
        """Open ``if condition:`` when ``guarded``; the depth of the group's checks."""
        if not guarded:
            return depth
        self.emit(depth, f"if {condition}:")
        self.emit(depth + 1, "pass")
        return depth + 1

    def string(self, schema: dict[str, Any], v: str, depth: int, guarded: bool) -> None:
        if not any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return
        d = self.guard(depth, f"isinstance({v}, str)", guarded)
        if "minLength" in schema:
            self.fail_unless(d, f"len({v}) >= {int(schema['minLength'])}")
        if "maxLength" in schema:
            self.fail_unless(d, f"len({v}) <= {int(schema['maxLength'])}")
        if "pattern" in schema:
            pattern = schema["pattern"]
            search = self.constant(re.compile(pattern).search)
            m = self.fresh("m")
            self.emit(d, f"{m} = {search}({v})")
            self.emit(d, f"if {m} is None: return False")
            if pattern.endswith("$"):                  # the strict rule (1) of _pattern
                self.emit(d, f"if {m}.end() != len({v}): return False")
        if "format" in schema:
            fmt = schema["format"]
            if fmt == "date-time":
                self.fail_unless(d, f"_timestamp({v})")
            elif fmt == "printable":
                self.fail_unless(d, f"{v}.isprintable()")
            else:
                self.fail_unless(d, f"_conforms({v}, {self.constant(fmt)})")

    def number(self, schema: dict[str, Any], v: str, depth: int, guarded: bool) -> None:
        ops = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
               "exclusiveMaximum": "<"}
        present = [k for k in ops if k in schema]
        if not present:
            return
        d = self.guard(depth, _TYPE_TESTS["number"].format(v=v), guarded)
        for key in present:
            self.fail_unless(d, f"{v} {ops[key]} {self.constant(schema[key])}")

    def array(self, schema: dict[str, Any], v: str, depth: int, guarded: bool) -> None:
        if not any(k in schema for k in ("items", "minItems", "maxItems", "uniqueItems")):
            return
        d = self.guard(depth, f"isinstance({v}, list)", guarded)
        if "minItems" in schema:
            self.fail_unless(d, f"len({v}) >= {int(schema['minItems'])}")
        if "maxItems" in schema:
            self.fail_unless(d, f"len({v}) <= {int(schema['maxItems'])}")
        if "items" in schema and schema["items"] is not True:
            x = self.fresh("x")
            self.emit(d, f"for {x} in {v}:")
            self.node(schema["items"], x, d + 1)
            self.emit(d + 1, "pass")
        if schema.get("uniqueItems") is True:
            self.fail_unless(d, f"_uniq({v})")

    def object(self, schema: dict[str, Any], v: str, depth: int, guarded: bool) -> None:
        keys = ("properties", "patternProperties", "additionalProperties", "required",
                "propertyNames", "minProperties", "maxProperties")
        if not any(k in schema for k in keys):
            return
        d = self.guard(depth, f"isinstance({v}, dict)", guarded)
        if schema.get("required"):
            self.fail_unless(d, f"{v}.keys() >= {self.constant(frozenset(schema['required']))}")
        if "minProperties" in schema:
            self.fail_unless(d, f"len({v}) >= {int(schema['minProperties'])}")
        if "maxProperties" in schema:
            self.fail_unless(d, f"len({v}) <= {int(schema['maxProperties'])}")
        properties = schema.get("properties", {})
        for name, sub in properties.items():
            if sub is True:
                continue
            x = self.fresh("x")
            self.emit(d, f"if {name!r} in {v}:")
            self.emit(d + 1, f"{x} = {v}[{name!r}]")
            self.node(sub, x, d + 1)
        for pattern, sub in schema.get("patternProperties", {}).items():
            search = self.constant(re.compile(pattern).search)
            k, x = self.fresh("n"), self.fresh("x")
            self.emit(d, f"for {k}, {x} in {v}.items():")
            self.emit(d + 1, f"if {search}({k}):")
            self.node(sub, x, d + 2)
            self.emit(d + 2, "pass")
        extra = schema.get("additionalProperties", True)
        if extra is not True:
            known = self.constant(frozenset(properties))
            joined = "|".join(schema.get("patternProperties", {}))
            if extra is False and not joined:
                self.fail_unless(d, f"{v}.keys() <= {known}")
            else:
                k = self.fresh("n")
                self.emit(d, f"for {k} in {v}:")
                condition = f"{k} not in {known}"
                if joined:
                    condition += f" and not {self.constant(re.compile(joined).search)}({k})"
                self.emit(d + 1, f"if {condition}:")
                self.node(extra, f"{v}[{k}]", d + 2)
                self.emit(d + 2, "pass")
        if "propertyNames" in schema:
            k = self.fresh("n")
            self.emit(d, f"for {k} in {v}:")
            self.node(schema["propertyNames"], k, d + 1)
            self.emit(d + 1, "pass")


def _compile(schema: Any) -> _Verdict:
    """A function equal to ``_StrictValidator(schema).is_valid`` (for a bundled ``schema``)."""
    gen = _Generator()
    gen.node(schema, "v0", 1)
    source = "def verdict(v0):\n" + "\n".join(gen.lines) + "\n    return True\n"
    namespace = dict(gen.names)
    exec(compile(source, "<schakel.protocol.schema compiled verdict>", "exec"), namespace)  # noqa: S102
    verdict: _Verdict = namespace["verdict"]
    verdict.source = source  # type: ignore[attr-defined]
    return verdict


@cache
def _compiled(obj_type: str, def_name: str) -> _Verdict | None:
    """The compiled verdict of a type's (or definition's) bundled schema, or None when it
    cannot be compiled (the caller then validates with jsonschema alone)."""
    validator = _def_validator(obj_type, def_name) if def_name else _validator(obj_type)
    try:
        return _compile(validator.schema)
    except (_Unsupported, re.error, TypeError, ValueError, SyntaxError):
        return None


# --- one check per value ------------------------------------------------------------------
# Building one verified object validates the same value several times (an event's envelope
# and signed part in ``peek``, ``from_envelope``, ``from_json``, the built object's own
# ``to_json`` and ``event_hash``).  Validation is a pure function of the value, so the
# values most recently found valid are remembered -- by schema and by ``repr``, which
# tells every JSON type apart (a list from a tuple, 1 from 1.0 and True, a dict from any
# other mapping) -- and not checked again.  Only verdicts of "valid" are kept, only for JSON
# objects and strings of a bounded size, and only a bounded number of them.  A schema with a
# compiled verdict skips this memory: its verdict costs less than the ``repr`` a look-up
# needs, and nothing is remembered.

_MEMO_ENTRIES = 512
_MEMO_CHARS = 16_384
_valid: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_valid_lock = threading.Lock()


def _check(schema_key: tuple[str, str], validator: Any, value: Any, where: str,
           details: dict[str, Any]) -> None:
    fast = _compiled(*schema_key)
    if fast is not None:
        # The compiled verdict decides "valid"; a refusal is reported by jsonschema itself,
        # so the problems (and their wording) are exactly the reference validator's.
        if not fast(value):
            _report(validator, value, where, details)
        return
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
