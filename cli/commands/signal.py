"""``schakel signal …``: signals of concern (signalen, zorgmeldingen) — send one, follow
its status, and (coordinator) read and answer them."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    json_option, partner_options, read_object_file, remember_server, with_partner,
)
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG, advise
from schakel.cli.i18n import N_, _
from schakel.cli.commands.ids import check_network_id, network_argument
from schakel.cli.commands.output import emit, plain, table
from schakel.cli.helptext import Group
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.plaintext import SEVERITIES

if TYPE_CHECKING:
    from schakel.client.partner import Partner
    from schakel.protocol.objects.card import NetworkCard

SIGNALLER_KINDS = ("resident", "volunteer", "volunteer-driver", "gp", "neighbour", "family",
                   "shell-partner", "professional", "other")
FEEDBACK_STATUSES = ("received", "taken-up", "referred", "closed", "not-taken-up")


@click.group(cls=Group)
def signal() -> None:
    """Signals of concern (signalen): send, follow, read, answer.

    A shell partner (or anyone, anonymously, when the network allows it)
    signals a worry to the coordinator; only the coordinator can read it. The
    signaller follows the status with its receipt; the coordinator answers
    with `schakel signal feedback`.
    """


@signal.command("send", epilog=GUARD_EPILOG)
@partner_options
@click.argument("network_id", metavar="[NETWORK]", required=False, callback=check_network_id)
@click.option("--concern", required=True, help="What worries you (zorg); sealed to the coordinator.")
@click.option("--urgency", type=click.Choice(SEVERITIES), default="medium", show_default=True,
              help="How urgent (urgentie).")
@click.option("--anonymous", is_flag=True,
              help="Send without signing: the server cannot tell who sent it (anoniem). Core "
                   "members must use this; shell partners may sign.")
@click.option("--network-card", "card_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Signal without a home or keys, with the network's card (a resident, a "
                   "neighbour, a volunteer driver): needs --anonymous and --ticket-file; the "
                   "card names the network and the server.")
@click.option("--fingerprint", "card_fingerprint", metavar="DIGITS",
              help="With --network-card: the coordinator's fingerprint from the network's "
                   "leaflet or website; a card not signed by that coordinator is refused "
                   "(exit 4).")
@click.option("--signaller-kind", type=click.Choice(SIGNALLER_KINDS),
              help="Who signals [default: shell-partner; other when anonymous; resident with "
                   "a card].")
@click.option("--no-contact-back", "contact_back", flag_value=False, default=True,
              help="The coordinator should not contact the signaller.")
@click.option("--identity-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON file with who it is about, by class ({\"name\": {...}, \"address\": "
                   "{...}}); sealed to the coordinator only.")
@click.option("--ticket-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the ticket (receipt token, secret) to this file (mode 0600); it "
                   "is kept in this home anyway (with --network-card only in this file).")
@json_option
def send(home: Path, server: str | None, network_id: str | None, concern: str, urgency: str,
         anonymous: bool, card_file: Path | None, card_fingerprint: str | None,
         signaller_kind: str | None, contact_back: bool, identity_file: Path | None,
         ticket_file: Path | None, as_json: bool) -> None:
    """Send a signal of concern to the network's coordinator.

    Prints the signal id; follow it with `schakel signal status SIGNAL`, or with
    `schakel signal status --ticket-file FILE --network-card CARD` when you sent
    it with a card.

    The concern is sealed to the coordinator only, who may read who it is about, so
    it is sent as written. What the PII guard would find in it (see `schakel case
    create --help`) is noted on standard error, and under "pii_findings" with --json:
    who the signal is about belongs in --identity-file, and whoever writes it into a
    case's anonymous layer later is checked then.
    """
    if card_file is not None:
        if not anonymous or ticket_file is None or network_id is not None:
            raise click.UsageError("with --network-card give --anonymous and --ticket-file, "
                                   "and no NETWORK: the card names the network")
    elif network_id is None:
        raise click.UsageError("give the NETWORK (or --anonymous --network-card FILE)")
    elif card_fingerprint is not None:
        raise click.UsageError("--fingerprint goes with --network-card")
    hint = read_object_file(identity_file, "identity") if identity_file else None
    if ticket_file is not None and ticket_file.exists():
        raise MalformedError(f"{ticket_file} already exists; choose another --ticket-file")
    noted, lines = advise({"concern": concern}, with_text=not as_json)
    if lines:
        click.echo("schakel: " + _(
            "note: the concern holds what the PII guard reads as identifying data; it goes "
            "sealed to the coördinator only, so it is sent as written"), err=True)
        for line in [*lines, "  " + _("who it is about may go in --identity-file instead")]:
            click.echo(line, err=True)

    if card_file is not None:
        card = _card(card_file, card_fingerprint)
        remember_server(card.server.origin)
        from schakel.client.card import anonymous_signal

        ticket = asyncio.run(anonymous_signal(
            card, concern, urgency=urgency, signaller_kind=signaller_kind or "resident",
            contact_back=contact_back, identity_hint=hint))
        network_id, kept = card.network, f"only in {ticket_file}: keep it private"
    else:
        async def post(partner: "Partner") -> Any:
            return await partner.signals.send(network_id or "", concern, urgency=urgency,
                                              anonymous=anonymous, signaller_kind=signaller_kind,
                                              contact_back=contact_back, identity_hint=hint)

        ticket = with_partner(home, server, post)
        kept = f"kept in {home}" + (f" and {ticket_file}" if ticket_file else "")
    if ticket_file is not None:
        _write_private(ticket_file, ticket.to_file())
    follow = (f"`schakel signal status --ticket-file {ticket_file} --network-card {card_file}`"
              if card_file is not None else f"`schakel signal status {ticket.signal}`")
    emit({"network": network_id, "signal": ticket.signal, "anonymous": anonymous,
          "sent": ticket.sent, "ticket_file": str(ticket_file) if ticket_file else None,
          "pii_findings": noted},
         as_json=as_json, rows=[
        (N_("signal"), ticket.signal), (N_("network"), network_id),
        (N_("sent"), f"{ticket.sent} ({'anonymously' if anonymous else 'signed'})"),
        (N_("ticket"), kept), (N_("next"), follow),
    ])


def _card(path: Path, fingerprint: str | None) -> "NetworkCard":
    """The network card in ``path``, verified as a signaller can (and under the
    coordinator's fingerprint when given)."""
    from schakel.client.card import read_card

    return read_card(read_object_file(path, "network card"), fingerprint=fingerprint)


def _write_private(path: Path, value: dict[str, Any]) -> None:
    """The ticket holds a bearer token: written with mode 0600, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2)
        out.write("\n")


def _ticket_in_home(partner: "Partner", wanted: str) -> Any:
    """The ticket this home kept for a signal id (or a receipt token)."""
    from schakel.client.views import SignalTicket

    for _kind, doc in partner.session.state.docs("ticket"):
        if wanted in (doc.get("signal"), doc.get("receipt")):
            return SignalTicket.from_file(doc)
    raise MalformedError(f"this home sent no signal {wanted!r}; give the signal id that "
                         "`schakel signal send` printed, or --ticket-file")


@signal.command("status")
@partner_options
@click.argument("wanted", metavar="[SIGNAL]", required=False)
@click.option("--ticket-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The ticket file written by `schakel signal send --ticket-file`.")
@click.option("--network-card", "card_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --ticket-file, without a home: the network card the signal was sent "
                   "with; the feedback must be signed by its coordinator.")
@json_option
def status(home: Path, server: str | None, wanted: str | None, ticket_file: Path | None,
           card_file: Path | None, as_json: bool) -> None:
    """Follow a signal you sent: its status and the coordinator's messages.

    Give the signal id (or receipt) this home sent, or --ticket-file (and
    --network-card for a signal sent with a card).
    Statuses: received, taken-up (opgepakt), referred (doorverwezen), closed,
    not-taken-up. JSON: {"network", "signal", "status", "updated", "messages"}.
    """
    if (wanted is None) == (ticket_file is None):
        raise click.UsageError("give the SIGNAL id or --ticket-file (one of the two)")
    if card_file is not None and ticket_file is None:
        raise click.UsageError("--network-card goes with --ticket-file")

    from schakel.client.views import SignalTicket

    if card_file is not None and ticket_file is not None:
        card = _card(card_file, None)
        remember_server(card.server.origin)
        from schakel.client.card import anonymous_status

        ticket = SignalTicket.from_file(read_object_file(ticket_file, "signal ticket"))
        result = plain(asyncio.run(anonymous_status(ticket, card)))
    else:
        async def look(partner: "Partner") -> dict[str, Any]:
            if ticket_file is not None:
                ticket = SignalTicket.from_file(read_object_file(ticket_file, "signal ticket"))
            else:
                ticket = _ticket_in_home(partner, wanted or "")
            return plain(await partner.signals.status(ticket))

        result = with_partner(home, server, look)
    if as_json:
        emit(result, as_json=True)
        return
    emit({}, as_json=False, rows=[
        (N_("signal"), result.get("signal") or "-"), (N_("status"), result["status"]),
        (N_("updated"), result["updated"]),
        *[("message" if i == 0 else "", m) for i, m in enumerate(result.get("messages") or [])],
    ])


@signal.command("list")
@partner_options
@network_argument
@json_option
def list_signals(home: Path, server: str | None, network_id: str, as_json: bool) -> None:
    """The coordinator's intake: every signal of the network, opened and checked.

    `may concern` lists cases with the same person (duplicate hints), to be
    confirmed through consent or bemoeizorg before anyone acts on it.
    JSON: {"network", "signals": [{"signal", "source", "received", "status",
    "content", "sender", "hints"}]}.
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        return plain(await partner.signals.received(network_id))

    signals = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "signals": signals}, as_json=True)
        return
    rows = [{**s, "urgency": s["content"].get("urgency"),
             "kind": s["content"].get("signaller_kind"), "concern": s["content"].get("concern"),
             "identity": sorted(s["content"].get("identity") or {}),
             "from": s.get("sender") or s["source"]} for s in signals]
    table(rows, [("signal", N_("signal")), ("received", N_("received")), ("from", N_("from")),
                 ("kind", N_("signaller")), ("urgency", N_("urgency")), ("status", N_("status")),
                 ("concern", N_("concern")), ("identity", N_("identity")), ("hints", N_("may concern"))],
          empty=_("no signals"), limits={"concern": 60})


@signal.command("feedback")
@partner_options
@network_argument
@click.argument("signal_id", metavar="SIGNAL")
@click.option("--status", "new_status", type=click.Choice(FEEDBACK_STATUSES), required=True,
              help="taken-up (opgepakt), referred (doorverwezen), closed, not-taken-up or received.")
@click.option("--message", help="A message for the signaller, sealed to its reply key.")
@json_option
def feedback(home: Path, server: str | None, network_id: str, signal_id: str, new_status: str,
             message: str | None, as_json: bool) -> None:
    """Answer a signal (coordinator): a signed status and an optional message."""
    async def answer(partner: "Partner") -> None:
        await partner.signals.feedback(network_id, signal_id, new_status, message)

    with_partner(home, server, answer)
    emit({"network": network_id, "signal": signal_id, "status": new_status,
          "message_sent": message is not None}, as_json=as_json, rows=[
        (N_("signal"), signal_id), (N_("status"), new_status),
        (N_("message"), "sealed to the signaller" if message else "-"),
    ])
