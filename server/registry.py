"""One route registry: each route's method, path, authentication mode, request body,
query parameters, answer and possible errors are declared once, next to its handler.
``server/app.py`` installs the table in aiohttp and ``server/openapi.py`` documents it, so
``/v1/openapi.json`` cannot miss a route or an error (docs/protocol.md §14).

A handler receives a :class:`Call`: the request, the application context and the route's
declaration, with helpers that parse exactly what the route declared (path ids, query
parameters, the JSON body) and answer JSON.  Authentication runs before the handler;
authorization (:meth:`Call.member`) is the handler's first line.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from schakel.protocol import schema
from schakel.protocol.canonical import parse_json
from schakel.protocol.errors import MalformedError
from schakel.server.auth import Caller, authenticate, is_signed, require_member
from schakel.server.connections import read_body
from schakel.server.context import AppContext, context_of
from schakel.server.errors import UnsupportedMediaType

AuthMode = Literal["signed", "unsigned", "optional", "genesis"]
Handler = Callable[["Call"], Awaitable[web.StreamResponse]]

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_CURSOR = re.compile(r"[0-9]{1,16}")


# --------------------------------------------------------------------------- JSON Schema helpers


#: Where the OpenAPI document keeps the protocol schemas (``schakel.server.openapi.components``).
COMPONENTS = "#/components/schemas/"


def ref(obj_type: str) -> dict[str, Any]:
    """A protocol schema (``protocol/schemas/<type>.json``) among the document's components."""
    return {"$ref": COMPONENTS + obj_type}


def def_ref(obj_type: str, name: str) -> dict[str, Any]:
    """A definition ``<type>.json#/$defs/<name>``: the component ``<type>.<name>``."""
    return {"$ref": f"{COMPONENTS}{obj_type}.{name}"}


def envelope_of(obj_type: str) -> dict[str, Any]:
    """A signed envelope whose ``signed`` part is a ``obj_type``."""
    return {"allOf": [ref("envelope"), {"properties": {"signed": ref(obj_type)}}]}


