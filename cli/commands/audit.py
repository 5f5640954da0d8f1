"""``schakel audit …``: read and verify the network's audit log (auditlog), and the
subject access report of one case (inzageverzoek)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    json_option, partner_options, progress_bar, progress_option, with_partner,
)
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import cell, emit, heading, plain, table
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_, _

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.group(cls=Group)
def audit() -> None:
    """The audit log (auditlog): every release, refusal and membership change,
    in an append-only Merkle tree signed by the server.

    Auditors and the coordinator read every entry; other members read the
    entries about themselves. Verifying proves the server neither rewrote nor
    dropped entries since this home last looked.
    """


ENTRY_COLUMNS = [("index", "#"), ("time", N_("when")), ("actor", N_("who")), ("action", N_("action")),
                 ("basis", N_("basis")), ("outcome", N_("outcome")), ("case", N_("case")),
                 ("subject", N_("subject")), ("classes", N_("classes")), ("reason", N_("reason"))]


def entry_row(item: dict[str, Any]) -> dict[str, Any]:
    """A verified entry ({"index", "entry"}) as one table row; an erased entry says so."""
    entry = item.get("entry")
    if not entry:
        return {"index": item.get("index"), "action": "(erased after retention)"}
    actor = entry.get("actor") or {}
    who = actor.get("organisation") or actor.get("partner")
    if actor.get("acting_user"):
        who = f"{who} / {actor['acting_user']}"
    return {"index": item.get("index"), "time": entry.get("time"), "actor": who,
            "action": entry.get("action"), "basis": entry.get("basis"),
            "outcome": entry.get("outcome"), "case": entry.get("case"),
            "subject": entry.get("subject"), "classes": entry.get("classes"),
            "reason": entry.get("reason")}


@audit.command("log")
@partner_options
@network_argument
@json_option
def log(home: Path, server: str | None, network_id: str, as_json: bool) -> None:
    """List the audit entries you may read, each verified against a signed head.

    JSON: {"network", "entries": [{"index", "entry"}]}.
    """
    async def read(partner: "Partner") -> list[dict[str, Any]]:
        return plain(await partner.audit.entries(network_id))

    entries = with_partner(home, server, read)
    if as_json:
        emit({"network": network_id, "entries": entries}, as_json=True)
        return
    table([entry_row(e) for e in entries], ENTRY_COLUMNS, empty=_("no entries you may read"),
          limits={"reason": 50, "actor": 40})


@audit.command("verify")
@partner_options
@network_argument
@progress_option
@json_option
def verify(home: Path, server: str | None, network_id: str, progress: bool | None,
           as_json: bool) -> None:
    """Verify the whole audit log: every readable entry's commitment, its inclusion
    in the signed tree, and consistency with the head this home held before.

    Exits 0 when everything verifies, 4 when the server rewrote, dropped or
    forked the log (recorded in this home), or when the network's policy names
    witnesses and too few of them cosigned the log recently. JSON: {"network",
    "size", "root", "checked", "erased", "head_time", "witnessed_by": [[name, time]]}.
    """
    async def check(partner: "Partner") -> dict[str, Any]:
        with progress_bar(f"verify {network_id[:8]}", progress) as bar:
            return plain(await partner.audit.verify(network_id, progress=bar))

    result = with_partner(home, server, check)
    if as_json:
        emit(result, as_json=True)
        return
    emit({}, as_json=False, rows=[
        (N_("network"), network_id), (N_("result"), "the audit log verifies"),
        (N_("size"), cell(result.get("size"))), (N_("root"), cell(result.get("root"))),
        (N_("head signed"), cell(result.get("head_time"))),
        (N_("entries checked"), cell(result.get("checked"))),
        (N_("erased (retention)"), cell(result.get("erased"))),
        *([(N_("cosigned by"), cell([f"{name} ({when})" for name, when
                                    in result["witnessed_by"]]))]
          if result.get("witnessed_by") else []),
    ])


@audit.command("report")
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@json_option
def access_report(home: Path, server: str | None, network_id: str, case_id: str,
                  as_json: bool) -> None:
    """The subject access report of a case (inzageverzoek, AVG article 15): who
    received what about the person, when, on which basis, who fetched the case's data,
    and the purpose of each act (coordinator or auditor).

    Every entry the server lists is checked against the verified audit log; a
    report that disagrees is recorded as server misbehaviour (exit 4).  Purposes are
    sealed in the log to the coordinator and the auditors; this partner's copy is opened.
    JSON: {"case", "size", "releases", "denials", "reads", "purposes", "erased", "text",
    "verified"}.
    """
    async def read(partner: "Partner") -> dict[str, Any]:
        return plain(await partner.reports.access(network_id, case_id))

    report = with_partner(home, server, read)
    if as_json:
        emit(report, as_json=True)
        return
    releases, denials = report.get("releases") or [], report.get("denials") or []
    verified = report.get("verified") or {}
    emit({}, as_json=False, rows=[
        (N_("case"), case_id), (N_("releases"), str(len(releases))), (N_("denials"), str(len(denials))),
        (N_("erased (retention)"), cell(report.get("erased"))),
        (N_("verified"), f"{cell(verified.get('entries'))} listed entries match the verified audit "
                     f"log ({cell(verified.get('log_entries'))} entries read)"),
    ])
    heading(_("releases (who received identity)"))
    table(releases, [("index", "#"), ("time", N_("when")), ("organisation", N_("organisation")),
                     ("acting_user", N_("user")), ("classes", N_("classes")), ("basis", N_("basis")),
                     ("ref", N_("grant / invocation"))], empty=_("none"))
    heading(_("denials"))
    table(denials, [("index", "#"), ("time", N_("when")), ("organisation", N_("organisation")),
                    ("action", N_("action")), ("reason", N_("reason"))], empty=_("none"))
    heading(_("reads (who fetched the case's data)"))
    table(report.get("reads") or [], [("index", "#"), ("time", N_("when")),
                                      ("organisation", N_("organisation")), ("acting_user", N_("user")),
                                      ("classes", N_("identity")), ("served", N_("served"))],
          empty=_("none"))
    heading(_("purposes (sealed to the coordinator and auditors)"))
    table(report.get("purposes") or [], [("index", "#"), ("time", N_("when")), ("action", N_("action")),
                                         ("organisation", N_("organisation")),
                                         ("purpose_text", N_("purpose"))], empty=_("none"))
    if report.get("text"):
        heading(_("text for the person"))
        click.echo(str(report["text"]).rstrip())
