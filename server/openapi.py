"""The OpenAPI 3.1 document at ``/v1/openapi.json``, built from the route registry
(``server/registry.py``): every route, its authentication, parameters, body, answer and
every error code it can give (design §6).

Components are the protocol's own JSON Schemas (``schakel.protocol.schema.schema_documents``),
flattened the way OpenAPI tools expect them (ADR 0014): each document ``<type>.json``
becomes the component ``<type>`` and each of its definitions ``<type>.json#/$defs/<name>``
the component ``<type>.<name>``; ``$id``, ``$schema`` and ``$defs`` are dropped and every
``$ref`` points at ``#/components/schemas/...``.  The same keywords then apply to the same
values: the document describes exactly what ``schakel.protocol.schema`` validates, without the
``$id``-relative references that JSON Schema allows and OpenAPI tools do not follow.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import urldefrag, urljoin

import schakel.protocol.errors as protocol_errors
from schakel.protocol.schema import BASE_URI, schema_documents
from schakel.server.errors import SERVER_ERRORS, UnknownKey
from schakel.server.registry import COMPONENTS, ID, INT_PATH_PARAMS, Route, RouteTable, ref

VERSION = "1.0.0"
SECURITY_SCHEME = "schakelSignature"

#: HTTP statuses of every error code (``untrusted_key`` is 401 for an unknown key, 403
#: for a membership that is not current).
ERROR_STATUS: dict[str, set[int]] = {}
for _cls in (*[c for c in vars(protocol_errors).values() if isinstance(c, type)
               and issubclass(c, protocol_errors.ProtocolError)], *SERVER_ERRORS, UnknownKey):
    ERROR_STATUS.setdefault(_cls.code, set()).add(_cls.status_hint)
ERROR_STATUS.pop("protocol_error", None)       # the base class is never raised on its own

AUTH_ERRORS = ("malformed", "bad_signature", "stale_request", "replayed_request",
               "untrusted_key", "digest_mismatch", "too_large", "request_timeout")
BODY_ERRORS = ("malformed", "too_large", "unsupported_media_type", "bad_signature",
               "untrusted_key", "request_timeout")


def _component_name(uri: str) -> str:
    """The component of a schema URI: ``<type>`` for a whole document, ``<type>.<name>``
    for one of its definitions (``$defs`` is flat in every protocol schema)."""
    document, fragment = urldefrag(uri)
    if not document.startswith(BASE_URI) or not document.endswith(".json"):
        raise ValueError(f"a protocol schema refers outside the protocol: {uri}")
    name = document[len(BASE_URI):-len(".json")]
    if not fragment:
        return name
    parts = fragment.split("/")
    if len(parts) != 3 or parts[:2] != ["", "$defs"]:
        raise ValueError(f"a protocol schema refers inside a definition: {uri}")
    return f"{name}.{parts[2]}"


@cache
def printable_pattern() -> str:
    """``format: printable`` -- Python's ``str.isprintable``, by this server's Unicode
    tables -- as a pattern: one character class of every printable code point, written
    as the characters themselves (escaped where a class needs it), so that every regular
    expression engine reads the same set whatever its own Unicode version."""
    ranges: list[tuple[int, int]] = []
    start = None
    for code in range(sys.maxunicode + 2):
        printable = code <= sys.maxunicode and chr(code).isprintable()
        if printable and start is None:
            start = code
        elif not printable and start is not None:
            ranges.append((start, code - 1))
            start = None

    def char(code: int) -> str:
        return "\\" + chr(code) if chr(code) in "\\]^-[" else chr(code)

    return "^[" + "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in ranges) + "]*$"


_B64 = "common.b64"
_B64_GROUPS = "^(?:[A-Za-z0-9_-]{4})*"


def _bounded_b64(node: dict[str, Any], b64: dict[str, Any]) -> dict[str, Any]:
    """A reference to ``common.b64`` with its own length bounds, as the one string schema
    it means, its repetition bounded by those lengths: a canonical base64url string of
    length ``L`` is ``L // 4`` groups of four and a tail, so ``{lo,hi}`` groups with
    ``lo, hi`` the bounds divided by four admit exactly the same strings.  A generator then
    draws a length that fits instead of filtering an unbounded repetition by length."""
    if not b64["pattern"].startswith(_B64_GROUPS):
        raise ValueError("common.json#/$defs/b64 no longer starts with groups of four")
    low = node.get("minLength", 0)
    high = min(node.get("maxLength", b64["maxLength"]), b64["maxLength"])
    pattern = f"^(?:[A-Za-z0-9_-]{{4}}){{{low // 4},{high // 4}}}" + \
        b64["pattern"][len(_B64_GROUPS):]
    rest = {k: v for k, v in node.items() if k not in ("$ref", "minLength", "maxLength")}
    return {"description": b64["description"], **rest, "type": "string", "pattern": pattern,
            "minLength": low, "maxLength": high}


def _localised(node: Any, base: str, b64: dict[str, Any]) -> Any:
    """``node`` (a part of the document ``base``) with each ``$ref`` pointing at its
    component, a bounded ``common.b64`` written out (:func:`_bounded_b64`) and
    ``format: printable`` stated as a pattern too.  Only schemas are walked: the protocol
    schemas hold no ``enum`` or ``const`` value with a ``$ref`` member."""
    if isinstance(node, list):
        return [_localised(item, base, b64) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: COMPONENTS + _component_name(urljoin(base, value)) if key == "$ref"
           else _localised(value, base, b64) for key, value in node.items()}
    if out.get("$ref") == COMPONENTS + _B64 and ("minLength" in out or "maxLength" in out):
        return _bounded_b64(out, b64)
    if out.get("format") == "printable":
        if "pattern" in out:
            raise ValueError("a printable text with a pattern of its own")
        out["pattern"] = printable_pattern()
    return out


def components() -> dict[str, Any]:
    """Every protocol schema and each of its definitions as a component (module doc)."""
    documents = schema_documents()
    b64 = documents["common"]["$defs"]["b64"]
    out: dict[str, Any] = {}
    for name, document in sorted(documents.items()):
        base = document["$id"]
        body = {k: v for k, v in document.items() if k not in ("$schema", "$id", "$defs")}
        if set(body) - {"title", "description"}:       # common.json holds definitions only
            out[name] = _localised(body, base, b64)
        for def_name, definition in document.get("$defs", {}).items():
            out[f"{name}.{def_name}"] = _localised(definition, base, b64)
    return out


def error_codes(route: Route) -> set[str]:
    """Every code ``route`` can answer."""
    codes = {"internal_error", "unavailable", "method_not_allowed", *route.errors}
    signed = route.auth in ("signed", "optional", "genesis")
    if signed:
        codes |= {*AUTH_ERRORS, "forbidden"}
    if route.body is not None:
        codes |= set(BODY_ERRORS)
    if route.path_params or route.query or route.headers:
        codes |= {"malformed", "not_found"}
    if "network" in route.path_params and signed:
        codes |= {"forbidden", "not_found"}
    return codes


def _responses(route: Route) -> dict[str, Any]:
    content = {route.content_type: {"schema": route.response or {"type": "string"}}}
    out: dict[str, Any] = {str(route.status): {"description": "success", "content": content}}
    if route.status == 201:
        out["200"] = {"description": "an identical retry: the first answer again",
                      "content": content}
    by_status: dict[int, list[str]] = {}
    for code in sorted(error_codes(route)):
        for status in ERROR_STATUS[code]:
            by_status.setdefault(status, []).append(code)
    for status, codes in sorted(by_status.items()):
        out[str(status)] = {
            "description": "error: " + ", ".join(codes),
            "content": {"application/json": {"schema": {"allOf": [ref("error"), {
                "properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}}}}
    return out


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": INT_PATH_PARAMS.get(name, ID)}
        for name in route.path_params]
    params += [{"name": q.name, "in": "query", "required": q.required,
                "description": q.description, "schema": q.schema(), **q.relations()}
               for q in route.query]
    params += [{"name": h.name, "in": "header", "required": True, "description": h.description,
                "schema": h.schema} for h in route.headers]
    return params


def _operation(route: Route) -> dict[str, Any]:
    doc = route.doc
    op: dict[str, Any] = {
        "operationId": route.name, "tags": [route.tag],
        "summary": doc.split("\n", 1)[0].rstrip("."),
        "description": f"{doc}\n\nWho may call: {route.who}.",
        "parameters": _parameters(route), "responses": _responses(route),
        "security": {"signed": [{SECURITY_SCHEME: []}], "genesis": [{SECURITY_SCHEME: []}],
                     "optional": [{}, {SECURITY_SCHEME: []}], "unsigned": []}[route.auth],
    }
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": route.body.schema()}}}
    return op


def build_openapi(tables: Iterable[RouteTable]) -> dict[str, Any]:
    tables = list(tables)
    paths: dict[str, dict[str, Any]] = {}
    for table in tables:
        for route in table.routes:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "Schakel", "version": VERSION,
                 "description": "Privacy-preserving case sharing for Dutch care and signalling "
                                "networks (docs/protocol.md §14, docs/protocol.md). Every error is "
                                '{"error": {"code", "message", "details"}}.'},
        "tags": [{"name": t.tag} for t in tables],
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "Signature",
                "description": "RFC 9421 HTTP Message Signature by the partner's Ed25519 key in "
                               "the Schakel profile (docs/protocol.md §10), label sig1: the "
                               "headers Signature and Signature-Input, with Content-Digest "
                               "(RFC 9530 sha-256 of the body, also of an empty one) and "
                               "Schakel-Acting-User (the employee or volunteer acting for the "
                               "partner); covered @method @authority @path @query "
                               "content-digest schakel-acting-user; parameters created nonce "
                               "keyid alg tag.  The four headers are computed over the final "
                               "request, so they are this scheme and not parameters."}},
        },
    }


__all__ = ["ERROR_STATUS", "error_codes", "printable_pattern", "components", "build_openapi"]
