"""protocol/schema.py: the strict rules, where schemas come from, and the example objects.

``EXAMPLES`` (every example object of the object tests, and every vector) and ``variants``
(broken versions of each) feed tests/test_schema_verdicts.py, which compares the two
validators' verdicts, and the OpenAPI tests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from schakel.protocol import schema
from schakel.protocol.crypto import Signer, key_id
from schakel.protocol.errors import MalformedError
from tests.strategies import delete_at, json_paths, set_at
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


def variants(value: Any) -> Iterator[Any]:
    """``value``, and versions of it with one member removed, replaced or added."""
    yield value
    for path in json_paths(value):
        for new in REPLACEMENTS:
            yield set_at(value, path, new)
        yield delete_at(value, path)
    for path in [(), *json_paths(value)]:
        node = value
        for step in path:
            node = node[step]
        if isinstance(node, dict):
            yield set_at(value, (*path, "extra_member"), "x") if path else {**value, "extra_member": "x"}


def _event() -> dict[str, Any]:
    return copy.deepcopy(next(v for t, v in EXAMPLES if t == "event"))


def test_strict_rules_hold_inside_referenced_documents() -> None:
    """A ``$ref`` to a whole document (``"signal-feedback.json"``, ``"policy.json"``) keeps
    the strict rules (anchored patterns, no 1.0 for an integer) inside it: jsonschema would
    switch to its stock draft 2020-12 class there if the document kept its ``$schema``."""
    status = copy.deepcopy(next(v for t, v in EXAMPLES if t == "signal-status"
                                and v.get("feedback")))
    status["feedback"][0]["signed"]["network"] += "\n"
    with pytest.raises(MalformedError, match="network: has the wrong format"):
        schema.validate("signal-status", status)
    assert schema.problems("signal-status", status) == [
        "feedback[0].signed.network: has the wrong format"]


def test_values_that_only_look_valid_are_refused() -> None:
    event = _event()
    schema.validate("event", event)
    for lookalike in (float(event["seq"]), True, str(event["seq"])):
        broken = {**event, "seq": lookalike}
        for _ in range(2):
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


@pytest.mark.parametrize("name", sorted(schema.schema_documents()))
def test_every_schema_document_is_a_valid_draft_2020_12_schema(name: str) -> None:
    """The shipped schema files against the draft 2020-12 meta-schema (checked here, once,
    rather than by every process that loads them)."""
    jsonschema.Draft202012Validator.check_schema(schema.schema_documents()[name])


def test_no_schema_is_fetched_from_anywhere() -> None:
    """A reference outside the protocol's own documents is refused when the validator is
    built: nothing is retrieved over the network or from files."""
    for ref in ("https://example.com/schema.json", "https://schakel.invalid/v1/missing.json",
                "file:///etc/passwd"):
        with pytest.raises(ValueError, match="no schema is fetched"):
            schema._build({"$ref": ref})


def test_every_format_the_schemas_name_is_asserted() -> None:
    """jsonschema-rs knows formats jsonschema's checker here does not assert (``email``,
    ``uri``): a schema naming one would get two verdicts, so loading it is refused."""
    named = set().union(*(schema._formats_in(d) for d in schema.schema_documents().values()))
    assert named == set(schema._FORMAT_TESTS) == {"date-time", "printable"}
    assert schema._formats_in({"properties": {"a": {"format": "email"}}}) == {"email"}


def test_email_refuses_the_same_white_space_in_every_regex_dialect() -> None:
    """``\\s`` means different characters to Python (U+001C..U+001F, U+0085), ECMA-262
    (U+FEFF) and Rust: the e-mail pattern spells out the white space it refuses, so every
    validator of the schema (and of the OpenAPI document) gives the same verdict."""
    pair = schema._validators("identity-contact")

    def contact(char: str) -> dict[str, str]:
        return {"email": f"a{char}b@c{char}d"}

    fast = [hex(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF
            and pair.fast.is_valid(contact(chr(code))) != (not chr(code).isspace()
                                                            and chr(code) != "@")]
    assert fast == []
    for char in [c for c in map(chr, range(0x3001)) if c.isspace()] + ["\ufeff", "\u180e", "@"]:
        assert pair.reference.is_valid(contact(char)) == pair.fast.is_valid(contact(char)), \
            hex(ord(char))


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


def test_the_audit_actions_are_the_schemas() -> None:
    """The library's list of audit actions and the audit-entry schema's enum are one list,
    so code that walks every action (reports, docs) misses none."""
    from schakel.protocol.objects.audit import ACTIONS
    enum = schema.schema_of("audit-entry")["properties"]["action"]["enum"]
    assert sorted(ACTIONS) == sorted(enum)
