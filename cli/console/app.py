"""The console's screens (ADR 0040): unlock the home and choose a network, the
coördinator's signals inbox (read, feedback, turn into a case) and the cases (list with
a filter, one case's anonymous layer, add a note, close).

One :class:`~schakel.client.Partner` is opened by the unlock form and kept in this process
until the console stops; every screen calls the same library as the commands, one call at
a time (a lock), and a refusal is shown as the CLI explains it: what was refused, why,
what to do, and for the PII guard the span it refuses.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from schakel.cli.console.guard import CSRF, CSRF_FIELD, FORM, Gate, headers, middleware
from schakel.cli.i18n import N_, _, language, ngettext
from schakel.protocol.errors import KeystoreError, PolicyViolation, ProtocolError

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
#: Ids in addresses: the library's url-safe base64 ids (a network id, a case or signal id).
ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: Longest text a form field may hold (the library's own bounds are checked after).
MAX_TEXT = 4000

@dataclass
class Held:
    """What the console holds for its one user: the home, the server address it was
    given, the unlocked partner (None until the unlock form opens it), and the lock
    that lets one library call run at a time."""

    home: Path
    server: str | None
    partner: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    audits: dict[str, Verification] = field(default_factory=dict)


@dataclass
class Verification:
    """One verification of a network's audit log running in the background: how many
    entries' inclusion proofs were checked so far, then the verified head and entries
    (newest first), or the refusal that ended it."""

    checked: int = 0
    done: bool = False
    result: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    refusal: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None


HELD = web.AppKey("held", Held)


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ID.fullmatch(value):
        raise web.HTTPNotFound()
    return value


def _text(form: Any, name: str, *, required: bool = True) -> str | None:
    value = form.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FormError(_("Fill in the field “{field}”.").format(field=label(name)))
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FormError(_("The field “{field}” is too long (at most {n} characters).").format(
            field=label(name), n=MAX_TEXT))
    return value.strip()


def _choice(form: Any, name: str, allowed: tuple[str, ...]) -> str:
    value = form.get(name)
    if value not in allowed:
        raise FormError(_("Choose a value for “{field}”.").format(field=label(name)))
    return str(value)


#: The protocol's codes a screen shows, as words (the ``word`` filter of the templates).
WORDS = {
    "low": N_("low"), "medium": N_("medium"), "high": N_("high"), "acute": N_("acute"),
    "received": N_("received"), "taken-up": N_("taken up"), "referred": N_("referred"),
    "closed": N_("closed"), "not-taken-up": N_("not taken up"), "open": N_("open"),
    "resident": N_("resident"), "volunteer": N_("volunteer"),
    "volunteer-driver": N_("volunteer driver"), "gp": N_("GP"), "neighbour": N_("neighbour"),
    "family": N_("family"), "shell-partner": N_("shell partner"),
    "professional": N_("professional"), "other": N_("other"),
    "allow": N_("allowed"), "deny": N_("refused"),
}


def word(code: Any) -> str:
    """A code shown as a word in the language spoken now (the code itself if unknown)."""
    return _(WORDS[code]) if isinstance(code, str) and code in WORDS else str(code)


def label(name: str) -> str:
    """The label of the form field ``name``, in the language spoken now."""
    return _(FIELD_LABELS[name])


class FormError(Exception):
    """A form the console refuses before anything is sent."""


FIELD_LABELS = {
    "passphrase": N_("Passphrase"), "message": N_("Message to the signaller"), "status": N_("Status"),
    "summary": N_("Summary (without names, addresses or numbers)"), "age_band": N_("Age band"),
    "neighbourhood": N_("Neighbourhood (wijk)"), "domains": N_("Problem domains"),
    "severity": N_("Severity"), "care_status": N_("Care status"), "complex": N_("Complex case"),
    "text": N_("Note"), "reason": N_("Reason for closing (without identifying data)"),
}


def explain(error: ProtocolError) -> dict[str, Any]:
    """A refusal as the CLI explains it (cli/main.py ``fail``): lines of what, why, what
    to do; and for the PII guard each refused span shown in its text."""
    from schakel.cli.commands.guard import TextRefusal, findings_of, marked
    from schakel.cli.commands.refusal import not_trusted
    from schakel.cli.main import HINTS, PII_HINT, REASONS, SERVER_HINTS
    from schakel.client.errors import ServerMisbehaviour, ServerRefused

    details = error.details or {}
    spans: list[dict[str, str]] = []
    recorded: str | None = None
    if isinstance(error, PolicyViolation) and details.get("findings") is not None:
        what = _("refused: the PII guard found identifying data in the text "
                 "(docs/protocol.md §8)")
        texts = getattr(error, "texts", {}) if isinstance(error, TextRefusal) else {}
        for path, finding in findings_of(error):
            text = texts.get(path)
            if text is not None and finding.end <= len(text):
                spans.append({"field": path, "kind": finding.label,
                              "before": text[max(0, finding.start - 30):finding.start],
                              "span": text[finding.start:finding.end],
                              "after": text[finding.end:finding.end + 30]})
            else:
                spans.append({"field": path, "kind": finding.label, "before": "",
                              "span": finding.placeholder, "after": ""})
        hint: str | None = _(PII_HINT)
    elif isinstance(error, ServerMisbehaviour):
        message = error.message
        if message.startswith(f"{error.what}: "):
            message = message[len(error.what) + 2:]
        what = _("the server misbehaved ({what}): {message}").format(what=error.what,
                                                                      message=message)
        recorded = _("this was recorded in your home; nothing from this answer was believed")
        advice = HINTS["server_misbehaviour"]
        hint = _(advice)
    else:
        what = _("refused: {message}").format(message=error.message)
        hint = HINTS.get(error.code)
        if isinstance(error, ServerRefused) and error.code in SERVER_HINTS:
            hint = SERVER_HINTS[error.code]
        hint = not_trusted(error) or (_(hint) if hint else None)
    reason = details.get("reason")
    why = None
    if isinstance(reason, str):
        why = (_("reason: {reason}: {explanation}").format(reason=reason,
                                                            explanation=_(REASONS[reason]))
               if reason in REASONS else _("reason: {reason}").format(reason=reason))
    return {"what": what, "why": why, "todo": hint, "spans": spans, "recorded": recorded}


def page(request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
    partner = request.app[HELD].partner
    context.setdefault("who", getattr(partner, "name", None) if partner else None)
    return aiohttp_jinja2.render_template(template, request, {
        "csrf": request.get(CSRF, ""), "csrf_field": CSRF_FIELD, "lang": language(),
        **context}, status=http_status)


def _partner(request: web.Request) -> Any:
    partner = request.app[HELD].partner
    if partner is None:
        raise web.HTTPSeeOther("/")
    return partner


# ------------------------------------------------------------------ unlock, networks

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
        passphrase = _text(form, "passphrase")
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


# ------------------------------------------------------------------ signals

async def _received(request: web.Request, network: str) -> list[Any]:
    partner = _partner(request)
    async with request.app[HELD].lock:
        return list(await partner.signals.received(network))


async def inbox(request: web.Request) -> web.Response:
    network = _id(request, "network")
    try:
        signals = await _received(request, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    return page(request, "inbox.html", network=network, signals=signals,
                count=_("Signals: {n}").format(n=len(signals)))


async def _one_signal(request: web.Request, network: str, wanted: str) -> Any:
    for item in await _received(request, network):
        if item.signal == wanted:
            return item
    raise web.HTTPNotFound()


async def signal(request: web.Request, **context: Any) -> web.Response:
    network, wanted = _id(request, "network"), _id(request, "signal")
    try:
        item = await _one_signal(request, network, wanted)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    return page(request, "signal.html", http_status=context.pop("http_status", 200), network=network,
                item=item, choices=_choices(), **context)


def _choices() -> dict[str, Any]:
    from schakel.cli.commands.case import CARE_STATUSES
    from schakel.cli.commands.signal import FEEDBACK_STATUSES
    from schakel.protocol.objects.plaintext import AGE_BANDS, PROBLEM_DOMAINS, SEVERITIES

    return {"statuses": FEEDBACK_STATUSES, "age_bands": AGE_BANDS, "domains": PROBLEM_DOMAINS,
            "severities": SEVERITIES, "care_statuses": CARE_STATUSES}


async def feedback(request: web.Request) -> web.StreamResponse:
    from schakel.cli.commands.signal import FEEDBACK_STATUSES

    network, wanted = _id(request, "network"), _id(request, "signal")
    form = request[FORM]
    try:
        status = _choice(form, "status", FEEDBACK_STATUSES)
        message = _text(form, "message", required=False)
    except FormError as error:
        return await signal(request, http_status=422, form_error=str(error))
    partner = _partner(request)
    try:
        async with request.app[HELD].lock:
            await partner.signals.feedback(network, wanted, status, message)
    except ProtocolError as error:
        return await signal(request, http_status=403, refusal=explain(error))
    raise web.HTTPSeeOther(f"/n/{network}/signals/{wanted}?sent=1")


SOURCE_OF = {"resident": "resident", "neighbour": "resident", "family": "resident",
             "volunteer": "volunteer", "volunteer-driver": "volunteer", "gp": "gp",
             "shell-partner": "shell-partner", "professional": "partner", "other": "other"}


async def to_case(request: web.Request) -> web.StreamResponse:
    """Turn a signal into a case: the coördinator writes the anonymous intake (the
    concern itself may name the person and stays with the signal), the signal's sealed
    identity becomes the case's, and the signaller hears "taken-up"."""
    from schakel.cli.commands.guard import refuse_early, showing
    from schakel.cli.commands.output import plain

    network, wanted = _id(request, "network"), _id(request, "signal")
    form = request[FORM]
    choices = _choices()
    try:
        domains = form.getall("domains", [])
        if not domains or any(d not in choices["domains"] for d in domains):
            raise FormError(_("Choose a value for “{field}”.").format(
                field=label("domains")))
        intake = {"kind": "intake", "summary": _text(form, "summary"),
                  "age_band": _choice(form, "age_band", choices["age_bands"]),
                  "neighbourhood": _text(form, "neighbourhood"),
                  "domains": list(domains),
                  "severity": _choice(form, "severity", choices["severities"]),
                  "care_status": _choice(form, "care_status", choices["care_statuses"]),
                  "complex": form.get("complex") == "yes"}
    except FormError as error:
        return await signal(request, http_status=422, form_error=str(error))
    partner = _partner(request)
    try:
        refuse_early(intake)
        item = await _one_signal(request, network, wanted)
        intake["source"] = ("anonymous-signal" if item.sender is None
                            else SOURCE_OF.get(item.content.get("signaller_kind"), "other"))
        identity = {cls: {k: v for k, v in fields.items() if k != "type"}
                    for cls, fields in plain(item.content.get("identity") or {}).items()}
        with showing(intake):
            async with request.app[HELD].lock:
                await partner.sync(network)
                case = await partner.cases.create(network, intake, identity=identity or None)
                await partner.signals.feedback(network, wanted, "taken-up", None)
    except ProtocolError as error:
        return await signal(request, http_status=422, refusal=explain(error), intake=intake)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}")


