"""The API description drives a fuzzer: schemathesis against a live server (design §6;
docs/protocol.md §14; ADR 0014).

A real ``schakel serve`` on a free loopback port with a real SQLite file holds the standard
world (``tests/server_harness.build_world``, registered over HTTP).  Schemathesis reads the
document the server serves at ``/v1/openapi.json`` -- as it is, nothing rewritten -- and
generates requests for every operation in it, schema-valid (positive) and schema-violating
(negative), a fixed number per operation and mode, derandomised so that every run sends the
same requests:

* **signed**: every request is signed (RFC 9421) by the network's coordinator over the bytes
  that go on the wire, and the ``network`` and ``case`` in the path are the world's, so that
  requests get past authentication into the handlers;
* **unsigned**: the same operations without a signature, which must meet the documented
  401 (or another documented 4xx) error.

Every answer must be documented: no 5xx, a documented status, the documented content type
and body; an error is the JSON error object.  A schema-valid request must not be refused
as malformed (positive data acceptance) and a schema-violating one must be refused
(negative data rejection), so the document is exactly as strict as the server.  The rules
JSON Schema cannot state -- one parameter below another, no two items of a list with the same
key id -- are in the document as ``x-schakel-*`` extensions (ADR 0014); schemathesis does not
read extensions, so :func:`cross_rules` turns them into its filter hooks.

The run is bounded: :data:`EXAMPLES` requests per operation and mode, and the server holds
a sync long-poll at most a second (``limits.max_wait``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency")
requests = pytest.importorskip("requests", reason="requests comes with schemathesis")

from hypothesis import HealthCheck, Phase, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from multidict import CIMultiDict  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.errors import InvalidSchema  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi import checks  # noqa: E402

from schakel.cli.serverprocess import ServerProcess  # noqa: E402
from schakel.protocol.httpsig import sign_request  # noqa: E402
from tests.server_harness import (  # noqa: E402
    Actor, Caller, RealClock, Reply, SessionTransport, World, build_world, error_shape_problems,
    new_nonce,
)

#: Requests per operation and generation mode (Hypothesis stops earlier when an operation
#: has fewer distinct inputs).
EXAMPLES = 5
RUN = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
# The document states ``format: printable`` exactly, as a pattern of some 700 ranges
# (server/openapi.py); Hypothesis takes ~0.4 s to build a generator from such a class, for
# every field that has one, so the run draws printable text from the format instead.
schemathesis.openapi.format("printable", st.text(st.characters(codec="utf-8").filter(
    str.isprintable), min_size=1, max_size=200))
CHECKS = [not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance,
          checks.positive_data_acceptance, checks.negative_data_rejection]
SIGNATURE_HEADERS = ("Content-Digest", "Schakel-Acting-User", "Signature-Input", "Signature")

class SignedBy(requests.auth.AuthBase):
    """Signs each request as it goes on the wire (method, URL and body bytes final) in the
    Schakel profile (docs/protocol.md §10), as a partner's client would."""

    def __init__(self, actor: Actor, origin: str) -> None:
        self.actor, self.origin = actor, origin

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in SIGNATURE_HEADERS:
            r.headers.pop(name, None)
        body = r.body or b""
        body = body.encode("utf-8") if isinstance(body, str) else body
        r.headers.update(sign_request(r.method or "GET", self.origin + r.path_url, (), body,
                                      self.actor.signer, created=int(time.time()),
                                      nonce=new_nonce(), acting_user=self.actor.acting_user))
        return r


@dataclass
class Live:
    server: ServerProcess
    world: World
    document: dict[str, Any]


