"""The two middlewares (style.md: "one error middleware mapping ProtocolError.status_hint").

* :func:`observe` (outermost, and the only one the app installs: it runs the error mapping
  of :func:`errors` itself, one middleware layer less per request): a request id
  (``X-Request-Id`` echoed when well-formed, else generated), one structlog access-log line
  per request -- request id, method, route template, network, status, error code, latency,
  key id and acting user; never a body, a ciphertext, a receipt token, a signature or a
  case id -- and the Prometheus metrics.
* :func:`errors`: a :class:`ProtocolError` becomes its status hint and the error JSON of
  design §6 (with ``Retry-After`` when its details say when to retry; a 408 closes the
  connection); an aiohttp ``HTTPException`` (404, 405, 413, ...) the same JSON with a
  fitting code; a client that went away while its request was read is logged as 499
  ``client_disconnected`` (nobody is left to answer); anything else 500 ``internal_error``
  with no detail, logged with its traceback.

Requests that aiohttp's parser refuses never reach a middleware: server/connections.py
answers them alike.
"""

from __future__ import annotations

import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from schakel.protocol.errors import MalformedError, ProtocolError
from schakel.server.auth import VERIFIED
from schakel.server.connections import error_body, log_request, new_request_id, retry_headers
from schakel.server.context import context_of
from schakel.server.errors import InternalError, MethodNotAllowed, NotFound, TooLarge, UnsupportedMediaType

REQUEST_ID: web.RequestKey[str] = web.RequestKey("schakel.request_id", str)
ERROR_CODE: web.RequestKey[str] = web.RequestKey("schakel.error_code", str)
#: The log's ``error`` for a request whose client went away mid-request (no wire code:
#: no answer reaches anyone).
CLIENT_DISCONNECTED = "client_disconnected"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The status logged for a request whose client went away before it was answered.
CLIENT_GONE = 499

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
    response = web.json_response(error_body(exc), status=exc.status_hint,
                                 headers={**(headers or {}), **retry_headers(exc)})
    if exc.status_hint == 408:          # the rest of a late request is not waited for
        response.force_close()
    return response


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


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = context_of(request)
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else new_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = CLIENT_GONE                            # the client went away (cancelled)
    try:
        response = await _answer(request, handler)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        verified = request.get(VERIFIED)
        log_request(ctx, request_id=request_id, method=request.method, route=route_of(request),
                    status=status, error=request.get(ERROR_CODE),
                    elapsed=time.perf_counter() - started,
                    network=request.match_info.get("network"),
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
    except ConnectionError:
        # The client went away while its request was read (a reset, or its end of the
        # connection closed mid-body): not a fault of the server, and nobody to answer.
        request[ERROR_CODE] = CLIENT_DISCONNECTED
        return web.Response(status=CLIENT_GONE)
    except Exception:
        context_of(request).log.exception("unhandled error", request_id=request.get(REQUEST_ID),
                                          route=route_of(request))
        return error_response(request, InternalError())


__all__ = ["REQUEST_ID", "ERROR_CODE", "CLIENT_DISCONNECTED", "CLIENT_GONE", "route_of",
           "error_response", "observe", "errors"]