# ------------------------------------------------------------------ cases

async def cases(request: web.Request) -> web.Response:
    from schakel.cli.commands.case import case_summary, member_names

    network = _id(request, "network")
    status = request.query.get("status", "all")
    domain = request.query.get("domain", "")
    choices = _choices()
    if status not in ("all", "open", "closed"):
        status = "all"
    if domain not in choices["domains"]:
        domain = ""
    partner = _partner(request)
    try:
        async with request.app[HELD].lock:
            await partner.sync(network)
            names = member_names(partner, network)
            rows = [case_summary(v, names) for v in partner.cases.all(network)]
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network, refusal=explain(error))
    rows = [r for r in rows if (status == "all" or r["status"] == status)
            and (not domain or domain in (r["domains"] or []))]
    return page(request, "cases.html", network=network, cases=rows, status=status,
                domain=domain, choices=choices)


async def case(request: web.Request, **context: Any) -> web.Response:
    from schakel.cli.commands.case import _event_row, member_names
    from schakel.cli.commands.output import plain

    network, wanted = _id(request, "network"), _id(request, "case")
    partner = _partner(request)
    try:
        async with request.app[HELD].lock:
            await partner.sync(network)
            view = plain(partner.cases.get(network, wanted))
            names = member_names(partner, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=404, network=network, refusal=explain(error))
    events = [_event_row(e, names) for e in view.get("events") or []]
    return page(request, "case.html", http_status=context.pop("http_status", 200), network=network,
                view=view, state=view.get("state") or {}, events=events,
                owner=names.get(view["owner"], view["owner"]), **context)