async def _bootstrap(server: ServerProcess) -> tuple[World, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        caller = Caller(SessionTransport(session, server.url), server.url, RealClock())
        world = await build_world(caller)
        async with session.get(server.url + "/v1/openapi.json") as resp:
            return world, await resp.json()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("fuzz")
    # A generated ``wait`` would hold a sync request up to 30 s; the server's own limit
    # (docs/protocol.md §14: a server may lower it) keeps the run short.
    server = ServerProcess(root / "data", limits={"max_wait": 1})
    try:
        server.start()
        world, document = asyncio.run(_bootstrap(server))
        yield Live(server, world, document)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the x-schakel-* rules


@dataclass
class CrossRules:
    """The document's ``x-schakel-*`` rules: per operation, query parameters that must stay
    below (or not exceed) another; per list member name, the key its items must not share."""

    query: dict[tuple[str, str], list[tuple[str, Callable[[int, int], bool], str]]] = field(
        default_factory=dict)
    distinct: dict[str, str] = field(default_factory=dict)

    def query_ok(self, method: str, path: str, query: Any) -> bool:
        for name, holds, other in self.query.get((method.lower(), path), []):
            if isinstance(query, dict) and isinstance(query.get(name), int) and \
                    isinstance(query.get(other), int) and not holds(query[name], query[other]):
                return False
        return True

    def body_ok(self, value: Any) -> bool:
        if isinstance(value, list):
            return all(self.body_ok(item) for item in value)
        if not isinstance(value, dict):
            return True
        for name, items in value.items():
            key = self.distinct.get(name)
            if key is not None and isinstance(items, list):
                seen = [json.dumps(i[key]) for i in items if isinstance(i, dict) and key in i]
                if len(seen) != len(set(seen)):
                    return False
        return all(self.body_ok(item) for item in value.values())


def cross_rules(document: dict[str, Any]) -> CrossRules:
    rules = CrossRules()
    relations = {"x-schakel-below": lambda a, b: a < b, "x-schakel-at-most": lambda a, b: a <= b}
    for path, item in document["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                for key, holds in relations.items():
                    if key in param:
                        rules.query.setdefault((method, path), []).append(
                            (param["name"], holds, param[key]))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "x-schakel-distinct" in sub:
                    rules.distinct[name] = sub["x-schakel-distinct"]
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(document["components"]["schemas"])
    return rules


def test_cross_rules_are_read_from_the_document(live: Live) -> None:
    rules = cross_rules(live.document)
    assert rules.distinct == {"signatures": "keyid", "keys": "recipient",
                              "justification": "auditor"}
    assert not rules.query_ok("GET", "/v1/networks/{network}/audit/proof/consistency",
                              {"old": 3, "new": 2})
    assert rules.query_ok("GET", "/v1/networks/{network}/audit/proof/consistency",
                          {"old": 2, "new": 2})
    assert not rules.query_ok("GET", "/v1/networks/{network}/audit/proof/inclusion",
                              {"index": 2, "size": 2})
    assert not rules.body_ok({"x": {"signatures": [{"keyid": "k", "sig": "a"},
                                                   {"keyid": "k", "sig": "b"}]}})


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    not_generated: list[tuple[str, str]] = field(default_factory=list)
    #: Negative draws schemathesis could not build (:func:`buildable`), per operation.
    unbuildable: Counter[str] = field(default_factory=Counter)

    def fail(self, label: str, mode: str, check: str, text: str) -> None:
        self.failures.setdefault((label, mode, check), text[:1500])


#: What schemathesis 4.32 raises when it cannot build a generator for an array schema it
#: produced itself by mutating a valid one (a negative case): e.g. for ``{"items": {"$ref": a
#: string pattern}, "contains": {"anyOf": [non-string, ...]}}`` it drops the non-strings that
#: meet both and finds no element, though ``[1]`` is one.
UNBUILDABLE = "Cannot generate an array with"


def buildable(strategy: Any, label: str, outcome: Outcome) -> Any:
    """``strategy``'s negative cases, a draw schemathesis cannot build (:data:`UNBUILDABLE`)
    rejected and counted rather than ending the run: which mutation Hypothesis picks for an
    operation differs between runs of the suite, and a generator's limit says nothing about the
    document or the server.  Every other error still fails the test, and an operation that
    yields no negative case at all is still reported (``not_generated``)."""

    @st.composite
    def cases(draw: Callable[[Any], Any]) -> Any:
        try:
            return draw(strategy)
        except InvalidSchema as exc:
            if UNBUILDABLE not in str(exc):
                raise
            outcome.unbuildable[label] += 1
            reject()

    return cases()


def _unbuildable_when_zero(i: int) -> int:
    if i == 0:
        raise InvalidSchema(f"{UNBUILDABLE} 1 demanded elements")
    return i


def test_an_unbuildable_negative_draw_is_rejected_and_counted() -> None:
    outcome, drawn = Outcome(), []

    @given(buildable(st.integers(0, 3).map(_unbuildable_when_zero), "GET /x", outcome))
    @settings(max_examples=40, derandomize=True, database=None)
    def draw(value: int) -> None:
        drawn.append(value)

    draw()
    assert outcome.unbuildable["GET /x"] > 0 and drawn and 0 not in drawn


def test_another_schemathesis_error_still_fails_the_run() -> None:
    def broken(i: int) -> int:
        raise InvalidSchema("Invalid `pattern` value")

    @given(buildable(st.integers().map(broken), "GET /x", Outcome()))
    @settings(max_examples=5, derandomize=True, database=None)
    def draw(value: int) -> None:
        pass

    with pytest.raises(InvalidSchema, match="pattern"):
        draw()


def _inputs(op: dict[str, Any], pinned: set[str], *, signed: bool) -> bool:
    """Whether an operation has anything left that a negative case could break (the
    pinned path parameters and, signed, the signature are fixed)."""
    params = [p for p in op.get("parameters", []) if p["name"] not in pinned]
    return bool(params or op.get("requestBody") or (op.get("security") and not signed))


def fuzz(live: Live, *, signed: bool) -> Outcome:
    base, world = live.server.url, live.world
    schema = schemathesis.openapi.from_dict(live.document)
    rules = cross_rules(live.document)

    @schema.hook("filter_query")
    def query_rules(context: Any, query: Any) -> bool:
        return rules.query_ok(context.operation.method, context.operation.path, query)

    @schema.hook("filter_body")
    def body_rules(context: Any, body: Any) -> bool:
        return rules.body_ok(body)

    auth = {"auth": SignedBy(world.a.coordinator, base)} if signed else {}
    chosen = CHECKS if signed else [*CHECKS, checks.ignored_auth]
    session = requests.Session()
    outcome = Outcome()
    for result in schema.get_all_operations():
        op = result.ok()
        pinned = {k: v for k, v in (("network", world.a.id), ("case", world.case.case))
                  if signed and "{" + k + "}" in op.path}
        # Signed: the signature is the signer's, so schemathesis must neither generate nor
        # drop it (its negative cases would be signed all the same).
        headers = {"Signature": "computed by the signer"} if signed else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode, path_parameters=pinned or None,
                                      headers=headers)

            if mode is GenerationMode.NEGATIVE:
                strategy = buildable(strategy, op.label, outcome)
            try:
                _send_each(strategy, f"{op.label}", mode.value, base, session, auth, chosen,
                           outcome)
            except Unsatisfiable:
                definition = live.document["paths"][op.path][op.method.lower()]
                if mode is GenerationMode.POSITIVE or _inputs(definition, set(pinned),
                                                                   signed=signed):
                    outcome.not_generated.append((op.label, mode.value))
    return outcome


def _send_each(strategy: Any, label: str, mode: str, base: str, session: Any,
               auth: dict[str, Any], chosen: list[Any], outcome: Outcome) -> None:
    """Send every case ``strategy`` draws (:data:`RUN`) and check each answer."""

    @given(strategy)
    @RUN
    def one(case: Any) -> None:
        response = case.call(base_url=base, session=session, **auth)
        outcome.calls[(label, mode)] += 1
        outcome.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=chosen,
                                   transport_kwargs={"base_url": base, **auth})
        except FailureGroup as group:
            for exc in group.exceptions:
                outcome.fail(label, mode, type(exc).__name__,
                             f"{exc}\n{response.status_code} {response.text[:500]}\n"
                             f"{case.as_curl_command()[:1500]}")
        if response.status_code >= 400:
            headers = CIMultiDict((k, v) for k, vs in response.headers.items() for v in vs)
            problems = error_shape_problems(Reply(response.status_code, headers,
                                                  response.content))
            if problems:
                outcome.fail(label, mode, "error body", f"{problems}: {response.text}")

    one()


