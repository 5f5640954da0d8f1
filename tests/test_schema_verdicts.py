"""jsonschema-rs's verdicts (protocol/schema.py) against the reference jsonschema validator.

``schema.validate`` accepts plain JSON when jsonschema-rs says "valid", and asks the reference
(jsonschema's ``Draft202012Validator`` with the strict rules of protocol.md §N.0) for the
verdict on anything else and for the words of every refusal.  So on plain JSON jsonschema-rs
must give exactly the reference's verdict, and ``validate`` must on every value: on every
example object and vector, on thousands of broken variants of them, on arbitrary JSON and on
arbitrary JSON planted inside valid objects.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol import schema
from schakel.protocol.errors import MalformedError
from tests.strategies import JSON, json_paths, set_at
from tests.test_schema import EXAMPLES, REPLACEMENTS, variants

TYPES = sorted({t for t, _ in EXAMPLES})

#: Arbitrary JSON without floats: what jsonschema-rs decides (with floats, the reference does).
PLAIN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)

#: More values that probe the strict rules and the type checker.
TRICKY: tuple[Any, ...] = (1.5, -0.0, 1e300, 2**53 - 1, -(2**53) + 1, 1000000000, 1000000001,
                           "open", "closed", "event", "A" * 21 + "A", "A" * 21 + "A\n",
                           "A" * 21 + "B", "A" * 43, "A" * 42 + "E", "2026-02-28T23:59:59Z",
                           "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-01-01T24:00:00Z",
                           "2026-01-01T00:00:00Z\n", "0000-01-01T00:00:00Z", "\u00e9", "\u200b",
                           "a b", " ", "\x7f", "\x1c", "\x85", "\ufeff", "\u2028", "a\rb",
                           ["a"], ["a", "a"], [1, True], [1, 1.0], [0, False],
                           [[1], [True]], [{"a": 1}, {"a": 1}], [{"a": 1}, {"a": True}],
                           {"sign": "x", "box": "y"})

#: Values the OpenAPI document once admitted and the server refused (schemathesis found them);
#: tests/test_openapi.py plants them too, and leans on the verdicts here on what it plants.
GAPS: tuple[Any, ...] = ("0000-01-01T00:00:00Z", "AB", "ABCDE", "AAAAAB", "a\u200bb",
                         "a\u00adb", "\u20f2", 1.0, 2.0, [{"keyid": "x"}, {"keyid": "x"}])

#: Values the wire parser never makes (protocol.md §2.1): integers beyond I-JSON's (those
#: within 64 bits go to jsonschema-rs, the others to the reference), and what JSON cannot
#: carry, which goes to the reference: a tuple, a key that is not a string, an unpaired
#: surrogate (UTF-8 cannot carry it).
OFF_THE_WIRE: tuple[Any, ...] = (2**63 - 1, 2**64 - 1, -(2**63), 2**64, -(2**63) - 1, 2**100,
                                 ("a",), {1: "a"}, "\ud800")


def _verdicts(obj_type: str, value: Any, def_name: str = "") -> tuple[bool, bool]:
    """(``validate``'s verdict, the reference's); where the value is plain JSON, also
    checks that jsonschema-rs alone gives the reference's verdict."""
    pair = schema._validators(obj_type, def_name)
    reference = pair.reference.is_valid(value)
    if schema._plain_json(value):
        try:
            fast = pair.fast.is_valid(value)
        except ValueError:
            assert "\ud800" in repr(value) or "\\ud800" in repr(value), value
        else:
            assert fast == reference, value
    try:
        if def_name:
            schema.validate_def(obj_type, def_name, value)
        else:
            schema.validate(obj_type, value)
    except MalformedError:
        return False, reference
    return True, reference


def test_every_schema_and_definition_has_both_validators() -> None:
    documents = schema.schema_documents()
    for obj_type in schema.known_types():
        assert schema._validators(obj_type).fast is not None, obj_type
    for obj_type, document in documents.items():
        for name in document.get("$defs", {}):
            assert schema._validators(obj_type, name).reference is not None, (obj_type, name)


