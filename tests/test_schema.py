"""protocol/schema.py validates fast without changing a verdict.

Two speed-ups (found by the server benchmark, bench/README.md): each validator checks a
*bundled* copy of its schema, every ``$ref`` replaced by the schema it names, instead of
resolving references through the registry on every validation; and the values most
recently found valid are remembered.  Here the bundled validators are compared with the
registry's on every example object and on many broken variants of each (same verdict, same
reported problems, in the same order), and the memory is shown not to let anything through
that the schema refuses.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings

from schakel.protocol import schema
from schakel.protocol.crypto import Signer, key_id
from schakel.protocol.errors import MalformedError
from tests.strategies import JSON, json_paths, set_at
from tests.vectors_objects import VECTOR_PATH

#: Values a member is replaced by in the broken variants.
REPLACEMENTS: tuple[Any, ...] = (None, True, False, 0, 1, 1.0, -1, 2**40, "", "x", "x" * 300,
                                 "2026-02-31T00:00:00Z", "a\nb", "AAAAAAAAAAAAAAAAAAAAAA\n",
                                 [], [1], {}, {"unknown": 1})


def _examples() -> list[tuple[str, Any]]:
    """(type, JSON value) of every example object the object tests use, and every vector."""
    from tests import test_objects_cases as cases
    from tests import test_objects_disclosure as disclosure
    from tests import test_objects_network as network
    out: list[tuple[str, Any]] = []
    for make in [*network.EXAMPLES.values(), *disclosure.EXAMPLES.values()]:
        obj = make()
        out.append((obj.TYPE, obj.to_json()))
    for cls, make_json in cases.EXAMPLES.values():
        out.append((cls.TYPE, make_json()))
    for vector in json.loads(VECTOR_PATH.read_text(encoding="utf-8"))["vectors"]:
        out.append((vector["type"], vector["envelope"]["signed"]))
        out.append(("envelope", vector["envelope"]))
    return out


EXAMPLES = _examples()


def _strict_registry() -> Any:
    """The registry of the schema documents without their ``$schema`` keys: jsonschema then
    keeps the strict validator class inside every referenced document (with the key, it
    switches to the stock draft 2020-12 class there -- see
    test_strict_rules_now_hold_inside_referenced_documents)."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
    schemas, _ = schema._load()
    docs = [{k: v for k, v in s.items() if k != "$schema"} for s in schemas.values()]
    return Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012)) for d in docs)


STRICT_REGISTRY = _strict_registry()


def _registry_validator(obj_type: str) -> Any:
    """The reference: the strict validator with references resolved by the registry on
    every validation, as before bundling."""
    schemas, _ = schema._load()
    return schema._StrictValidator(schemas[obj_type], registry=STRICT_REGISTRY,
                                   format_checker=schema._FORMATS)


def _problems(validator: Any, value: Any) -> list[str]:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{schema.json_path(e.absolute_path)}: {schema._describe(e)}" for e in errors]


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    out = copy.deepcopy(value)
    node = out
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return out


def variants(value: Any) -> Iterator[Any]:
    """``value``, and versions of it with one member removed, replaced or added."""
    yield value
    for path in json_paths(value):
        for new in REPLACEMENTS:
            yield set_at(value, path, new)
        yield _delete(value, path)
    for path in [(), *json_paths(value)]:
        node = value
        for step in path:
            node = node[step]
        if isinstance(node, dict):
            yield set_at(value, (*path, "extra_member"), "x") if path else {**value, "extra_member": "x"}


def test_every_schema_is_bundled() -> None:
    for obj_type in schema.known_types():
        assert "$ref" not in json.dumps(schema._validator(obj_type).schema), obj_type


@pytest.mark.parametrize("obj_type", sorted({t for t, _ in EXAMPLES}))
def test_bundled_validators_give_the_registry_validators_verdicts(obj_type: str) -> None:
    bundled, reference = schema._validator(obj_type), _registry_validator(obj_type)
    seen = 0
    for kind, value in EXAMPLES:
        if kind != obj_type:
            continue
        assert _problems(bundled, value) == [] == _problems(reference, value)
        for variant in variants(value):
            assert _problems(bundled, variant) == _problems(reference, variant), variant
            seen += 1
    assert seen > 10