def obj(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": properties}


def array(items: dict[str, Any], max_items: int, min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


ID = def_ref("common", "id")
KEYID = def_ref("common", "keyid")
TIMESTAMP = def_ref("common", "timestamp")
CURSOR = {"type": "string", "pattern": "^[0-9]{1,16}$",
          "description": "opaque to clients (the server's row id as a decimal string)"}
#: Largest integer on the wire (JSON numbers are exact up to 2^53 - 1).
MAX_INT = 9007199254740991
#: Path parameters that are integers (all others are protocol ids), with their schema.
INT_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "size": {"type": "integer", "minimum": 1, "maximum": MAX_INT}}


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Field:
    """One member of a JSON request body: a JSON object (an envelope or a bare object),
    or with ``many`` a bounded list of them, or with ``scalar`` a string (an id).  The
    value itself is checked by its protocol class in the handler; here only the body's
    shape."""

    name: str
    schema: dict[str, Any]
    required: bool = True
    many: bool = False
    max_items: int = 1
    min_items: int = 0
    scalar: bool = False

    def document(self) -> dict[str, Any]:
        return array(self.schema, self.max_items, self.min_items) if self.many else self.schema


@dataclass(frozen=True)
class Body:
    fields: tuple[Field, ...]

    def schema(self) -> dict[str, Any]:
        return obj([f.name for f in self.fields if f.required],
                   **{f.name: f.document() for f in self.fields})

    def check(self, value: Any) -> dict[str, Any]:
        """The body's shape: an object with exactly the declared members, lists within
        their bounds, each element a JSON object (MalformedError naming the member)."""
        if not isinstance(value, dict):
            raise MalformedError("request body must be a JSON object")
        known = {f.name for f in self.fields}
        unknown = sorted(k[:40] for k in value if k not in known)
        if unknown:
            raise MalformedError(f"unknown member(s) {unknown[:5]} in the request body",
                                 details={"problems": [f"{k}: unknown member" for k in unknown[:5]]})
        for f in self.fields:
            if f.name not in value:
                if f.required:
                    raise MalformedError(f"request body lacks {f.name!r}", details={"field": f.name})
                continue
            items = value[f.name] if f.many else [value[f.name]]
            if f.many and (not isinstance(items, list)
                           or not f.min_items <= len(items) <= f.max_items):
                raise MalformedError(f"{f.name} must be a list of {f.min_items}..{f.max_items}",
                                     details={"field": f.name})
            if f.scalar:
                if not isinstance(value[f.name], str):
                    raise MalformedError(f"{f.name} must be a string", details={"field": f.name})
            elif not all(isinstance(item, dict) for item in items):
                raise MalformedError(f"{f.name} must hold JSON objects", details={"field": f.name})
        return value


@dataclass(frozen=True)
class Query:
    """A query parameter: a cursor, or an integer in ``low..high`` (default ``default``;
    none: ``required``, or with ``default=None`` optional and absent from
    :meth:`Call.query`'s answer when not given).  ``below`` / ``at_most`` name another
    parameter this one must stay under / not exceed: a rule across parameters, which JSON
    Schema cannot state, so the OpenAPI document states it as ``x-schakel-below`` /
    ``x-schakel-at-most``."""

    name: str
    description: str
    kind: Literal["cursor", "int"] = "int"
    low: int = 0
    high: int = 0
    default: int | None = 0
    required: bool = False
    below: str | None = None
    at_most: str | None = None

    def relations(self) -> dict[str, str]:
        """The rules across parameters, as the document's extensions."""
        return {key: other for key, other in (("x-schakel-below", self.below),
                                              ("x-schakel-at-most", self.at_most))
                if other is not None}

    def schema(self) -> dict[str, Any]:
        if self.kind == "cursor":
            return {**CURSOR, "default": "0"}
        schema: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        return schema if self.required or self.default is None else {
            **schema, "default": self.default}

    def parse(self, text: str) -> int:
        if self.kind == "cursor":
            if not _CURSOR.fullmatch(text):
                raise MalformedError(f"{self.name} must be a cursor (decimal digits)",
                                     details={"field": self.name})
            return int(text)
        if not re.fullmatch(r"[0-9]{1,16}", text) or not self.low <= int(text) <= self.high:
            raise MalformedError(f"{self.name} must be an integer {self.low}..{self.high}",
                                 details={"field": self.name})
        return int(text)


@dataclass(frozen=True)
class Header:
    """A request header the route reads (the signature headers are the security scheme)."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: AuthMode
    who: str
    status: int
    response: dict[str, Any] | None
    body: Body | None
    query: tuple[Query, ...]
    errors: tuple[str, ...]
    tag: str
    content_type: str = "application/json"
    headers: tuple[Header, ...] = ()

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.handler.__doc__ or "")

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        ctx = context_of(request)
        if self.auth == "signed" or (self.auth == "optional" and is_signed(request)):
            await authenticate(request, ctx)
        return await self.handler(Call(request, ctx, self))


@dataclass
class RouteTable:
    """The routes of one resource (a module under ``server/routes/``)."""

    tag: str
    routes: list[Route] = field(default_factory=list)

    def route(self, method: str, path: str, *, auth: AuthMode, who: str, status: int = 200,
              response: dict[str, Any] | None = None, body: Body | None = None,
              query: Sequence[Query] = (), errors: Sequence[str] = (),
              content_type: str = "application/json",
              headers: Sequence[Header] = ()) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, auth, who, status, response, body,
                                     tuple(query), tuple(errors), self.tag, content_type,
                                     tuple(headers)))
            return handler
        return register


# --------------------------------------------------------------------------- a call


@dataclass
class Call:
    """What a handler works with: parsing helpers bound to its route's declaration."""

    request: web.Request
    ctx: AppContext
    route: Route

    def id(self, name: str) -> str:
        """A path parameter that must be a protocol id (16 bytes, base64url)."""
        value = self.request.match_info[name]
        try:
            schema.validate_def("common", "id", value)
        except MalformedError:
            raise MalformedError(f"{name} in the path is not an id", details={"field": name}
                                 ) from None
        return value

    def integer(self, name: str) -> int:
        """A path parameter that must be a decimal integer (:data:`INT_PATH_PARAMS`)."""
        text, declared = self.request.match_info[name], INT_PATH_PARAMS[name]
        if not re.fullmatch(r"[0-9]{1,16}", text) or not (
                declared["minimum"] <= int(text) <= declared["maximum"]):
            raise MalformedError(f"{name} in the path is not an integer "
                                 f"{declared['minimum']}..{declared['maximum']}",
                                 details={"field": name})
        return int(text)

    def query(self) -> dict[str, int]:
        """The declared query parameters, parsed (a parameter without a default that was
        not given is left out)."""
        declared = {q.name: q for q in self.route.query}
        given = self.request.query
        unknown = sorted(k[:40] for k in given if k not in declared)
        if unknown:
            raise MalformedError(f"unknown query parameter(s) {unknown[:5]}",
                                 details={"problems": unknown[:5]})
        out: dict[str, int] = {}
        for name, q in declared.items():
            values = given.getall(name, [])
            if len(values) > 1:
                raise MalformedError(f"query parameter {name} given twice", details={"field": name})
            if not values and q.required:
                raise MalformedError(f"query parameter {name} is required", details={"field": name})
            if values:
                out[name] = q.parse(values[0])
            elif q.default is not None:
                out[name] = q.default
        for name, q in declared.items():
            if name not in out:
                continue
            if q.below in out and not out[name] < out[q.below]:
                raise MalformedError(f"{name} must be below {q.below}", details={"field": name})
            if q.at_most in out and not out[name] <= out[q.at_most]:
                raise MalformedError(f"{name} must not exceed {q.at_most}",
                                     details={"field": name})
        return out

    async def body(self) -> dict[str, Any]:
        """The JSON body, of the declared shape (415 for another media type)."""
        assert self.route.body is not None, "route declares no body"
        if self.request.content_type != "application/json":
            raise UnsupportedMediaType("the request body must be application/json")
        raw = await read_body(self.request, self.ctx.config.limits)
        return self.route.body.check(parse_json(raw, max_bytes=self.ctx.config.limits.max_body))

    def member(self, network: str, **requirements: Any) -> Caller:
        return require_member(self.request, self.ctx, network, **requirements)

    def json(self, data: Any, *, status: int | None = None) -> web.Response:
        return web.Response(text=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                            status=status if status is not None else self.route.status,
                            content_type="application/json")

    def written(self, created: bool, answer: Any) -> web.Response:
        """201 for a new write, 200 for an identical retry (docs/protocol.md §14)."""
        return self.json(answer, status=201 if created else 200)


__all__ = ["AuthMode", "Handler", "COMPONENTS", "ref", "def_ref", "envelope_of", "obj", "array",
           "ID", "KEYID", "TIMESTAMP", "CURSOR", "MAX_INT", "INT_PATH_PARAMS", "Field", "Body",
           "Query", "Header", "Route", "RouteTable", "Call"]