async def note(request: web.Request) -> web.StreamResponse:
    from schakel.cli.commands.guard import refuse_early, showing

    network, wanted = _id(request, "network"), _id(request, "case")
    try:
        text = _text(request[FORM], "text")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    plaintext = {"kind": "note", "text": text}
    partner = _partner(request)
    try:
        refuse_early(plaintext)
        with showing(plaintext):
            async with request.app[HELD].lock:
                await partner.sync(network)
                await partner.cases.add_event(network, wanted, plaintext)
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), text=text)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}#notes")


async def close(request: web.Request) -> web.StreamResponse:
    """Close a case (its owner or the coördinator), with a reason the PII guard checked."""
    from schakel.cli.commands.guard import refuse_early, showing

    network, wanted = _id(request, "network"), _id(request, "case")
    try:
        reason = _text(request[FORM], "reason")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    partner = _partner(request)
    try:
        refuse_early(checked)
        with showing(checked):
            async with request.app[HELD].lock:
                await partner.sync(network)
                await partner.cases.close(network, wanted, reason=reason or "")
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), reason=reason)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}")


# ------------------------------------------------------------------ audit

#: What each way the audit log can fail verification means for the person reading it.
AUDIT_MEANINGS = {
    "audit-rollback": N_("The server showed an older, shorter log than it showed this home "
                         "before: entries that were in the log are being hidden."),
    "audit-fork": N_("The server showed a log that does not continue the one it showed this "
                     "home before: it shows different histories to different readers."),
    "audit-entry-rewritten": N_("An entry differs from what the server signed: someone "
                                "changed who did what, when or why after the fact."),
    "audit-entry-missing": N_("Entries the signed log holds were not handed over: a release "
                              "or a refusal may be hidden from you."),
}
#: What to do when the audit log fails verification.
AUDIT_TODO = N_("Stop sharing identity through this server, tell the coördinator and the "
                "network's auditor, and keep this home as it is: it holds the evidence "
                "(the signed heads) that `schakel audit verify` shows again.")