@pytest.mark.parametrize("obj_type", TYPES)
def test_verdicts_on_examples_and_their_variants(obj_type: str) -> None:
    """Every example of the type, its variants and each tricky value planted at each of its
    paths; each distinct value once (examples of one type share many variants, and the
    reference's verdict on a large object is what this file spends its time on)."""
    broken: dict[str, Any] = {}
    planted: dict[str, Any] = {}
    for kind, value in EXAMPLES:
        if kind != obj_type:
            continue
        assert schema._plain_json(value)
        assert _verdicts(obj_type, value) == (True, True)
        for variant in variants(value):
            broken.setdefault(repr(variant), variant)    # repr: distinct by type too (1, 1.0, True)
        for path in json_paths(value):
            for new in (*TRICKY, *GAPS, *OFF_THE_WIRE):
                variant = set_at(value, path, new)
                planted.setdefault(repr(variant), variant)
    for variant in [*broken.values(), *(v for k, v in planted.items() if k not in broken)]:
        validated, reference = _verdicts(obj_type, variant)
        assert validated == reference, variant
    assert len(broken) > 10


def test_definitions_agree() -> None:
    for obj_type, document in schema.schema_documents().items():
        for name in document.get("$defs", {}):
            for value in (*REPLACEMENTS, *TRICKY, *OFF_THE_WIRE):
                validated, reference = _verdicts(obj_type, value, name)
                assert validated == reference, (obj_type, name, value)


@pytest.mark.parametrize("obj_type", schema.known_types())
@settings(max_examples=40, deadline=None)
@given(value=JSON | PLAIN_JSON)
def test_verdicts_on_arbitrary_json(obj_type: str, value: Any) -> None:
    validated, reference = _verdicts(obj_type, value)
    assert validated == reference


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_verdicts_on_json_planted_in_valid_objects(data: st.DataObject) -> None:
    obj_type, value = data.draw(st.sampled_from(EXAMPLES))
    paths = json_paths(value)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    variant = set_at(value, path,
                     data.draw(JSON | PLAIN_JSON | st.sampled_from((*TRICKY, *OFF_THE_WIRE))))
    validated, reference = _verdicts(obj_type, variant)
    assert validated == reference, variant


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_verdicts_with_members_added(data: st.DataObject) -> None:
    obj_type, value = data.draw(st.sampled_from(EXAMPLES))
    dicts = [p for p in [(), *json_paths(value)] if isinstance(_get(value, p), dict)]
    path = data.draw(st.sampled_from(dicts))
    key = data.draw(st.text(max_size=12) | st.sampled_from(sorted(_get(value, path))))
    variant = copy.deepcopy(value)
    _get(variant, path)[key] = data.draw(JSON | PLAIN_JSON)
    validated, reference = _verdicts(obj_type, variant)
    assert validated == reference, variant


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def test_refusals_are_worded_by_jsonschema_without_values() -> None:
    event = copy.deepcopy(next(v for t, v in EXAMPLES if t == "event"))
    event["network"] = "SECRET-VALUE\n"
    event["seq"] = 1.0
    with pytest.raises(MalformedError) as info:
        schema.validate("event", event)
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value.details)
    assert info.value.details["problems"] == [
        "network: has the wrong format", "seq: must be of type integer"]


def test_non_json_containers_are_refused() -> None:
    """jsonschema-rs would read a tuple as an array; such a value goes to the reference."""
    envelope = next(v for t, v in EXAMPLES if t == "envelope")
    for broken in ({**envelope, "signatures": tuple(envelope["signatures"])},
                   {**envelope, "signed": tuple(envelope["signed"].items())}):
        assert not schema._plain_json(broken)
        assert _verdicts("envelope", broken) == (False, False)
        with pytest.raises(MalformedError):
            schema.validate("envelope", broken)


def test_integral_floats_are_not_integers() -> None:
    """Draft 2020-12 (and jsonschema-rs) call 1.0 an integer; protocol.md §N.0 does not."""
    event = copy.deepcopy(next(v for t, v in EXAMPLES if t == "event"))
    event["seq"] = float(event["seq"])
    assert schema._validators("event").fast.is_valid(event)          # what the draft says
    assert _verdicts("event", event) == (False, False)
