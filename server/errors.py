"""Refusals that only the server makes (docs/protocol.md §14): the HTTP-level codes beside the
protocol's error tree.  Each is a :class:`~schakel.protocol.errors.ProtocolError` with a stable
``code`` and a ``status_hint``, so the one error middleware maps them all alike."""

from __future__ import annotations

from schakel.protocol.errors import ProtocolError, UntrustedKeyError


class NotFound(ProtocolError):
    """No such network, case or signal (or none the caller may know of)."""

    code = "not_found"
    status_hint = 404


class Forbidden(ProtocolError):
    """Authenticated, but this caller may not do this (another network, wrong ring or role)."""

    code = "forbidden"
    status_hint = 403


class Conflict(ProtocolError):
    """An id reused with different content, a ``prev`` that is not the case's last event,
    a write to a closed case."""

    code = "conflict"
    status_hint = 409


class MethodNotAllowed(ProtocolError):
    code = "method_not_allowed"
    status_hint = 405


class TooLarge(ProtocolError):
    code = "too_large"
    status_hint = 413


class UnsupportedMediaType(ProtocolError):
    code = "unsupported_media_type"
    status_hint = 415


class RateLimited(ProtocolError):
    code = "rate_limited"
    status_hint = 429


class UnknownKey(UntrustedKeyError):
    """A request signed by a key the server does not know at all: not authenticated,
    so 401 (docs/protocol.md §14, Authentication step 3), with the protocol's code."""

    status_hint = 401


class InternalError(ProtocolError):
    """A server fault.  The message is fixed: no detail ever leaves the server."""

    code = "internal_error"
    status_hint = 500

    def __init__(self) -> None:
        super().__init__("internal server error")


class RequestTimeout(ProtocolError):
    """A request that did not arrive in time: its body not within ``limits.body_timeout``
    seconds, or its head not within ``limits.header_timeout``; the connection is closed."""

    code = "request_timeout"
    status_hint = 408


#: Seconds a client is asked to wait before retrying after :class:`Unavailable`.
RETRY_AFTER = 1


class Unavailable(ProtocolError):
    """The server cannot take the request now: it is shutting down, or its storage refuses
    (disk full, an I/O error).  Nothing of the request was kept; retry after
    ``details.retry_after`` seconds (also sent as ``Retry-After``)."""

    code = "unavailable"
    status_hint = 503

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message, details={"retry_after": retry_after})


#: Every server-side code, for the OpenAPI document.
SERVER_ERRORS: tuple[type[ProtocolError], ...] = (
    NotFound, Forbidden, Conflict, MethodNotAllowed, TooLarge, UnsupportedMediaType,
    RateLimited, RequestTimeout, InternalError, Unavailable,
)

__all__ = ["NotFound", "Forbidden", "Conflict", "MethodNotAllowed", "TooLarge",
           "UnsupportedMediaType", "RateLimited", "UnknownKey", "InternalError", "Unavailable",
           "RequestTimeout", "RETRY_AFTER", "SERVER_ERRORS"]