def _assert_clean(live: Live, outcome: Outcome, *, signed: bool) -> None:
    """Every operation ran positive cases, every one with inputs left negative cases
    too (``not_generated``), and no check failed."""
    documented = {f"{m.upper()} {p}" for p, item in live.document["paths"].items() for m in item}
    ran = {label for label, mode in outcome.calls if mode == "positive"}
    assert ran == documented, f"operations skipped: {sorted(documented - ran)}"
    if not signed:
        breakable = {f"{m.upper()} {p}" for p, item in live.document["paths"].items()
                     for m, op in item.items() if _inputs(op, set(), signed=False)}
        ran = {label for label, mode in outcome.calls if mode == "negative"}
        assert ran == breakable, f"no negative cases for {sorted(breakable - ran)}"
    assert not outcome.not_generated, f"no cases generated for {outcome.not_generated}"
    report = "\n\n".join(f"{label} [{mode}] {check}:\n{text}"
                         for (label, mode, check), text in sorted(outcome.failures.items()))
    assert not outcome.failures, f"{len(outcome.failures)} kinds of failure:\n{report}"


def test_schemathesis_signed_requests_meet_the_document(live: Live) -> None:
    outcome = fuzz(live, signed=True)
    _assert_clean(live, outcome, signed=True)
    assert outcome.statuses[200] and outcome.statuses[401], outcome.statuses


def test_schemathesis_unsigned_requests_meet_the_document(live: Live) -> None:
    outcome = fuzz(live, signed=False)
    _assert_clean(live, outcome, signed=False)
    assert outcome.statuses[401] and not any(500 <= s for s in outcome.statuses), outcome.statuses
