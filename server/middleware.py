"""The two middlewares (style.md: "one error middleware mapping ProtocolError.status_hint").

* :func:`observe` (outermost, and the only one the app installs: it runs the error mapping
  of :func:`errors` itself, one middleware layer less per request): a request id
  (``X-Request-Id`` echoed when well-formed, else generated), one structlog access-log line
  per request -- request id, method, route template, network, status, error code, latency,
  key id and acting user; never a body, a ciphertext, a receipt token, a signature or a
  case id -- and the Prometheus metrics.
* :func:`errors`: a :class:`ProtocolError` becomes its status hint and the error JSON of
  design §6; an aiohttp ``HTTPException`` (404, 405, 413, ...) the same JSON with a fitting
  code; anything else 500 ``internal_error`` with no detail, logged with its traceback.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from protocol.errors import MalformedError, ProtocolError
from protocol.objects.audit import ErrorResponse
from server.auth import VERIFIED
from server.context import context_of
from server.errors import InternalError, MethodNotAllowed, NotFound, TooLarge, UnsupportedMediaType

REQUEST_ID: web.RequestKey[str] = web.RequestKey("schakel.request_id", str)
ERROR_CODE: web.RequestKey[str] = web.RequestKey("schakel.error_code", str)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_HTTP_ERRORS: dict[int, type[ProtocolError]] = {
    404: NotFound, 405: MethodNotAllowed, 413: TooLarge, 415: UnsupportedMediaType,
}
_HTTP_MESSAGES = {404: "no such resource", 405: "method not allowed on this resource",
                  413: "request body too large", 415: "unsupported media type"}


def route_of(request: web.Request) -> str:
    """The route template (``/v1/networks/{network}``), or ``unmatched``: metric labels
    and log lines carry templates, never ids."""
    info = request.match_info.route.resource if request.match_info.route else None
    return info.canonical if info is not None else "unmatched"


def error_response(request: web.Request, exc: ProtocolError,
                   headers: dict[str, str] | None = None) -> web.Response:
    request[ERROR_CODE] = exc.code
    body = ErrorResponse.from_protocol_error(exc).to_json()
    return web.json_response(body, status=exc.status_hint, headers=headers)


def _http_error(status: int) -> ProtocolError:
    """An aiohttp refusal as a protocol error: its own code where the contract names one,
    ``malformed`` for another 4xx, ``internal_error`` for a 5xx."""
    kind = _HTTP_ERRORS.get(status)
    if kind is not None:
        return kind(_HTTP_MESSAGES[status])
    if status >= 500:
        return InternalError()
    error = MalformedError("the request was refused")
    error.status_hint = status
    return error


# Generated request ids: 32 hex characters, a random prefix drawn once per process and a
# counter (uuid4 read the OS's random source on every request: a system call each, and a
# request id needs to be unique, not secret).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = context_of(request)
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else _new_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 499                                    # the client went away (cancelled)
    try:
        response = await _answer(request, handler)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = route_of(request)
        ctx.metrics.observe(route, request.method, status, elapsed)
        verified = request.get(VERIFIED)
        ctx.log.info("request", request_id=request_id, method=request.method, route=route,
                     network=request.match_info.get("network"), status=status,
                     error=request.get(ERROR_CODE),
                     latency_ms=round(elapsed * 1000, 3),
                     key_id=verified.keyid if verified else None,
                     acting_user=verified.acting_user if verified else None)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The error mapping alone, as a middleware (:func:`observe` maps errors itself)."""
    return await _answer(request, handler)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, or its refusal as a response (what :func:`errors` does).
    :func:`observe` calls it directly: one middleware layer less per request."""
    try:
        return await handler(request)
    except ProtocolError as exc:
        if exc.status_hint >= 500:
            context_of(request).log.error("server error", request_id=request.get(REQUEST_ID),
                                          code=exc.code)
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(request, _http_error(exc.status), headers)
    except Exception:
        context_of(request).log.exception("unhandled error", request_id=request.get(REQUEST_ID),
                                          route=route_of(request))
        return error_response(request, InternalError())


__all__ = ["REQUEST_ID", "route_of", "error_response", "observe", "errors"]
