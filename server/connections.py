"""The HTTP edge: what happens to a connection before and around the middleware
(docs/protocol.md §14, "Connections"; ADR 0013).

aiohttp parses each request head itself and answers what its parser refuses -- a request
line or header field over 8190 bytes, more than 128 header fields, a byte such as 0xff in
the path, bytes that are not HTTP at all -- from ``RequestHandler.handle_error``, before any
middleware runs, as plain text.  It has no deadline for a request head or body either:
a connection that sends a byte now and then stays open.  :class:`EdgeHandler` is aiohttp's
``RequestHandler`` with these changes, each in a public method:

* ``handle_error``: a parser refusal is the error object of every other refusal, 400
  ``malformed``, with a request id, an access-log line and the metrics (an error that
  escapes the application is 500 ``internal_error``, logged with its traceback);
* ``connection_made``: at most ``limits.max_connections_per_address`` connections per client
  address; one more gets 429 ``rate_limited`` with ``Retry-After`` and is closed;
* a *head timer* (armed in ``connection_made`` and again in ``finish_response``, told of
  the bytes in ``data_received``): a connection has ``limits.header_timeout`` seconds, from
  its opening or from the previous response, to deliver a whole request head; a connection
  that sent part of one gets 408 ``request_timeout`` and is closed, an idle one is closed.

The head timer stops when the parser hands a request over: :meth:`Edge.serve_on` wraps the
server's public ``request_factory``, which aiohttp calls once per parsed head (refused ones
included).

:func:`read_body` is the one place the server reads a request body: within
``limits.body_timeout`` seconds (408 ``request_timeout`` after, and the connection closes),
a broken chunked or content encoding is 400 ``malformed``.

Request ids and the access-log line live here too, for requests that reach the middleware
(:func:`schakel.server.middleware.observe`) and for those that never do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod, BadStatusLine, InvalidHeader, InvalidURLError, LineTooLong,
)

from schakel.protocol.errors import MalformedError, ProtocolError
from schakel.protocol.objects.audit import ErrorResponse
from schakel.server.errors import RETRY_AFTER, InternalError, RateLimited, RequestTimeout

if TYPE_CHECKING:
    from schakel.server.config import Limits
    from schakel.server.context import AppContext

#: Seconds an answered connection keeps reading (and dropping) what the client still sends
#: before it is closed, so that the answer is not lost to a TCP reset.
LINGER = 2.0

#: The route label of requests the parser refused (they never matched a route).
UNPARSED = "unparsed"


# --------------------------------------------------------------------------- request ids

# Generated request ids: 32 hex characters, a random prefix drawn once per process and a
# counter (uuid4 read the OS's random source on every request: a system call each, and a
# request id needs to be unique, not secret).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def log_request(ctx: AppContext, *, request_id: str, method: str, route: str, status: int,
                error: str | None, elapsed: float, network: str | None = None,
                key_id: str | None = None, acting_user: str | None = None) -> None:
    """The access-log line and the metrics of one answered (or abandoned) request
    (docs/protocol.md §14.5): ids of the request and the caller, never a body."""
    ctx.metrics.observe(route, method, status, elapsed)
    ctx.log.info("request", request_id=request_id, method=method, route=route, network=network,
                 status=status, error=error, latency_ms=round(elapsed * 1000, 3),
                 key_id=key_id, acting_user=acting_user)


def error_body(exc: ProtocolError) -> dict[str, Any]:
    """The error object (§A.3) of ``exc``."""
    return ErrorResponse.from_protocol_error(exc).to_json()


def retry_headers(exc: ProtocolError) -> dict[str, str]:
    """``Retry-After`` for a refusal that says when to come back (``details.retry_after``)."""
    retry = exc.details.get("retry_after")
    if isinstance(retry, int) and not isinstance(retry, bool):
        return {"Retry-After": str(retry)}
    return {}


def raw_answer(exc: ProtocolError, request_id: str) -> bytes:
    """``exc`` as a whole HTTP/1.1 response that closes the connection, for a connection
    that has no request object to answer through (over the cap; a head that never
    completed)."""
    body = json.dumps(error_body(exc), separators=(",", ":")).encode()
    status = HTTPStatus(exc.status_hint)
    headers = {"Content-Type": "application/json; charset=utf-8",
               "Content-Length": str(len(body)), "Connection": "close",
               "X-Request-Id": request_id, **retry_headers(exc)}
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    return head.encode("ascii") + body


# --------------------------------------------------------------------------- bodies


async def read_body(request: web.BaseRequest, limits: Limits) -> bytes:
    """The whole request body, bounded by the app's ``client_max_size`` (413 above).

    408 ``request_timeout`` when it has not arrived ``limits.body_timeout`` seconds after
    the server started reading it (right after the head); 400 ``malformed`` when its
    chunked or content encoding is broken.  A client that goes away meanwhile raises
    ``ConnectionError``, which :func:`schakel.server.middleware.observe` logs as 499."""
    try:
        async with asyncio.timeout(limits.body_timeout):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {limits.body_timeout:g} s",
                             details={"body_timeout_ms": round(limits.body_timeout * 1000)}
                             ) from None
    except web.RequestPayloadError:
        raise MalformedError("the request body is not validly encoded (chunked transfer or "
                             "content encoding)") from None


# --------------------------------------------------------------------------- parser refusals

#: What a refusal of aiohttp's parser means, most specific first (``BadHttpMethod`` is a
#: ``BadStatusLine``).  Never the offending bytes: they may be anything.
_PARSER_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (LineTooLong, "the request line or a header field is too long"),
    (BadHttpMethod, "not an HTTP/1.1 request (no valid method)"),
    (InvalidURLError, "the request target is not a valid path"),
    (InvalidHeader, "a header field is malformed"),
    (BadStatusLine, "the request line is malformed"),
)


def _parser_refusal(exc: BaseException | None, status: int,
                    limits: dict[str, int]) -> MalformedError:
    message = next((text for kind, text in _PARSER_REFUSALS if isinstance(exc, kind)),
                   "the request head is malformed or too large")
    error = MalformedError(message, details=limits)
    error.status_hint = status
    return error


# --------------------------------------------------------------------------- connections


class _Refused(asyncio.Protocol):
    """A connection over the per-address cap: it is answered at once and closed, after
    reading (and dropping) what the client still sends for at most :data:`LINGER`
    seconds -- closing with unread input would reset the connection and lose the answer."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _address_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "local"


