"""The API description works with standard tools and is exactly as strict as the server
(design §6; docs/protocol.md §14; ADR 0014).

The document under test is the one the real application serves at ``/v1/openapi.json``.
Three tools read it as it is: openapi-spec-validator validates it, schemathesis loads every
operation and draws requests for it, and openapi-python-client generates a client package
that imports.  Its request schemas refuse what the server refuses: every component gives
the same verdict as ``schakel.protocol.schema`` on every example object and thousands of variants
(checked with jsonschema-rs, whose regular expressions and formats follow JSON Schema
2020-12); each strictness gap the server once had against its document has a test here
that sends the request to the server as well.  The live fuzzing run is
tests/test_openapi_fuzz.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol import schema
from schakel.protocol.canonical import parse_json
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError
from tests.server_harness import World, assert_error, assert_status, running_world
from tests.strategies import json_paths, set_at
from tests.test_schema import EXAMPLES, variants
from tests.test_schema_verdicts import GAPS, TRICKY

shared_loop = pytest.mark.asyncio(loop_scope="module")
COMPONENTS = "#/components/schemas/"
CONSISTENCY = "/v1/networks/{network}/audit/proof/consistency"
INCLUSION = "/v1/networks/{network}/audit/proof/inclusion"
ENTRIES = "/v1/networks/{network}/audit/entries"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    async with running_world(tmp_path_factory.mktemp("openapi")) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def document(world: World) -> dict[str, Any]:
    return assert_status(await world.caller.get("/v1/openapi.json"), 200)


def component_validator(document: dict[str, Any], name: str) -> Any:
    """A JSON Schema 2020-12 validator (jsonschema-rs: ECMA-262-like patterns, asserted
    formats) of one component, its references resolved inside the document."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="comes with schemathesis")
    return jsonschema_rs.validator_for(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": COMPONENTS + name,
         "components": document["components"]}, validate_formats=True)


def parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    return next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name)


# --------------------------------------------------------------------------- the three tools


@shared_loop
async def test_openapi_document_passes_openapi_spec_validator(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator", reason="a test dependency")
    validator.validate(document)


@shared_loop
async def test_schemathesis_loads_and_draws_every_operation(document: dict[str, Any]) -> None:
    schemathesis = pytest.importorskip("schemathesis", reason="a test dependency")
    from hypothesis import HealthCheck, given, settings

    loaded = schemathesis.openapi.from_dict(document)
    labels = []
    for result in loaded.get_all_operations():
        operation = result.ok()                    # raises for an operation it cannot read
        labels.append(operation.label)

        @given(operation.as_strategy())
        @settings(max_examples=1, database=None, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def draws(case: Any) -> None:
            assert case.operation.label == operation.label

        draws()
    assert sorted(labels) == sorted(f"{m.upper()} {p}" for p, item in document["paths"].items()
                                    for m in item)


@shared_loop
async def test_openapi_python_client_generates_a_client_that_imports(
        document: dict[str, Any], tmp_path: Path) -> None:
    generator = Path(sys.executable).with_name("openapi-python-client")
    if not generator.exists():
        pytest.skip("openapi-python-client (a test dependency) is not installed")
    (tmp_path / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    # No post hooks: the generated code is imported, not formatted (ruff need not be on PATH).
    (tmp_path / "config.yaml").write_text("project_name_override: schakel_api_client\n"
                                          "post_hooks: []\n", encoding="utf-8")
    run = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--config", "config.yaml",
         "--meta", "none", "--output-path", "schakel_api_client"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Warning" not in output and "Unable to" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module("schakel_api_client")
        modules = [m.name for m in pkgutil.walk_packages(package.__path__, "schakel_api_client.")]
        for name in modules:
            importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "schakel_api_client"]:
            del sys.modules[name]
    operations = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    endpoints = {m.rsplit(".", 1)[1] for m in modules if ".api." in m and m.count(".") == 3}
    assert endpoints == operations


# --------------------------------------------------------------------------- the components


@shared_loop
async def test_openapi_components_are_flat_and_every_ref_resolves(document: dict[str, Any]) -> None:
    """JSON Schema's ``$id``-relative references (``common.json#/$defs/id``) and pointers
    into a component (``#/components/schemas/error/$defs/body``) broke every tool: each
    reference is ``#/components/schemas/<name>`` and names a component."""
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert not {"$id", "$defs", "$schema"} & set(node), sorted(node)
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document["paths"])
    walk(schemas)
    assert refs
    for target in refs:
        assert target.startswith(COMPONENTS) and target[len(COMPONENTS):] in schemas, target
    assert re.fullmatch(r"[A-Za-z0-9._-]+", "".join(schemas))


@shared_loop
async def test_openapi_components_give_the_protocols_verdicts(document: dict[str, Any]) -> None:
    """Each object type's component accepts exactly what ``schakel.protocol.schema`` accepts of the
    same JSON text, on every example object, its variants and tricky values planted in it.

    ``schema.validate`` itself gives the protocol's verdict on every text the component accepts
    and on every value that is not plain JSON (a float).  Where the component refuses plain
    JSON, the protocol's verdict is that of its first validator (jsonschema-rs on the protocol's
    own schema files), which ``validate`` follows and whose agreement with the reference on this
    very corpus tests/test_schema_verdicts.py holds: asking ``validate`` there would have the
    reference word every error of some 60,000 refusals (minutes of CPU) to say "no" again."""
    compared = 0
    for obj_type, texts in _candidates().items():
        documented = component_validator(document, obj_type).is_valid
        first = schema._validators(obj_type).fast.is_valid
        for text in texts:
            value = parse_json(text)
            accepted = documented(json.loads(text))
            if accepted or not schema._plain_json(value) or first(value):
                assert accepted == _validates(obj_type, value), (obj_type, text)
            compared += 1
    assert compared > 10_000


def _candidates() -> dict[str, list[str]]:
    """Each object type's JSON texts to compare: every example object, its variants and each
    tricky value planted at each of its paths, each distinct text once."""
    texts: dict[str, dict[str, None]] = {}
    for obj_type, value in EXAMPLES:
        seen = texts.setdefault(obj_type, {})
        for candidate in [*variants(value), *(set_at(value, path, new) for path in json_paths(value)
                                              for new in (*TRICKY, *GAPS))]:
            seen[json.dumps(candidate)] = None
    return {obj_type: list(seen) for obj_type, seen in texts.items()}


def _validates(obj_type: str, value: Any) -> bool:
    try:
        schema.validate(obj_type, value)
    except MalformedError:
        return False
    return True


# --------------------------------------------------------------------------- each gap, closed


@shared_loop
async def test_openapi_receipt_header_refuses_empty_and_non_canonical_tokens(
        world: World, document: dict[str, Any]) -> None:
    header = parameter(document, "/v1/signals/status", "Schakel-Receipt")
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="comes with schemathesis")
    valid = jsonschema_rs.validator_for(header["schema"]).is_valid
    unknown = b64e(random_bytes(32))
    assert valid(unknown)
    assert_error(await world.caller.get("/v1/signals/status",
                                        headers=(("Schakel-Receipt", unknown),)), 404, "not_found")
    for token in ("", "A" * 42 + "B", "A" * 43 + "=", unknown[:-1], unknown + "A"):
        assert not valid(token), token
        reply = await world.caller.get("/v1/signals/status", headers=(("Schakel-Receipt", token),))
        assert_error(reply, 400, "malformed")


