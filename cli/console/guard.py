"""The console's safety layer (ADR 0040 §2): who may talk to the console at all.

The console listens on 127.0.0.1 only, but any web page the user opens can make their
browser send requests there, and any local process can connect.  So every request must
prove that it comes from the browser the console was opened in:

* the ``Host`` header must be ``127.0.0.1:PORT`` exactly (a DNS-rebinding page sends its
  own host name);
* the one-time start token (in the address the console printed) is exchanged on the
  first visit for a session cookie (HttpOnly, SameSite=Strict) and removed from the
  address by a redirect; every later request without that session is refused;
* a POST's body has a length, of at most 64 KiB (16 MiB on the routes whose form carries
  a file: :func:`upload`), before any of it is read;
* every POST carries the session's CSRF token in its form and an ``Origin`` header of
  the console itself (a foreign or missing Origin is refused);
* every answer, a refusal too, carries a strict Content-Security-Policy (no script at
  all, no inline style, nothing from elsewhere, no framing, forms to the console only),
  ``nosniff``, and a referrer for the console itself only (``same-origin``: the
  console's own forms must carry its Origin, which ``no-referrer`` would blank).

A refusal is 403 with a short Dutch-first page saying what was refused and what to do;
it never says which check a guessed token or cookie failed beyond that.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from schakel.cli.i18n import _

#: Only this address: the console is the user's own and never reachable from the network.
LOOPBACK = "127.0.0.1"
#: The session cookie's name.
COOKIE = "schakel_console"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf"
#: Largest request body the console reads (its forms are short texts).
MAX_BODY = 64 * 1024
#: Largest body of a form that carries a file (the signed consent form, ADR 0041): a
#: scan or PDF of a few pages.  Only the routes marked with :func:`upload` accept it.
MAX_UPLOAD = 16 * 1024 * 1024

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": under it Chromium sends ``Origin: null`` with every form POST,
    # and the Origin check could not tell the console's own forms from a foreign page's.
    # "same-origin" sends nothing to any other origin, which is what no-referrer is for.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Pages hold plaintext of cases: never kept in the browser's cache.
    "Cache-Control": "no-store",
}

#: What the checks leave on the request for the handlers: the session's CSRF token (for
#: the forms a page shows) and a POST's form, read once here.
CSRF = web.RequestKey("csrf", str)
FORM = web.RequestKey("form", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def upload(limit: int) -> Callable[[Handler], Handler]:
    """Mark a POST handler whose form carries a file: the guard reads a body of up to
    ``limit`` bytes for it (every other route stays at :data:`MAX_BODY`)."""
    def mark(handler: Handler) -> Handler:
        handler.max_body = limit            # type: ignore[attr-defined]
        return handler
    return mark


def body_limit(request: web.Request) -> int:
    """The largest body the matched route reads (:func:`upload`, else :data:`MAX_BODY`)."""
    return int(getattr(request.match_info.handler, "max_body", MAX_BODY))


@dataclass
class Gate:
    """The console's secrets for one start: the start token (usable once), and the
    sessions it was exchanged for, each with its CSRF token."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    sessions: dict[str, str] = field(default_factory=dict)      # session -> csrf
    used: bool = False

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    def address(self) -> str:
        """The address to open: the only place the start token is shown."""
        return f"{self.origin}/?token={self.token}"

    def exchange(self, token: str) -> str | None:
        """A new session for the start token, once; None for a wrong or used token."""
        if self.used or not secrets.compare_digest(token.encode(), self.token.encode()):
            return None
        self.used = True
        session = secrets.token_urlsafe(32)
        self.sessions[session] = secrets.token_urlsafe(32)
        return session

    def csrf_of(self, session: str | None) -> str | None:
        if not session:
            return None
        for known, csrf in self.sessions.items():
            if secrets.compare_digest(known.encode(), session.encode()):
                return csrf
        return None


def refusal(what: str, todo: str) -> web.Response:
    """403 with a plain page: what was refused and what to do (no template, no session)."""
    body = ("<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>"
            + _("Schakel console: refused") + "</title></head><body><main><h1>"
            + _("Refused") + "</h1><p>" + what + "</p><p>" + todo + "</p></main></body></html>")
    return web.Response(status=403, text=body, content_type="text/html", charset="utf-8")


def middleware(gate: Gate) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The checks of the module docstring, in order, before any handler runs."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host != gate.host:
            return refusal(_("This console answers only at {origin}.").format(origin=gate.origin),
                           _("Open the address that `schakel console` printed."))
        token = request.query.get("token")
        if request.method == "GET" and request.path == "/" and token is not None:
            session = gate.exchange(token)
            if session is None:
                return refusal(_("This start address is not valid (any more): it can be "
                                 "used once."),
                               _("Start `schakel console` again for a new address."))
            answer = web.Response(status=303, headers={"Location": "/"})
            answer.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
            return answer
        csrf = gate.csrf_of(request.cookies.get(COOKIE))
        if csrf is None:
            return refusal(_("This browser has no session with the console."),
                           _("Open the address that `schakel console` printed, in this "
                             "browser; or start the console again for a new address."))
        request[CSRF] = csrf
        if request.method not in ("GET", "HEAD"):
            if request.headers.get("Origin") != gate.origin:
                return refusal(_("A form was sent from another page than the console's "
                                 "own (Origin)."), _("Use the console's own pages."))
            limit = body_limit(request)
            if request.content_length is None or request.content_length > limit:
                return refusal(_("The form is too large or has no length."),
                               _("Send shorter texts.") if limit == MAX_BODY else
                               _("Send a smaller file (at most {mib} MiB).").format(
                                   mib=limit // (1024 * 1024)))
            reader = request if limit == MAX_BODY else request.clone(client_max_size=limit)
            form = await reader.post()
            sent = form.get(CSRF_FIELD)
            if not isinstance(sent, str) or not secrets.compare_digest(sent.encode(),
                                                                       csrf.encode()):
                return refusal(_("The form does not carry this session's CSRF token."),
                               _("Reload the page and send the form again."))
            request[FORM] = form
        return await handler(request)

    return check


async def headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, a refusal or an aiohttp error page too, carries the security headers."""
    response.headers.update(SECURITY_HEADERS)


__all__ = ["COOKIE", "CSRF", "FORM", "CONTENT_SECURITY_POLICY", "CSRF_FIELD", "Gate", "LOOPBACK", "MAX_BODY",
           "MAX_UPLOAD", "SECURITY_HEADERS", "body_limit", "headers", "middleware", "refusal",
           "upload"]
