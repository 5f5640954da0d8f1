"""The audit screens (ADR 0040, ADR 0043): verify a network's log in the background with
progress, show the verified head and entries and what a failure means; the signed tree
heads this home holds; one entry with its inclusion proof against the verified head and
its sealed purpose (opened for the coördinator and auditors); and a case's subject access
report as a printable page."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from schakel.cli.console.screen import (
    HELD, ID, Held, Verification, explain, page, path_id, unlocked,
)
from schakel.cli.i18n import N_, _, language
from schakel.client.errors import ServerMisbehaviour
from schakel.protocol.errors import ProtocolError
from schakel.protocol.witnessing import NotWitnessedError

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
#: What a checkpoint without the policy's witness quorum means, and what to do (§17.5).
NOT_WITNESSED = N_("The witnesses the network's policy names have not cosigned the server's "
                   "newest checkpoint of this log recently enough: either the server cannot "
                   "reach them, or it keeps this home from the log the witnesses saw. "
                   "Nothing newer is believed until they have.")
NOT_WITNESSED_TODO = N_("Ask the coördinator whether the witnesses are running (`schakel "
                        "witness show` at each of them); if they are and the server still "
                        "serves no cosigned checkpoint, treat it as a split view: tell the "
                        "network's auditor and keep this home as it is.")
#: What to do when the audit log fails verification.
AUDIT_TODO = N_("Stop sharing identity through this server, tell the coördinator and the "
                "network's auditor, and keep this home as it is: it holds the evidence "
                "(the signed heads) that `schakel audit verify` shows again.")

#: Entries on one page of the audit screen.
AUDIT_PAGE = 50
#: Signed tree heads the audit screen lists (the newest; every sync may keep one).
HEADS_SHOWN = 20
#: An entry's index in an address: digits, below the largest tree size (2^53).
INDEX = re.compile(r"[0-9]{1,16}")


async def _verify(held: Held, network: str, run: Verification) -> None:
    """Verify the whole log as ``schakel audit verify`` does, and keep the entries that
    verification read and checked (one pass: ``Audit.verify_and_read``); the outcome (or
    the refusal) is kept in ``run`` for the page to show."""
    from schakel.cli.commands.audit import entry_row
    from schakel.cli.commands.output import plain

    def progress(n: int) -> None:
        run.checked = n

    try:
        async with held.lock:
            verified, items = await held.partner.audit.verify_and_read(
                network, progress=progress)
        result = plain(verified)
        run.entries = [{**entry_row(item),
                        "sealed": bool((item.get("entry") or {}).get("purpose"))}
                       for item in reversed(plain(items))]
        run.result = result
    except ProtocolError as error:
        run.refusal = failure(error)
    finally:
        run.done = True


async def audit_page(request: web.Request) -> web.Response:
    """The verified head and entries (newest first, paged), the progress of a
    verification still running (the page refreshes itself), or what a failure means."""
    network = path_id(request, "network")
    unlocked(request)
    run = request.app[HELD].audits.get(network)
    try:
        at = max(0, int(request.query.get("page", "0")))
    except ValueError:
        at = 0
    shown = run.entries[at * AUDIT_PAGE:(at + 1) * AUDIT_PAGE] if run else []
    more = bool(run) and len(run.entries) > (at + 1) * AUDIT_PAGE
    return page(request, "audit.html", network=network, run=run, shown=shown, at=at,
                more=more, refusal=None, **held_heads(request, network))


def held_heads(request: web.Request, network: str) -> dict[str, Any]:
    """The signed tree heads this home verified and keeps (newest first, at most
    :data:`HEADS_SHOWN`) and how many it keeps: read from the local state only, without
    the lock, so the page shows them while a verification runs."""
    heads = request.app[HELD].partner.audit.monitor(network).heads()
    newest = [heads[size] for size in sorted(heads, reverse=True)[:HEADS_SHOWN]]
    return {"heads": [{"size": h.size, "root": h.root, "time": h.time} for h in newest],
            "heads_held": len(heads)}


def failure(error: ProtocolError) -> dict[str, Any]:
    """A refusal explained as the CLI does, with what an audit failure means and what
    to do when it is one."""
    refusal = explain(error)
    what = (error.details or {}).get("what")
    if isinstance(error, NotWitnessedError):
        refusal["meaning"] = _(NOT_WITNESSED)
        refusal["todo"] = _(NOT_WITNESSED_TODO)
    elif isinstance(what, str) and what in AUDIT_MEANINGS:
        refusal["meaning"] = _(AUDIT_MEANINGS[what])
        refusal["todo"] = _(AUDIT_TODO)
    return refusal


async def audit_entry(request: web.Request) -> web.Response:
    """One entry of the log: its fields, its leaf hash and its inclusion proof against
    the latest verified head (checked by the library, one request), and its purpose:
    opened when it is sealed to this partner, else said to be sealed."""
    from schakel.cli.commands.output import plain

    network = path_id(request, "network")
    raw = request.match_info["index"]
    if not INDEX.fullmatch(raw):
        raise web.HTTPNotFound()
    index = int(raw)
    partner = unlocked(request)
    held = request.app[HELD]
    purpose: str | None = None
    try:
        async with held.lock:
            proof = plain(await partner.audit.proof(network, index))
            entry = proof.get("entry") if proof else None
            if entry and entry.get("purpose"):
                purpose = partner.audit.purpose(network, entry)
    except ServerMisbehaviour as error:
        return page(request, "audit_entry.html", http_status=409, network=network, index=index,
                    proof=None, entry=None, purpose=None, failed=failure(error), refusal=None)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    if proof is None:
        return page(request, "refused.html", http_status=404, network=network, refusal={
            "what": _("refused: entry {index} is not in the signed log, or not one you may "
                      "read").format(index=index),
            "why": _("reason: members read the entries about themselves; the coördinator "
                     "and auditors read every entry."),
            "todo": _("Verify the audit log and open an entry from its list."), "spans": []})
    return page(request, "audit_entry.html", network=network, index=index, proof=proof,
                entry=entry, purpose=purpose, failed=None, refusal=None)


async def report_of(request: web.Request) -> web.StreamResponse:
    """The audit screen's form: the access report of the case it names."""
    network = path_id(request, "network")
    unlocked(request)
    case = request.query.get("case", "").strip()
    if not ID.fullmatch(case):
        return page(request, "refused.html", http_status=422, network=network, refusal={
            "what": _("refused: that is not a case id"),
            "why": None, "spans": [],
            "todo": _("Copy the case id from the case list or from an entry of the audit "
                      "log.")})
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}/report")


