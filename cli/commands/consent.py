"""``schakel consent …``: record and revoke a person's consent (toestemming)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import emit
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_

if TYPE_CHECKING:
    from schakel.client.partner import Partner

#: The evidence is a signed form or a recording; it stays on this computer.
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024


@click.group(cls=Group)
def consent() -> None:
    """A person's consent (toestemming) to release identity: record, revoke.

    Consent names the disclosure classes (name, address, contact, official,
    care), who may receive them (named partners or whole party types), the
    purpose and how long it is valid. It is the basis for `schakel grant`.
    """


@consent.command("record", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--class", "classes", multiple=True, required=True, metavar="CLASS",
              help="A disclosure class the person agreed to, repeatable: name, address, contact, "
                   "official (BSN, date of birth), care.")
@click.option("--partner", "partners", multiple=True, metavar="KEY_ID",
              help="A partner that may receive it, by key id (repeatable).")
@click.option("--party", "parties", multiple=True, type=click.Choice(["formal", "informal"]),
              help="A whole party type that may receive it (repeatable).")
@click.option("--purpose", required=True, help='What for (doel), e.g. "bezoek door vrijwilliger".')
@click.option("--evidence-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The signed consent form (scan, PDF). Only its SHA-256 goes into "
                                  "the consent; the file stays on this computer: keep it.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How long the consent is valid.")
@json_option
def record(home: Path, server: str | None, network_id: str, case_id: str, classes: tuple[str, ...],
           partners: tuple[str, ...], parties: tuple[str, ...], purpose: str, evidence_file: Path,
           days: int, as_json: bool) -> None:
    """Record the person's consent for a case (the case's owner or the coordinator).

    Give at least one --partner or --party. The consent is signed by your
    organisation and written to the audit log.
    """
    if not partners and not parties:
        raise click.UsageError("name who may receive the identity: --partner KEY_ID or --party TYPE")
    if evidence_file.stat().st_size > MAX_EVIDENCE_BYTES:
        raise click.UsageError(f"{evidence_file} is larger than 64 MiB; is it the consent form?")
    evidence = evidence_file.read_bytes()
    digest = hashlib.sha256(evidence).hexdigest()

    async def write(partner: "Partner") -> str:
        await partner.sync(network_id)
        return await partner.disclosure.record_consent(network_id, case_id, classes=list(classes),
                                            partners=list(partners), parties=list(parties),
                                            purpose=purpose, valid_days=days, evidence=evidence)

    consent_id = with_partner(home, server, write, guard={"purpose": purpose})
    emit({"network": network_id, "case": case_id, "consent": consent_id, "classes": list(classes),
          "partners": list(partners), "parties": list(parties), "days": days,
          "evidence_sha256": digest}, as_json=as_json, rows=[
        (N_("consent"), consent_id), (N_("case"), case_id), (N_("classes"), ", ".join(classes)),
        (N_("may receive"), ", ".join([*partners, *(f"all {p} parties" for p in parties)])),
        (N_("valid"), f"{days} days"), (N_("evidence"), f"{evidence_file} (sha-256 {digest}; keep the file)"),
    ])


@consent.command("revoke", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.argument("consent_id", metavar="CONSENT")
@click.option("--reason", required=True, help='Why, e.g. "person withdrew consent".')
@json_option
def revoke(home: Path, server: str | None, network_id: str, case_id: str, consent_id: str,
           reason: str, as_json: bool) -> None:
    """Revoke a consent (owner or coordinator): no new releases, and holders are told to purge (intrekken).

    Prints the purge instructions the server issued to partners that received
    identity under it.
    """
    async def withdraw(partner: "Partner") -> list[str]:
        await partner.sync(network_id)
        return list(await partner.disclosure.revoke_consent(network_id, case_id, consent_id, reason=reason))

    purges = with_partner(home, server, withdraw, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "consent": consent_id, "revoked": True,
          "purge_instructions": purges}, as_json=as_json, rows=[
        (N_("consent"), consent_id), (N_("revoked"), "yes"),
        (N_("purge instructions"), ", ".join(purges) or "none (nobody held identity under it)"),
    ])