@pytest.mark.parametrize("obj_type", schema.known_types())
@settings(max_examples=30, deadline=None)
@given(value=JSON)
def test_bundled_validators_agree_on_arbitrary_json(obj_type: str, value: Any) -> None:
    assert _problems(schema._validator(obj_type), value) == \
        _problems(_registry_validator(obj_type), value)


def test_definition_validators_agree_with_the_registry() -> None:
    schemas, _ = schema._load()
    for obj_type, document in schemas.items():
        for name in document.get("$defs", {}):
            ref = {"$ref": f"{schema.BASE_URI}{obj_type}.json#/$defs/{name}"}
            reference = schema._StrictValidator(ref, registry=STRICT_REGISTRY,
                                                 format_checker=schema._FORMATS)
            bundled = schema._def_validator(obj_type, name)
            for value in REPLACEMENTS:
                assert _problems(bundled, value) == _problems(reference, value), (obj_type, name)


def test_strict_rules_now_hold_inside_referenced_documents() -> None:
    """Before bundling, a ``$ref`` to a whole document (``"signal-feedback.json"``,
    ``"policy.json"``) made jsonschema validate that part with the stock draft 2020-12
    class, named by the document's ``$schema``: the strict rules (anchored patterns, no
    1.0 for an integer) did not hold there.  Bundled, they hold everywhere, as the module
    says.  (Objects were strict anyway where their nested parts are built and validated on
    their own, e.g. a genesis's policy.)"""
    schemas, registry = schema._load()
    stock = schema._StrictValidator(schemas["signal-status"], registry=registry,
                                    format_checker=schema._FORMATS)
    status = copy.deepcopy(next(v for t, v in EXAMPLES if t == "signal-status"
                                and v.get("feedback")))
    status["feedback"][0]["signed"]["network"] += "\n"
    assert _problems(stock, status) == []          # the old gap
    with pytest.raises(MalformedError, match="network: has the wrong format"):
        schema.validate("signal-status", status)


# --------------------------------------------------------------------------- the memory


def _event() -> dict[str, Any]:
    return copy.deepcopy(next(v for t, v in EXAMPLES if t == "event"))


def test_a_remembered_valid_value_does_not_let_its_lookalikes_through() -> None:
    event = _event()
    schema.validate("event", event)                 # valid, remembered
    for lookalike in (float(event["seq"]), True, str(event["seq"])):
        broken = {**event, "seq": lookalike}
        for _ in range(2):                          # refusals are not remembered either
            with pytest.raises(MalformedError):
                schema.validate("event", broken)
    signed = json.loads(json.dumps({"signed": event, "signatures": [
        {"keyid": "A" * 42 + "A", "sig": "A" * 85 + "A"}]}))
    schema.validate("envelope", signed)
    as_tuple = {**signed, "signatures": tuple(signed["signatures"])}
    with pytest.raises(MalformedError):             # a tuple is not a JSON array
        schema.validate("envelope", as_tuple)


def test_a_value_changed_after_it_was_validated_is_checked_again() -> None:
    event = _event()
    schema.validate("event", event)
    event["seq"] = 0
    with pytest.raises(MalformedError):
        schema.validate("event", event)


def test_the_memory_is_bounded() -> None:
    for i in range(schema._MEMO_ENTRIES + 50):
        schema.validate_def("common", "acting_user", f"user-{i}")
    assert len(schema._valid) <= schema._MEMO_ENTRIES
    big = {**_event(), "ciphertext": "A" * (schema._MEMO_CHARS + 10)}   # valid, but large
    schema.validate("event", big)
    assert not any(key[2] == repr(big) for key in schema._valid)


def test_key_ids_are_the_same_remembered_or_not() -> None:
    raw = Signer.generate().verify_key.raw
    first = key_id(raw)
    assert key_id(bytearray(raw)) == first == key_id(bytes(raw))
    assert key_id(raw) == schema_free_key_id(raw)


def schema_free_key_id(raw: bytes) -> str:
    """protocol.md §2.1 computed from scratch: BLAKE2b-256 keyed "schakel/v1/key-id"."""
    import base64
    import hashlib
    digest = hashlib.blake2b(raw, digest_size=32, key=b"schakel/v1/key-id").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