async def access_report(request: web.Request) -> web.Response:
    """A case's subject access report (inzageverzoek; coördinator or auditor) as one
    printable page: the server's report, believed only after the library matched it
    against the verified log, the purposes sealed to this partner opened."""
    from schakel.cli.commands.output import plain
    from schakel.cli.main import REASONS
    from schakel.client.access_render import code

    network, case = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            report = plain(await partner.reports.access(network, case))
    except ProtocolError as error:
        return page(request, "refused.html", network=network, refusal=failure(error),
                    http_status=409 if isinstance(error, ServerMisbehaviour) else 403)
    lang = language() if language() in ("nl", "en") else "nl"
    for kind in ("releases", "denials", "reads", "purposes"):
        for item in report.get(kind) or []:
            item["classes_text"] = ", ".join(code(str(c), lang) for c in item.get("classes") or ())
            for name in ("basis", "action"):
                item[f"{name}_text"] = code(str(item.get(name) or ""), lang)
            reason = item.get("reason")
            item["reason_text"] = (f"{reason}: {_(REASONS[reason])}"
                                   if isinstance(reason, str) and reason in REASONS else reason)
    return page(request, "access_report.html", network=network, case=case, report=report,
                produced=plain(partner.session.now()))


async def audit_verify(request: web.Request) -> web.StreamResponse:
    """Start verifying the log from scratch in the background (one at a time per network)."""
    network = path_id(request, "network")
    unlocked(request)
    held = request.app[HELD]
    running = held.audits.get(network)
    if running is None or running.done:
        run = Verification()
        held.audits[network] = run
        run.task = asyncio.create_task(_verify(held, network, run))
    raise web.HTTPSeeOther(f"/n/{network}/audit")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/audit", audit_page)
    router.add_post("/n/{network}/audit/verify", audit_verify)
    router.add_get("/n/{network}/audit/report", report_of)
    router.add_get(r"/n/{network}/audit/{index:[0-9]+}", audit_entry)
    router.add_get("/n/{network}/cases/{case}/report", access_report)