#: Entries on one page of the audit screen.
AUDIT_PAGE = 50


async def _verify(held: Held, network: str, run: Verification) -> None:
    """Verify the whole log as ``schakel audit verify`` does, then read the verified
    entries; the outcome (or the refusal) is kept in ``run`` for the page to show."""
    from schakel.cli.commands.audit import entry_row
    from schakel.cli.commands.output import plain

    def progress(n: int) -> None:
        run.checked = n

    try:
        async with held.lock:
            result = plain(await held.partner.audit.verify(network, progress=progress))
            items = plain(await held.partner.audit.entries(network))
        run.entries = [entry_row(item) for item in reversed(items)]
        run.result = result
    except ProtocolError as error:
        run.refusal = explain(error)
        what = (error.details or {}).get("what")
        if isinstance(what, str) and what in AUDIT_MEANINGS:
            run.refusal["meaning"] = _(AUDIT_MEANINGS[what])
            run.refusal["todo"] = _(AUDIT_TODO)
    finally:
        run.done = True


async def audit_page(request: web.Request) -> web.Response:
    """The verified head and entries (newest first, paged), the progress of a
    verification still running (the page refreshes itself), or what a failure means."""
    network = _id(request, "network")
    _partner(request)
    run = request.app[HELD].audits.get(network)
    try:
        at = max(0, int(request.query.get("page", "0")))
    except ValueError:
        at = 0
    shown = run.entries[at * AUDIT_PAGE:(at + 1) * AUDIT_PAGE] if run else []
    more = bool(run) and len(run.entries) > (at + 1) * AUDIT_PAGE
    return page(request, "audit.html", network=network, run=run, shown=shown, at=at,
                more=more, refusal=None)


async def audit_verify(request: web.Request) -> web.StreamResponse:
    """Start verifying the log from scratch in the background (one at a time per network)."""
    network = _id(request, "network")
    _partner(request)
    held = request.app[HELD]
    running = held.audits.get(network)
    if running is None or running.done:
        run = Verification()
        held.audits[network] = run
        run.task = asyncio.create_task(_verify(held, network, run))
    raise web.HTTPSeeOther(f"/n/{network}/audit")


# ------------------------------------------------------------------ the app

async def _close(app: web.Application) -> None:
    held = app[HELD]
    for run in held.audits.values():
        if run.task is not None and not run.task.done():
            run.task.cancel()
    if held.partner is not None:
        await held.partner.close()
        held.partner = None


def make_app(home: Path, server: str | None, gate: Gate) -> web.Application:
    """The console for ``home`` behind ``gate`` (its port and start token)."""
    from schakel.cli.console.guard import MAX_BODY

    app = web.Application(middlewares=[middleware(gate)], client_max_size=MAX_BODY)
    app[HELD] = Held(home=home, server=server)
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                               autoescape=jinja2.select_autoescape(["html"], default=True),
                               extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined)
    env.install_gettext_callables(_, ngettext, newstyle=True)    # type: ignore[attr-defined]
    env.filters["word"] = word
    app.on_response_prepare.append(headers)
    app.on_cleanup.append(_close)
    app.router.add_get("/", index)
    app.router.add_post("/unlock", unlock)
    app.router.add_get("/n/{network}/signals", inbox)
    app.router.add_get("/n/{network}/signals/{signal}", signal)
    app.router.add_post("/n/{network}/signals/{signal}/feedback", feedback)
    app.router.add_post("/n/{network}/signals/{signal}/case", to_case)
    app.router.add_get("/n/{network}/cases", cases)
    app.router.add_get("/n/{network}/cases/{case}", case)
    app.router.add_post("/n/{network}/cases/{case}/note", note)
    app.router.add_post("/n/{network}/cases/{case}/close", close)
    app.router.add_get("/n/{network}/audit", audit_page)
    app.router.add_post("/n/{network}/audit/verify", audit_verify)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


__all__ = ["FIELD_LABELS", "explain", "make_app"]
