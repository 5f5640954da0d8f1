"""``schakel bemoeizorg …`` and ``schakel review``: emergency access to identity in an
OGGZ network without consent, under four-eyes and auditor review."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.grant import receive_release
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import emit, table
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import MalformedError

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.group(cls=Group)
def bemoeizorg() -> None:
    """Bemoeizorg (outreach care without consent, OGGZ networks only).

    A professional with the bemoeizorg role invokes it on a case with a ground
    and a justification; a second person with the role co-signs (four-eyes);
    the invoker then receives the identity for a limited time. Auditors review
    every invocation (`schakel review`).
    """


@bemoeizorg.command("invoke")
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--ground", required=True,
              help="A ground from the network policy's list; the defaults: "
                   "severe-self-neglect (ernstige zelfverwaarlozing), housing-pollution "
                   "(woningvervuiling), danger-to-self (gevaar voor zichzelf), "
                   "danger-to-others (gevaar voor anderen), nuisance (overlast), "
                   "domestic-violence (huiselijk geweld) and child-abuse "
                   "(kindermishandeling), the last two as the meldcode frames them "
                   "(`schakel network show` lists the network's own).")
@click.option("--justification", required=True,
              help="Why there is no other way; sealed to the auditors, who read it at review.")
@click.option("--class", "classes", multiple=True, metavar="CLASS",
              help="A class to receive, repeatable [default: what the policy allows].")
@json_option
def invoke(home: Path, server: str | None, network_id: str, case_id: str, ground: str,
           justification: str, classes: tuple[str, ...], as_json: bool) -> None:
    """Invoke bemoeizorg on a case (professional with the bemoeizorg role).

    Refused (exit 1, with the reason) outside an OGGZ network, without the
    role, with a ground not in the policy, or above the daily limit.
    JSON: {"network", "case", "invocation", "ground", "classes"}: the classes the
    invocation asks, which its release gives.
    """
    async def ask(partner: "Partner") -> tuple[str, list[str]]:
        await partner.sync(network_id)
        invocation = await partner.disclosure.invoke_bemoeizorg(
            network_id, case_id, ground=ground, justification=justification,
            classes=list(classes) or None)
        made = await partner.disclosure.invocation(network_id, invocation)
        return invocation, list(made.classes) if made is not None else sorted(classes)

    invocation, asked = with_partner(home, server, ask)
    emit({"network": network_id, "case": case_id, "invocation": invocation, "ground": ground,
          "classes": asked}, as_json=as_json, rows=[
        (N_("invocation"), invocation), (N_("case"), case_id), (N_("ground"), ground),
        (N_("classes"), ", ".join(asked)),
        (N_("next"), f"a colleague with the bemoeizorg role runs `schakel bemoeizorg cosign "
                 f"{network_id} {invocation} --case {case_id}`; then `schakel bemoeizorg "
                 f"release {network_id} {invocation}`"),
    ])


@bemoeizorg.command("cosign")
@partner_options
@network_argument
@click.argument("invocation", metavar="INVOCATION")
@click.option("--case", "case_id", metavar="CASE",
              help="The case of the invocation; needed only when your organisation cannot "
                   "read the invocation itself (a co-signer from another organisation).")
@json_option
def cosign(home: Path, server: str | None, network_id: str, invocation: str, case_id: str | None,
           as_json: bool) -> None:
    """Co-sign a colleague's invocation (four-eyes, vier ogen): a different person
    holding the bemoeizorg role.

    The case is looked up when your organisation may read the invocation (the
    coordinator, an auditor, the invoker's own organisation); a co-signer of
    another organisation gives it with --case (the invoker's `bemoeizorg invoke`
    printed it).
    """
    async def sign(partner: "Partner") -> None:
        await partner.sync(network_id)
        try:
            await partner.disclosure.cosign(network_id, invocation, case=case_id)
        except MalformedError as error:
            if case_id is None and (error.details or {}).get("field") == "case":
                raise click.UsageError(
                    f"your organisation cannot look up the case of invocation {invocation} "
                    "(only the coordinator, auditors and the invoker read an invocation): "
                    "add --case CASE, the case the invoker named (their `schakel bemoeizorg "
                    "invoke` printed it)") from None
            raise

    with_partner(home, server, sign)
    emit({"network": network_id, "invocation": invocation, "cosigned": True}, as_json=as_json,
         rows=[(N_("invocation"), invocation), (N_("co-signed"), "yes"),
               (N_("next"), f"the invoker runs `schakel bemoeizorg release {network_id} {invocation}`")])


@bemoeizorg.command("justification")
@partner_options
@network_argument
@click.argument("invocation", metavar="INVOCATION")
@json_option
def justification(home: Path, server: str | None, network_id: str, invocation: str,
                  as_json: bool) -> None:
    """Read an invocation's justification (auditor), before `schakel review`.

    The justification is sealed to each auditor's key; nobody else, not even
    the server, can read it.
    """
    async def read(partner: "Partner") -> str:
        return await partner.disclosure.justification(network_id, invocation)

    text = with_partner(home, server, read)
    if as_json:
        emit({"network": network_id, "invocation": invocation, "justification": text},
             as_json=True)
        return
    click.echo(text)


@bemoeizorg.command("release")
@partner_options
@network_argument
@click.argument("invocation", metavar="INVOCATION")
@json_option
def release(home: Path, server: str | None, network_id: str, invocation: str, as_json: bool) -> None:
    """Receive the identity your invocation releases, and print it (the invoker).

    The access expires after the policy's hours; the identity is then purged
    from this home by `schakel duties` (or the next sync).
    JSON: {"network", "case", "classes": {class: fields}, "receipt_index"}.
    """
    receive_release(home, server, network_id,
                    lambda partner: partner.disclosure.bemoeizorg_release(network_id, invocation),
                    as_json=as_json)


INVOCATION_COLUMNS = [("invocation", N_("invocation")), ("case", N_("case")), ("invoker", N_("invoker")),
                      ("ground", N_("ground")), ("classes", N_("classes")), ("invoked", N_("invoked")),
                      ("status", N_("status")), ("cosigners", N_("co-signed by")),
                      ("reviews", N_("reviews"))]


@bemoeizorg.command("list")
@partner_options
@network_argument
@json_option
def list_invocations(home: Path, server: str | None, network_id: str, as_json: bool) -> None:
    """List bemoeizorg invocations with their ids and state, from the verified audit log.

    The coordinator and auditors see every invocation (an auditor takes the
    INVOCATION id for `bemoeizorg justification` and `review` from here); an
    invoker sees its own, a co-signer its co-signs. Status: waiting-for-cosign,
    cosigned, released, reviewed, or refused (with the reason).
    JSON: {"network", "invocations": [{"invocation", "case", "invoker",
    "invoker_name", "ground", "classes", "invoked", "status", "cosigners",
    "released", "reviews", "refusal"}]}.
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        return [i.to_json() for i in await partner.disclosure.invocations(network_id)]

    invocations = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "invocations": invocations}, as_json=True)
        return
    rows = [{**i, "invoker": i.get("invoker_name") or i.get("invoker"),
             "status": i["status"] + (f" ({i['refusal']})" if i.get("refusal") else "")}
            for i in invocations]
    table(rows, INVOCATION_COLUMNS, empty=_("no bemoeizorg invocations you may see in this network"),
          limits={"invoker": 24})
