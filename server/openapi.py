"""The OpenAPI 3.1 document at ``/v1/openapi.json``, built from the route registry
(``server/registry.py``): every route, its authentication, parameters, body, answer and
every error code it can give (design §6).

Components are the protocol's own JSON Schemas (``protocol.schema.schema_documents``),
each keeping its ``$id`` so that its relative ``$ref``s (``common.json#/$defs/id``)
resolve inside the document, as JSON Schema 2020-12 (OpenAPI 3.1's dialect) prescribes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import protocol.errors as protocol_errors
from protocol.schema import schema_documents
from server.errors import SERVER_ERRORS, UnknownKey
from server.registry import ID, INT_PATH_PARAMS, Route, RouteTable, ref

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
                "description": q.description, "schema": q.schema()} for q in route.query]
    params += [{"name": name, "in": "header", "required": True, "description": text,
                "schema": {"type": "string"}} for name, text in route.headers]
    if route.auth != "unsigned":
        required = route.auth != "optional"
        params += [{"name": name, "in": "header", "required": required, "description": text,
                    "schema": {"type": "string"}} for name, text in (
            ("Signature-Input", "RFC 9421 signature parameters, label sig1 (protocol.md §10)"),
            ("Content-Digest", "RFC 9530 sha-256 of the body, also for an empty body"),
            ("Schakel-Acting-User", "the employee or volunteer acting for the partner"))]
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
            "schemas": schema_documents(),
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "Signature",
                "description": "RFC 9421 HTTP Message Signature by the partner's Ed25519 key in "
                               "the Schakel profile (docs/protocol.md §10): covered @method "
                               "@authority @path @query content-digest schakel-acting-user; "
                               "parameters created nonce keyid alg tag; label sig1."}},
        },
    }


__all__ = ["ERROR_STATUS", "error_codes", "build_openapi"]