class Edge:
    """What every connection of one server shares: the context (log, metrics, limits)
    and the number of open connections per client address."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.limits = ctx.config.limits
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False when it is over the cap."""
        count = self._open.get(address, 0)
        if count >= self.limits.max_connections_per_address:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.pop(address, 0) - 1
        if count > 0:
            self._open[address] = count

    def closed(self, reason: str, request_id: str) -> None:
        """A connection the edge closed itself (over the cap, a head too slow)."""
        self.ctx.metrics.connections_closed(reason)
        self.ctx.log.info("connection closed", reason=reason, request_id=request_id)

    def serve_on(self, server: web.Server) -> Callable[[], EdgeHandler]:
        """The protocol factory that serves ``server`` (an ``AppRunner``'s, set up) through
        :class:`EdgeHandler`s; it also lets each handler know when a head was parsed."""
        parse = server.request_factory

        def on_head(message: Any, payload: Any, protocol: web.RequestHandler, writer: Any,
                    task: Any) -> web.BaseRequest:
            if isinstance(protocol, EdgeHandler):
                protocol.head_received()
            return parse(message, payload, protocol, writer, task)

        server.request_factory = on_head
        loop = asyncio.get_running_loop()
        # aiohttp's own keep-alive timer is only a backstop: the head timer closes first.
        options = {"loop": loop, "access_log": None, "lingering_time": LINGER,
                   "keepalive_timeout": 2 * self.limits.header_timeout}
        return lambda: EdgeHandler(server, edge=self, **options)


class EdgeHandler(web.RequestHandler):
    """aiohttp's ``RequestHandler`` with the edge's cap, head timer and JSON refusals."""

    def __init__(self, manager: web.Server, *, edge: Edge, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = edge
        self._address: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._partial_head = False
        #: The last request's body had not all arrived when it was answered: what comes
        #: next is the rest of it (aiohttp drains it), not a new head.
        self._draining = False

    # the per-address cap ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = _address_of(transport)
        if not self._edge.admit(address):
            request_id = new_request_id()
            refusal = RateLimited(
                "too many connections from this address; close one or retry later",
                details={"retry_after": RETRY_AFTER,
                         "max_connections": self._edge.limits.max_connections_per_address})
            # This handler is never used: the refusal takes the connection over.
            refused = _Refused(raw_answer(refusal, request_id))
            transport.set_protocol(refused)
            refused.connection_made(transport)
            self._edge.closed("address_cap", request_id)
            return
        self._address = address
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        if self._address is not None:
            self._edge.release(self._address)
            self._address = None
        super().connection_lost(exc)

    # the head timer ----------------------------------------------------------------

    def _await_head(self, *, draining: bool = False) -> None:
        self._stop_head_timer()
        if self.transport is not None:
            self._partial_head, self._draining = False, draining
            self._head_timer = asyncio.get_running_loop().call_later(
                self._edge.limits.header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def head_received(self) -> None:
        """The parser handed a request head over (or refused one): stop the head timer."""
        self._stop_head_timer()

    def data_received(self, data: bytes) -> None:
        if data and self._head_timer is not None and not self._draining:
            self._partial_head = True
        super().data_received(data)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None:
            return
        if self._partial_head:     # an idle (or draining) connection is closed silently
            request_id = new_request_id()
            timeout = self._edge.limits.header_timeout
            transport.write(raw_answer(RequestTimeout(
                f"the request head did not arrive within {timeout:g} s",
                details={"header_timeout_ms": round(timeout * 1000)}), request_id))
            self._edge.closed("header_timeout", request_id)
        self.force_close()

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._await_head(draining=not request.content.is_eof())

    # refusals of the parser --------------------------------------------------------

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp's parser refused (or an error that escaped the application)
        as the error object; the connection is closed after it, as aiohttp does."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response was already started; the connection is "
                                  "closed instead of answered")
        ctx, request_id = self._edge.ctx, new_request_id()
        error: ProtocolError
        if status >= 500:
            ctx.log.error("unhandled error", request_id=request_id, exc_info=exc)
            error = InternalError()
        else:
            error = _parser_refusal(exc, status, {"max_line_bytes": self.max_line_size,
                                                  "max_header_fields": self.max_headers})
        log_request(ctx, request_id=request_id, method="-", route=UNPARSED,
                    status=error.status_hint, error=error.code, elapsed=0.0)
        response = web.json_response(error_body(error), status=error.status_hint,
                                     headers={"X-Request-Id": request_id})
        response.force_close()
        return response


__all__ = ["LINGER", "UNPARSED", "new_request_id", "log_request", "error_body", "retry_headers",
           "raw_answer", "read_body", "Edge", "EdgeHandler"]
