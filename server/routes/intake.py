"""The resident's intake page (docs/protocol.md §14.3 "Intake page"; ADR 0038).

A static page -- HTML, one style sheet, one script and the vendored libsodium.js -- that a
resident without keys opens at ``/intake/{network}``.  In the browser it fetches the
network's card, checks it as ``schakel.client.card`` does (the coordinator's fingerprint
from the leaflet, the card's signature, the server fingerprint), seals the signal to the
card's intake key, posts it to the signal route and reads the feedback on its receipt.
The server only serves the files: it never sees the text, and holds no rule of the page's.

The page exists only for a network whose policy takes anonymous signals (otherwise 404,
as for an unknown network): it would invite signals the intake refuses.  Every answer of
these routes carries the same security headers (:data:`SECURITY_HEADERS`): a strict
Content-Security-Policy (scripts and styles of this origin only, no inline script,
requests to this origin only, no framing, no native form submission), ``nosniff`` and no
referrer.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from schakel.server.errors import NotFound
from schakel.server.registry import Call, Handler, RouteTable

routes = RouteTable("intake")

#: Where the page's files live in the package (``server/static/``).
STATIC = "schakel.server.static"

#: The Content-Security-Policy of every intake answer.  ``'wasm-unsafe-eval'`` lets
#: libsodium.js compile its WebAssembly and allows no JavaScript ``eval``; without it the
#: library does not start under this policy (Chromium), and the page cannot seal.
#: ``form-action 'none'``: should the script not run, the form cannot send its plaintext
#: anywhere.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
))

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    # Static files, but a changed page or script must reach the resident at once.
    "Cache-Control": "no-cache",
}


@cache
def _file(name: str) -> bytes:
    """A file of ``server/static/`` (``vendor/libsodium.js``), read once."""
    path = resources.files(STATIC)
    for part in name.split("/"):
        path = path.joinpath(part)
    return path.read_bytes()


def static_answer(name: str, content_type: str) -> web.Response:
    """A file of the page, with the security headers."""
    return web.Response(body=_file(name), content_type=content_type, charset="utf-8",
                        headers=SECURITY_HEADERS)


@routes.route("GET", "/intake/{network}", auth="unsigned",
              who="anyone, for a network whose policy has anonymous_signals",
              response={"type": "string", "description": "the intake page (HTML)"},
              content_type="text/html")
async def intake_page(call: Call) -> web.Response:
    """The resident's intake page of a network that takes anonymous signals: static HTML
    whose script checks the network's card, seals a signal in the browser and reads its
    feedback.  A network without anonymous signals, or no such network, is 404.

    Example::

        GET /intake/{network}
        200 text/html  <!doctype html><html lang="nl">...
    """
    network = call.id("network")
    state = call.ctx.directory.network(network)
    if not state.policy.anonymous_signals:
        raise NotFound("this network takes no anonymous signals, so it has no intake page")
    return static_answer("intake.html", "text/html")


#: The page's other files: (URL path, file under server/static/, media type, handler name).
ASSETS = (
    ("/intake/static/intake.css", "intake.css", "text/css", "intake_style"),
    ("/intake/static/intake.js", "intake.js", "text/javascript", "intake_script"),
    ("/intake/static/vendor/libsodium.js", "vendor/libsodium.js", "text/javascript",
     "intake_libsodium"),
    ("/intake/static/vendor/libsodium-wrappers.js", "vendor/libsodium-wrappers.js",
     "text/javascript", "intake_libsodium_wrappers"),
)


def _asset_route(path: str, name: str, content_type: str, handler_name: str) -> Handler:
    async def handler(call: Call) -> web.Response:
        return static_answer(name, content_type)
    handler.__name__ = handler.__qualname__ = handler_name
    handler.__doc__ = (f"A file of the intake page: ``server/static/{name}`` ({content_type}), "
                       f"with the page's security headers.\n\nExample::\n\n"
                       f"    GET {path}\n    200 {content_type}")
    return routes.route("GET", path, auth="unsigned", who="anyone",
                        response={"type": "string", "description": f"{name} ({content_type})"},
                        content_type=content_type)(handler)


for _path, _name, _type, _handler in ASSETS:
    _asset_route(_path, _name, _type, _handler)


__all__ = ["routes", "STATIC", "CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "ASSETS",
           "static_answer"]
