"""Bad input loses nothing (issue 3, "Done when"; design §6; docs/protocol.md §14).

Walks ``/v1/openapi.json`` and sends every route garbage -- truncated JSON, wrong types,
missing and unknown fields, an oversized body, invalid base64, wrong key lengths, deep
nesting, duplicate keys, a non-JSON content type, bad query parameters and path ids,
and Hypothesis-generated JSON -- each request *signed by a legitimate member*, so that
the body is what gets judged.  Every answer must be a 4xx with the error shape
``{"error": {"code", "message", "details"}}`` (never a 500, never a trace), and
afterwards the server must still work and hold exactly what it held before.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.keys import issue_policy
from schakel.keys.rotation import rotate
from schakel.protocol import envelopes
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.objects.cases import CaseHeader, IdentityPurge
from schakel.protocol.objects.disclosure import PurgeAck, Referral, ReferralBasis
from tests import disclosure_harness as dh
from tests.server_harness import (
    Actor, CaseState, FakeClock, InProcessServer, Network, Reply, World, append, assert_status,
    build_world, create_case, error_shape_problems, new_id,
)
from tests.strategies import JSON, json_paths

shared_loop = pytest.mark.asyncio(loop_scope="module")
HYPOTHESIS = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
ONE_MIB = 1 << 20


# ------------------------------------------------------------------ the world and its snapshot


@dataclass
class GarbageWorld(World):
    """The standard world and a subset case of core-formal (with the coordinator), whose
    audience ``POST .../audience`` widens (ADR 0031)."""

    subset: CaseState | None = None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("garbage"), FakeClock())
    caller = await server.start()
    try:
        w = await build_world(caller)
        subset = await create_case(caller, w.a, w["core-formal"], audience=())
        yield GarbageWorld(**vars(w), subset=subset)
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def before(world: World) -> dict[str, Any]:
    """What the server holds before any garbage arrives."""
    return await snapshot(world)


async def snapshot(w: World) -> dict[str, Any]:
    """Everything a coordinator and the case owner can read, and the signal receipts.
    The audit logs are read first and the networks without their latest tree head: the
    snapshot's own reads of case data are logged (protocol.md §15.6), so each snapshot
    adds its own ``read`` entries (:func:`own_reads`)."""
    c, a = w.caller, w.a
    out: dict[str, Any] = {"log a": await dh.audit_log(c, a), "log b": await dh.audit_log(c, w.b)}
    reads = {
        "network": (a.path(), a.coordinator),
        "members": (a.path("/members"), a.coordinator),
        "sync": (a.path("/sync?after=0&limit=500&wait=0"), a.coordinator),
        "epochs": (a.path("/epochs/mine"), a.coordinator),
        "signals": (a.path("/signals?after=0&limit=500"), a.coordinator),
        "hints": (a.path("/hints?after=0"), a.coordinator),
        "case": (a.path(f"/cases/{w.case.case}"), w.case.owner),
        "b-network": (w.b.path(), w.b.coordinator),
        "b-sync": (w.b.path("/sync?after=0&limit=500&wait=0"), w.b.coordinator),
    }
    out |= {name: assert_status(await c.get(path, actor), 200)
            for name, (path, actor) in reads.items()}
    for name in ("network", "b-network"):
        out[name].pop("tree_head")
    for draft in (w.shell_signal, w.anonymous_signal):
        out[f"status {draft.source}"] = assert_status(
            await c.get("/v1/signals/status", headers=(("Schakel-Receipt", draft.receipt or ""),)), 200)
    return out


def own_reads(w: World, taken: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The ``read`` entries the snapshot ``taken`` appended to each log after reading it
    (its syncs that served items and its read of the case), by action, actor and cases."""
    a, b = w.a, w.b
    served = {"log a": [(a.coordinator.key_id, [i["case"] for i in taken["sync"]["items"]]),
                        (w.case.owner.key_id, [w.case.case])],
              "log b": [(b.coordinator.key_id, [i["case"] for i in taken["b-sync"]["items"]])]}
    return {log: [{"action": "read", "partner": partner, "cases": list(dict.fromkeys(cases))}
                  for partner, cases in reads if cases]
            for log, reads in served.items()}


