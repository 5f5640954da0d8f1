"""The console (ADR 0040): the application, the unlock form and the choice of network.
Each group of screens is a module of its own with a ``routes`` function
(:data:`SCREENS`); what they share is in :mod:`schakel.cli.console.screen`."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from schakel.cli.console import (
    audit, bemoeizorg, cases, casework, consent, members, network, sharing, signals,
)
from schakel.cli.console.guard import FORM, Gate, Handler, headers, middleware
from schakel.cli.console.screen import (
    HELD, STATIC, TEMPLATES, FormError, Held, field_text, page, word, wrote,
)
from schakel.cli.i18n import LANGUAGES, _, ngettext, use
from schakel.protocol.errors import KeystoreError

#: The modules of screens, each adding its routes to the console.
SCREENS = (network, signals, cases, casework, sharing, consent, members, bemoeizorg, audit)

async def index(request: web.Request) -> web.Response:
    partner = request.app[HELD].partner
    if partner is None:
        return page(request, "unlock.html", home=str(request.app[HELD].home))
    places = partner.networks.places()
    return page(request, "networks.html", places=places)


async def unlock(request: web.Request) -> web.StreamResponse:
    form = request[FORM]
    if request.app[HELD].partner is not None:
        raise web.HTTPSeeOther("/")
    try:
        passphrase = field_text(form, "passphrase")
    except FormError as error:
        return page(request, "unlock.html", http_status=422, error=str(error),
                    home=str(request.app[HELD].home))
    from schakel.client import Partner

    try:
        async with request.app[HELD].lock:
            partner = await Partner.open(request.app[HELD].home, passphrase or "",
                                         server=request.app[HELD].server)
    except KeystoreError:
        return page(request, "unlock.html", http_status=422, home=str(request.app[HELD].home),
                    error=_("The passphrase does not open this home. Try again."))
    request.app[HELD].partner = partner
    raise web.HTTPSeeOther("/")


async def choose_language(request: web.Request) -> web.StreamResponse:
    """Speak the language the header's form chose (ADR 0037): for the whole process, as
    ``--lang`` does for one run of the command line, since the console serves one person.
    Locked or unlocked alike: the words are no secret, and the form carries the CSRF token
    (the middleware checks it)."""
    chosen = request[FORM].get("lang")
    if chosen not in LANGUAGES:
        return page(request, "refused.html", http_status=422,
                    form_error=_("Choose a language the console speaks: Nederlands or "
                                 "English."))
    use(chosen)
    raise web.HTTPSeeOther("/")


# ------------------------------------------------------------------ the app

async def _close(app: web.Application) -> None:
    held = app[HELD]
    for run in held.audits.values():
        if run.task is not None and not run.task.done():
            run.task.cancel()
    if held.partner is not None:
        await held.partner.close()
        held.partner = None


@web.middleware
async def writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A form sent for a network (``POST /n/NETWORK/…``) may have changed it: the next
    case page asks the server first (:func:`~schakel.cli.console.screen.wrote`), whatever
    the answer was."""
    try:
        return await handler(request)
    finally:
        network = request.match_info.get("network")
        partner = request.app[HELD].partner
        if request.method == "POST" and network and partner is not None:
            wrote(partner, network)


def make_app(home: Path, server: str | None, gate: Gate) -> web.Application:
    """The console for ``home`` behind ``gate`` (its port and start token)."""
    from schakel.cli.console.guard import MAX_BODY

    app = web.Application(middlewares=[middleware(gate), writes], client_max_size=MAX_BODY)
    app[HELD] = Held(home=home, server=server)
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                               autoescape=jinja2.select_autoescape(["html"], default=True),
                               extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined)
    env.install_gettext_callables(_, ngettext, newstyle=True)    # type: ignore[attr-defined]
    env.filters["word"] = word
    env.globals.update(casework.GLOBALS)
    app.on_response_prepare.append(headers)
    app.on_cleanup.append(_close)
    app.router.add_get("/", index)
    app.router.add_post("/unlock", unlock)
    app.router.add_post("/language", choose_language)
    for screen in SCREENS:
        screen.routes(app.router)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


__all__ = ["make_app"]