@shared_loop
async def test_openapi_base64url_refuses_non_canonical_encodings(document: dict[str, Any]) -> None:
    """``AB`` has non-zero bits after its one byte and ``ABCDE`` a length of 4n+1: both are
    refused by ``b64d``, so by the server, and now by every base64url schema of the document."""
    schemas = document["components"]["schemas"]
    assert component_validator(document, "common.b64").is_valid("AA")
    for bad in ("AB", "AAB", "ABCDE", "AAAAAB"):
        assert not component_validator(document, "common.b64").is_valid(bad), bad
        with pytest.raises(MalformedError):
            schema.validate_def("common", "b64", bad)
    bounded = [node for node in _nodes(schemas) if str(node.get("pattern", "")).startswith(
        "^(?:[A-Za-z0-9_-]{4}){")]
    assert len(bounded) > 5, "the length-bounded base64url fields are not written out"
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="comes with schemathesis")
    for node in bounded:
        valid = jsonschema_rs.validator_for(node).is_valid
        canonical = b64e(bytes(-(-node["minLength"] * 3 // 4)))    # the shortest allowed
        assert valid(canonical), (node, canonical)
        assert not valid(canonical[:-1] + "B" if len(canonical) % 4 else canonical + "A"), node


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object inside ``node``."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


@shared_loop
async def test_openapi_timestamps_refuse_year_zero_as_the_server_does(
        document: dict[str, Any]) -> None:
    """RFC 3339 has a year 0000; the server's timestamps (Python datetimes) start at 0001."""
    timestamp = component_validator(document, "common.timestamp")
    assert timestamp.is_valid("0001-01-01T00:00:00Z")
    with pytest.raises(MalformedError):
        schema.validate_def("common", "timestamp", "0000-01-01T00:00:00Z")
    assert not timestamp.is_valid("0000-01-01T00:00:00Z")


@shared_loop
async def test_openapi_printable_text_pattern_is_exactly_str_isprintable(
        document: dict[str, Any]) -> None:
    printable = document["components"]["schemas"]["common.printable_text"]
    assert printable["format"] == "printable"
    matcher = re.compile(printable["pattern"])
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue                                 # surrogates are not JSON text
        char = chr(code)
        assert (matcher.fullmatch(char) is not None) == char.isprintable(), hex(code)


@shared_loop
async def test_openapi_states_that_keyids_are_distinct(world: World,
                                                       document: dict[str, Any]) -> None:
    """The server refuses an envelope that names a key id twice; JSON Schema cannot say
    "distinct by a member", so the document says it with ``x-schakel-distinct`` (and
    ``uniqueItems`` refuses an entry repeated as a whole)."""
    schemas = document["components"]["schemas"]
    signatures = schemas["common.envelope"]["properties"]["signatures"]
    assert signatures["x-schakel-distinct"] == "keyid" and signatures["uniqueItems"] is True
    assert schemas["epoch-key-distribution"]["properties"]["keys"]["x-schakel-distinct"] == \
        "recipient"
    assert schemas["bemoeizorg-invocation"]["properties"]["justification"][
        "x-schakel-distinct"] == "auditor"
    a = world.a
    membership = a.membership(a.actor("twice-signed", ring="core"))
    twice = {**membership, "signatures": membership["signatures"] * 2}
    assert not component_validator(document, "envelope").is_valid(twice)
    reply = await world.caller.post(a.path("/members"), a.coordinator, {"membership": twice})
    assert_error(reply, 400, "malformed")


@shared_loop
async def test_openapi_consistency_range_old_above_new_is_stated_and_refused(
        world: World, document: dict[str, Any]) -> None:
    """``old > new`` (and an inclusion ``index >= size``) is a rule across two parameters,
    which JSON Schema cannot state: the document states it as ``x-schakel-at-most`` /
    ``x-schakel-below``, and the route declaration that writes it also enforces it."""
    assert parameter(document, CONSISTENCY, "old")["x-schakel-at-most"] == "new"
    assert parameter(document, INCLUSION, "index")["x-schakel-below"] == "size"
    a, coordinator = world.a, world.a.coordinator
    for query, field in (("/audit/proof/consistency?old=3&new=2", "old"),
                         ("/audit/proof/inclusion?index=2&size=2", "index")):
        reply = await world.caller.get(a.path(query), coordinator)
        assert_error(reply, 400, "malformed")
        assert reply.json["error"]["details"] == {"field": field}
    assert_status(await world.caller.get(a.path("/audit/proof/consistency?old=1&new=1"),
                                         coordinator), 200)


@shared_loop
async def test_openapi_describes_the_proofs_of_an_audit_page(world: World,
                                                             document: dict[str, Any]) -> None:
    """``size`` on ``GET .../audit/entries`` is optional with no default, and the answer's
    schema describes the ``proof`` its items then carry: the server's real page meets it,
    and a page whose proof holds anything but 32-byte hashes does not."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="comes with schemathesis")
    size = parameter(document, ENTRIES, "size")
    assert not size["required"] and "default" not in size["schema"]
    answer = document["paths"][ENTRIES]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    validator = jsonschema_rs.validator_for(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [answer],
         "components": document["components"]}, validate_formats=True)
    a, auditor = world.a, world["auditor"]
    head = assert_status(await world.caller.get(a.path("/audit/head"), auditor), 200)
    page = assert_status(await world.caller.get(a.path(
        f"/audit/entries?size={head['tree_head']['signed']['size']}"), auditor), 200)
    assert page["items"] and all(item["proof"] for item in page["items"][1:])
    validator.validate(page)
    for broken in ("AAAA", 7, [b64e(bytes(31))]):
        assert not validator.is_valid(set_at(page, ("items", 1, "proof"), broken)), broken


@shared_loop
async def test_server_reads_whole_number_floats_as_the_integers_they_are(
        world: World, document: dict[str, Any]) -> None:
    """JSON Schema 2020-12 -- the document's dialect -- counts ``1.0`` as an integer, and
    RFC 8785 writes it ``1``: a signed object whose integer is spelled ``1.0`` has the
    same canonical form and signature as with ``1``, and the server accepts it."""
    assert component_validator(document, "common.version").is_valid(1.0)
    a = world.a
    newcomer = a.actor("whole-float", ring="core")
    body = json.dumps({"membership": a.membership(newcomer)}, separators=(",", ":"))
    assert '"serial":1,' in body
    reply = await world.caller("POST", a.path("/members"), a.coordinator,
                               body=body.replace('"serial":1,', '"serial":1.0,').encode())
    assert assert_status(reply, 201) == {"member": newcomer.key_id, "serial": 1}
    members = assert_status(await world.caller.get(a.path("/members"), a.coordinator), 200)
    stored = [m for m in members["memberships"] if m["signed"]["member"] == newcomer.key_id]
    assert [m["signed"]["serial"] for m in stored] == [1]
    assert type(stored[0]["signed"]["serial"]) is int