# ------------------------------------------------------------------ the routes, from OpenAPI


HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def _norm(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


#: An id that names nothing (16 zero bytes).
UNKNOWN_ID = b64e(bytes(16))


def fill(w: World, template: str) -> str:
    """A concrete path for an OpenAPI path template (ids of the world's network A)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if "network" in name:
            return w.a.id
        if "case" in name:
            return subset_of(w).case if _norm(template).endswith("/audience") else w.case.case
        if "signal" in name:
            return w.shell_signal.signal
        if name == "size":
            return "1"
        if name in ("consent", "invocation"):
            return UNKNOWN_ID        # garbage is refused before anything is looked up
        raise AssertionError(f"the garbage walker does not know path parameter {name!r}")
    return re.sub(r"\{([^}]+)\}", value, template)


async def operations(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    doc = assert_status(await w.caller.get("/v1/openapi.json"), 200)
    ops = [(method.upper(), path, op) for path, item in doc["paths"].items()
           for method, op in item.items() if method in HTTP_METHODS]
    assert ops, "the OpenAPI document lists no operations"
    return ops


#: The legitimate body of each POST route and who signs it: (top-level required keys, builder).
def valid_body(w: World, template: str) -> tuple[Actor, dict[str, Any], tuple[str, ...]]:
    """A body the route would accept (never sent as is), its signer, its required keys."""
    a, t = w.a, _norm(template)
    if t == "/v1/networks":
        # A second network of A's coordinator: the uploader is the genesis's coordinator.
        second = Network(w.server, w.clock, coordinator=w.a.coordinator)
        return a.coordinator, {"genesis": second.genesis}, ("genesis",)
    if t.endswith("/members"):
        newcomer = a.actor("newcomer", ring="core")
        return a.coordinator, {"membership": a.membership(newcomer)}, ("membership",)
    if t.endswith("/revocations"):
        return a.coordinator, {"revocation": a.revocation(w["core-informal"])}, ("revocation",)
    if t.endswith("/covenant"):
        return w["core-formal"], {"acceptance": a.acceptance(w["core-formal"])}, ("acceptance",)
    if t.endswith("/policies"):
        return a.coordinator, {"policy": issue_policy(
            a.coordinator.keys, network=a.id, version=2, issued=a.now(), policy=a.policy)}, (
            "policy",)
    if t.endswith("/epochs"):
        return a.coordinator, {"distribution": a.distribution()}, ("distribution",)
    if t.endswith("/rotations"):
        # Never sent as is (the garbage is): the coordinator key stays the same.
        _, rotation = rotate(a.coordinator.keys, reason="garbage walker",
                             at=a.now() + timedelta(minutes=1))
        return a.coordinator, {"rotation": rotation}, ("rotation",)
    if t.endswith("/cases"):
        body, _ = a.new_case(w["core-formal"])
        return w["core-formal"], body, ("header", "events")
    if t.endswith("/events"):
        return w["core-formal"], {"event": a.event(w.case, w["core-formal"])}, ("event",)
    if t.endswith("/shares"):
        return a.coordinator, {"share": a.share(w.case, w["shell"])}, ("share",)
    if t.endswith("/rekeys"):
        return w["core-formal"], {"rekey": a.rekey(w.case)}, ("rekey",)
    if t.endswith("/header"):
        return w["core-formal"], a.replacement(w.case, recipients=[w["shell"]]), (
            "header", "identity")
    if t.endswith("/gated"):
        return w["core-formal"], {"gated": a.gated(w.case, [w["shell"]])}, ("gated",)
    if t.endswith("/feedback"):
        return a.coordinator, {"feedback": a.feedback(w.shell_signal)}, ("feedback",)
    if t.endswith("/signals"):
        return w["shell"], a.signal(w["shell"]).body, ("signal",)
    if t.endswith("/card"):
        return a.coordinator, {"card": a.card()}, ("card",)
    if t.endswith("/audience"):
        # ``reason`` is free text (1..500 characters): "x" in its place is a valid reason,
        # so the walker varies the header; the hypothesis tests vary the whole body.
        return w["core-formal"], widening(w), ("header",)
    if t.endswith("/purges"):
        owner = w["core-formal"]
        return owner, {"purge": IdentityPurge(
            network=a.id, case=w.case.case, purge=new_id(), kind="erasure", identity_version=1,
            classes=("name",), acting_user=owner.acting_user, at=a.stamp(),
            reason="verzoek betrokkene").sign(owner.signer)}, ("purge",)
    if t.endswith("/lookups"):
        return a.coordinator, {"tokens": [a.token("bsn", "111222333")],
                               "purpose": "access-request"}, ("tokens", "purpose")
    disclosure = disclosure_body(w, t)
    if disclosure is not None:
        return disclosure
    raise AssertionError(f"the garbage walker has no legitimate body for POST {template}")


def subset_of(w: World) -> CaseState:
    assert isinstance(w, GarbageWorld) and w.subset is not None, "the world has a subset case"
    return w.subset


def widening(w: World) -> dict[str, Any]:
    """The subset case's header widened to core-informal, signed by its owner."""
    state, owner, added = subset_of(w), w["core-formal"], w["core-informal"]
    signed = dict(state.header["signed"])
    signed["audience"] = [*signed["audience"], added.key_id]
    signed["audience_keys"] = [*signed["audience_keys"], {
        "member": added.key_id, "version": 1, "sealed": envelopes.seal_case_key(
            added.box, state.case_key, network=w.a.id, case=state.case, version=1,
            recipient_id=added.key_id)}]
    return {"header": CaseHeader.from_json(signed).sign(owner.signer),
            "reason": "De wijkverpleging neemt de zorg over."}


def disclosure_body(w: World, t: str) -> tuple[Actor, dict[str, Any], tuple[str, ...]] | None:
    """Legitimate bodies of the disclosure routes (docs/protocol.md §15 §15.2)."""
    a, owner, auditor = w.a, w["core-formal"], w["auditor"]
    inv = dh.invocation(a, w.case, owner, auditors=[auditor])
    bodies: dict[str, tuple[Actor, dict[str, Any], tuple[str, ...]]] = {
        "/consents": (owner, {"consent": dh.consent(a, w.case, owner, classes=["name"],
                                                    parties=["formal"])}, ("consent",)),
        "/revocation": (owner, {"revocation": dh.revocation(a, w.case, UNKNOWN_ID, owner)},
                        ("revocation",)),
        "/grants": (a.coordinator, {"grant": dh.grant(a, w.case, owner, ["name"], UNKNOWN_ID)},
                    ("grant",)),
        "/releases": (owner, {"grant": UNKNOWN_ID, "release": UNKNOWN_ID}, ("grant", "release")),
        "/bemoeizorg": (owner, {"invocation": inv}, ("invocation",)),
        "/cosign": (owner, {"cosign": dh.cosign(a, inv, owner)}, ("cosign",)),
        "/release": (owner, {"release": UNKNOWN_ID}, ("release",)),
        "/reviews": (auditor, {"review": dh.review(a, auditor, entry=0)}, ("review",)),
        "/purge-acks": (owner, {"ack": PurgeAck(network=a.id, instruction=UNKNOWN_ID,
                                                case=w.case.case, acting_user=owner.acting_user,
                                                at=a.stamp()).sign(owner.signer)}, ("ack",)),
        "/referrals": (a.coordinator, {"referral": Referral(
            network=a.id, to_network=w.b.id, case=w.case.case, new_case=UNKNOWN_ID,
            basis=ReferralBasis(kind="consent", ref=UNKNOWN_ID),
            acting_user=a.coordinator.acting_user, at=a.stamp(),
            reason="verhuisd").sign(a.coordinator.signer)}, ("referral",)),
    }
    return next((body for suffix, body in bodies.items() if t.endswith(suffix)), None)


def signer_for(w: World, template: str) -> Actor:
    """A member the route admits, so a refusal is about the input, not the caller."""
    t = _norm(template)
    if any(t.endswith(s) for s in ("/signals", "/hints", "/feedback", "/notifications",
                                   "/access-report", "/bemoeizorg/{}", "/referrals",
                                   "/lookups",
                                   "/policies", "/rotations")) \
            or t == "/v1/networks":
        return w.a.coordinator
    return w["core-formal"]


# ------------------------------------------------------------------ the garbage


def _key32_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of strings that are 32 bytes in base64url (keys, hashes, ids of 32 bytes)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{43}", value):
        yield prefix
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _key32_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _key32_paths(v, (*prefix, i))


def _b64_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of long base64url strings (ciphertexts, sealed boxes, signatures)."""
    if isinstance(value, str) and len(value) >= 60 and re.fullmatch(r"[A-Za-z0-9_-]+", value):
        yield prefix
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _b64_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _b64_paths(v, (*prefix, i))


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def _deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def top_level_garbage(body: dict[str, Any], required: tuple[str, ...]
                      ) -> Iterator[tuple[str, bytes]]:
    """Bodies that are wrong as a whole or at the top level: 400 ``malformed``."""
    raw = json.dumps(body).encode()
    yield "truncated JSON", raw[: len(raw) // 2]
    yield "one byte short", raw[:-1]
    yield "not JSON", b"this is not json"
    yield "empty body", b""
    yield "invalid UTF-8", b'{"x": "\xff\xfe"}'
    yield "NaN", b'{"x": NaN}'
    yield "integer beyond 2^53", json.dumps({**body, "x": 2**60}).encode()
    yield "duplicate key", raw[:-1] + b"," + json.dumps(required[0]).encode() + b":{}}"
    for value in ([], "a string", 42, None, True):
        yield f"top level is {type(value).__name__}", json.dumps(value).encode()
    for key in required:
        yield f"missing {key}", json.dumps({k: v for k, v in body.items() if k != key}).encode()
        for value in (1, "x", [], None, True):
            yield f"{key} as {type(value).__name__}", json.dumps({**body, key: value}).encode()
    yield "unknown top-level field", json.dumps({**body, "unexpected": 1}).encode()
    yield "deep nesting", (b'{"' + required[0].encode() + b'":' + b"[" * 5000 + b"]" * 5000 + b"}")
    yield "nesting just past the bound", json.dumps({**body, required[0]: _deep(40)}).encode()


def nested_garbage(body: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Bodies that are wrong inside an object: some 4xx (400, or 401 when the signature
    over the changed object no longer verifies -- "verify before you believe")."""
    first = next(iter(body))
    inner = body[first]
    if isinstance(inner, dict) and "signed" in inner:
        signed = inner["signed"]
        yield "unknown field in signed", json.dumps(_set(body, (first, "signed", "unexpected"), 1)).encode()
        for key in [k for k in signed if k != "type"][:3]:
            yield f"missing signed.{key}", json.dumps(_drop(body, (first, "signed", key))).encode()
            yield f"signed.{key} as list", json.dumps(_set(body, (first, "signed", key), [1])).encode()
        yield "signature not base64", json.dumps(
            _set(body, (first, "signatures", 0, "sig"), "!!not base64!!")).encode()
        yield "signature 63 bytes", json.dumps(
            _set(body, (first, "signatures", 0, "sig"), b64e(random_bytes(63)))).encode()
        yield "no signatures", json.dumps(_set(body, (first, "signatures"), [])).encode()
        yield "signed is a string", json.dumps(_set(body, (first, "signed"), "x")).encode()
    for path in list(_key32_paths(body))[:2]:
        for size in (31, 33):
            yield f"{'.'.join(map(str, path))} of {size} bytes", json.dumps(
                _set(body, path, b64e(random_bytes(size)))).encode()
    for path in list(_b64_paths(body))[:2]:
        yield f"{'.'.join(map(str, path))} not base64", json.dumps(_set(body, path, "@@@" * 30)).encode()
        yield f"{'.'.join(map(str, path))} padded", json.dumps(
            _set(body, path, _get(body, path) + "==")).encode()
    if "events" in body:
        yield "51 events", json.dumps({**body, "events": body["events"] * 51}).encode()
    if "gated" in body and body["gated"]:
        yield "65 gated envelopes", json.dumps({**body, "gated": (body["gated"] * 65)[:65]}).encode()


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def check_refusal(reply: Reply, what: str, status: int | tuple[int, ...] | None = None,
                  code: str | None = None) -> None:
    """A 4xx with the JSON error shape (and the given status and code)."""
    assert reply.status < 500, f"{what}: server error {reply!r}"
    assert 400 <= reply.status < 500, f"{what}: accepted garbage: {reply!r}"
    if status is not None:
        wanted = (status,) if isinstance(status, int) else status
        assert reply.status in wanted, f"{what}: want {wanted} {code or ''}, got {reply!r}"
    if code is not None:
        assert reply.code == code, f"{what}: want code {code}, got {reply!r}"
    problems = error_shape_problems(reply)
    assert not problems, f"{what}: {problems} in {reply!r}"


# ------------------------------------------------------------------ the tests


@shared_loop
async def test_every_post_route_refuses_malformed_bodies(world: World, before: Any) -> None:
    w, failures = world, []
    for method, template, _ in await operations(w):
        if method != "POST":
            continue
        path = fill(w, template)
        signer, body, required = valid_body(w, template)
        for what, raw in top_level_garbage(body, required):
            reply = await w.caller("POST", path, signer, body=raw)
            try:
                check_refusal(reply, f"POST {template}: {what}", 400, "malformed")
            except AssertionError as exc:
                failures.append(str(exc))
        for what, raw in nested_garbage(body):
            reply = await w.caller("POST", path, signer, body=raw)
            try:
                check_refusal(reply, f"POST {template}: {what}")
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


@shared_loop
async def test_oversized_body_is_refused_with_413(world: World, before: Any) -> None:
    w, failures = world, []
    huge = b'{"x":"' + b"a" * ONE_MIB + b'"}'
    for method, template, _ in await operations(w):
        if method != "POST":
            continue
        signer = valid_body(w, template)[0]
        reply = await w.caller("POST", fill(w, template), signer, body=huge)
        try:
            check_refusal(reply, f"POST {template} > 1 MiB", 413, "too_large")
            # Unsigned, it may be refused for either reason, but never read whole.
            unsigned = await w.caller("POST", fill(w, template), None, body=huge)
            check_refusal(unsigned, f"POST {template} > 1 MiB unsigned", (401, 413))
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


@shared_loop
async def test_non_json_content_type_is_refused_with_415(world: World, before: Any) -> None:
    w, failures = world, []
    for method, template, _ in await operations(w):
        if method != "POST":
            continue
        signer, body, _ = valid_body(w, template)
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            reply = await w.caller("POST", fill(w, template), signer, json=body, content_type=ctype)
            try:
                check_refusal(reply, f"POST {template} as {ctype}", 415, "unsupported_media_type")
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


QUERY_GARBAGE = {
    "after": ("abc", "-1", "1.5", "", "9" * 40, "0x10"),
    "limit": ("0", "501", "-1", "abc", "1e3", ""),
    "wait": ("31", "-1", "abc", "0.5", "99999999999"),
    "index": ("abc", "-1", "1.5", "", "9" * 40),
    "size": ("0", "-1", "abc", "", "9" * 17),
    "old": ("abc", "-1", "1.5", "", "9" * 40),
    "new": ("0", "-1", "abc", "", "9" * 17),
}


@shared_loop
async def test_every_get_route_refuses_bad_queries_and_ids(world: World, before: Any) -> None:
    w, failures = world, []
    for method, template, op in await operations(w):
        if method != "GET":
            continue
        signer = signer_for(w, template)
        params = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        for name in sorted(params & set(QUERY_GARBAGE)):
            for bad in QUERY_GARBAGE[name]:
                reply = await w.caller.get(f"{fill(w, template)}?{name}={bad}", signer)
                try:
                    check_refusal(reply, f"GET {template}?{name}={bad}", 400, "malformed")
                except AssertionError as exc:
                    failures.append(str(exc))
        if "{" in template:
            for bad in ("x", "A" * 300, "~~~", b64e(random_bytes(15)), b64e(random_bytes(16)) + "="):
                path = re.sub(r"\{[^}]+\}", bad, template, count=1)
                path = fill(w, path) if "{" in path else path
                reply = await w.caller.get(path, signer)
                try:
                    check_refusal(reply, f"GET {path}", (400, 403, 404))
                except AssertionError as exc:
                    failures.append(str(exc))
    assert not failures, "\n".join(failures)


@shared_loop
async def test_bad_receipt_tokens_are_refused(world: World, before: Any) -> None:
    w = world
    for token in ("", "!!!", "a" * 2000, b64e(random_bytes(31)), b64e(random_bytes(32)) + "=",
                  b64e(random_bytes(32))):
        reply = await w.caller.get("/v1/signals/status", headers=(("Schakel-Receipt", token),))
        check_refusal(reply, f"receipt {token[:20]!r}", (400, 404))


@shared_loop
async def test_unknown_routes_and_methods_are_json_errors(world: World, before: Any) -> None:
    w, failures = world, []
    for method, template, _ in await operations(w):
        for other in ("PUT", "DELETE", "PATCH"):
            reply = await w.caller(other, fill(w, template), signer_for(w, template))
            try:
                check_refusal(reply, f"{other} {template}", 405, "method_not_allowed")
            except AssertionError as exc:
                failures.append(str(exc))
    for path in ("/v1/nope", "/v2/server", "/v1/networks/x/y/z/w"):
        try:
            check_refusal(await w.caller.get(path, w.a.coordinator), f"GET {path}", 404, "not_found")
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


@shared_loop
@HYPOTHESIS
@given(value=JSON)
async def test_hypothesis_json_bodies_are_refused(world: World, before: Any, value: Any) -> None:
    w = world
    for method, template, _ in await operations(w):
        if method == "POST":
            signer = valid_body(w, template)[0]
            reply = await w.caller("POST", fill(w, template), signer, json=value)
            check_refusal(reply, f"POST {template} with {value!r}"[:300])


def _kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(type(value))
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


@shared_loop
@HYPOTHESIS
@given(data=st.data())
async def test_hypothesis_mutated_bodies_are_refused(world: World, before: Any, data: Any) -> None:
    """A valid body with one member replaced by a JSON value of another type: never valid,
    so always refused."""
    w = world
    for method, template, _ in await operations(w):
        if method != "POST":
            continue
        signer, body, _ = valid_body(w, template)
        path = data.draw(st.sampled_from(json_paths(body)), label=f"path in {template}")
        old = _get(body, path)
        new = data.draw(JSON.filter(lambda v: _kind(v) != _kind(old)), label="value")
        reply = await w.caller("POST", fill(w, template), signer, json=_set(body, path, new))
        check_refusal(reply, f"POST {template} with {path} = {new!r}"[:300])


@shared_loop
async def test_server_still_works_and_garbage_stored_nothing(world: World, before: Any) -> None:
    """Runs last in this module: nothing changed, and a valid request still succeeds."""
    w = world
    after = await snapshot(w)
    for log, grown in own_reads(w, before).items():
        old, new = before.pop(log), after.pop(log)
        assert new[:len(old)] == old, f"{log} changed"
        assert [{"action": e["action"], "partner": e["actor"]["partner"],
                 "cases": e.get("cases")} for e in new[len(old):]] == grown, \
            f"{log} grew by more than the snapshot's own reads"
    assert after == before
    await append(w.caller, w.a, w.case, w["core-formal"])
    case = assert_status(await w.caller.get(w.a.path(f"/cases/{w.case.case}"), w.case.owner), 200)
    assert case["events"] == w.case.events
