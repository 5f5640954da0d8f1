"""What every screen of the console shares (ADR 0040): what the console holds for its
one user, reading ids and form fields, showing codes and labels in the language spoken
now, explaining a refusal as the CLI does, and rendering a page.

One :class:`~schakel.client.Partner` is opened by the unlock form and kept in this process
until the console stops; every screen calls the same library as the commands, one call at
a time (the lock), and a refusal is shown as the CLI explains it: what was refused, why,
what to do, and for the PII guard the span it refuses.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from schakel.cli.console.guard import CSRF, CSRF_FIELD
from schakel.cli.i18n import N_, _, language
from schakel.protocol.errors import PolicyViolation, ProtocolError

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


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ID.fullmatch(value):
        raise web.HTTPNotFound()
    return value


def field_text(form: Any, name: str, *, required: bool = True,
               limit: int = MAX_TEXT) -> str | None:
    value = form.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FormError(_("Fill in the field “{field}”.").format(field=label(name)))
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise FormError(_("The field “{field}” is too long (at most {n} characters).").format(
            field=label(name), n=limit))
    return value.strip()


def field_choice(form: Any, name: str, allowed: tuple[str, ...]) -> str:
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
    # a member's place: ring, party, roles, and the role a partner has in a network
    "core": N_("core (kern)"), "shell": N_("shell (schil)"), "formal": N_("formal (professional)"),
    "informal": N_("informal (volunteer)"), "professional-secrecy": N_("professional secrecy"),
    "bemoeizorg": N_("bemoeizorg (outreach care)"), "auditor": N_("auditor (reviewer)"),
    "coordinator": N_("coordinator"),
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


def unlocked(request: web.Request) -> Any:
    partner = request.app[HELD].partner
    if partner is None:
        raise web.HTTPSeeOther("/")
    return partner


# ------------------------------------------------------------------ syncing

#: When this console last synced each network, per unlocked partner (monotonic seconds).
SYNCED: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()
#: Called after every sync a screen makes, with the partner, the network and the cases
#: the sync touched (the case list keeps its rows by them).
SYNC_LISTENERS: list[Callable[[Any, str, list[str]], None]] = []


async def sync(partner: Any, network: str) -> list[str]:
    """Ask the server what is new in ``network`` (``Partner.sync``), as every screen does
    through this one function: the time is kept and the listeners hear which cases it
    touched.  Call it under the console's lock."""
    result = await partner.sync(network)
    SYNCED.setdefault(partner, {})[network] = time.monotonic()
    touched = list(result.cases)
    for listener in SYNC_LISTENERS:
        listener(partner, network, touched)
    return touched


def since_sync(partner: Any, network: str) -> float | None:
    """Seconds since this console last synced ``network`` (None: not since a write)."""
    last = SYNCED.get(partner, {}).get(network)
    return None if last is None else time.monotonic() - last


def wrote(partner: Any, network: str) -> None:
    """The console sent something for ``network``: the next case page syncs first."""
    SYNCED.get(partner, {}).pop(network, None)


@asynccontextmanager
async def sending(request: web.Request, network: str, texts: dict[str, Any]
                  ) -> AsyncIterator[Any]:
    """The frame of every form that writes: the PII guard reads ``texts`` (the free texts
    the server or the kern would see) before anything else, a refusal shows the span in
    them (``showing``), and the library call runs under the console's lock after a sync,
    as a command would.  Yields the unlocked partner."""
    from schakel.cli.commands.guard import refuse_early, showing

    partner = unlocked(request)
    refuse_early(texts)
    with showing(texts):
        async with request.app[HELD].lock:
            await sync(partner, network)
            yield partner
