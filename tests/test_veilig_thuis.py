"""A referral to Veilig Thuis as a shell partner of a Lokaal Zorgnetwerk (the report's
Rotterdam practice, §4.2; the meldcode huiselijk geweld en kindermishandeling, whose last
step is a report to Veilig Thuis).  Veilig Thuis is not a network: it is a formal shell
partner (schil) of the oggz network, and a referral to it is the network's own acts,
each audited (docs/protocol.md §D.7, §D.3, §D.4; flows 4-6):

1. the coordinator (the GGD ketenregisseur) shares the case's anonymous layer with Veilig
   Thuis, with the referral as the share's reason;
2. identity follows on a basis: the person's consent naming Veilig Thuis and a grant
   (the meldcode's preferred road: talk with the person first), or, without consent when
   the meldcode's afwegingskader finds acute or structural unsafety, the bemoeizorg
   exception on the ``domestic-violence`` ground, invoked by Veilig Thuis and co-signed by
   a second role-holder of the network (four eyes).

Real partners against the real server on a real SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schakel.client.errors import NotFound, ServerRefused
from schakel.client.partner import Partner
from tests.client_harness import (
    COVENANT, IDENTITY, admit, make_partner, network_policy, running_server, server_fingerprint,
)

INTAKE = {"kind": "intake", "age_band": "30-44", "neighbourhood": "Afrikaanderwijk",
          "domains": ["domestic-violence", "housing-pollution"], "severity": "high",
          "care_status": "avoids-care", "source": "partner", "complex": True,
          "summary": "Woning ernstig vervuild; buren melden herhaaldelijk geschreeuw en slaan."}
REFERRAL = "Verwijzing naar Veilig Thuis: vermoeden van huiselijk geweld (meldcode stap 5)."


@dataclass
class Zorgnetwerk:
    network: str
    ggd: Partner             # coordinator: the GGD ketenregisseur
    bemoeizorg: Partner      # core: the bemoeizorg team (role bemoeizorg), owns the case
    politie: Partner         # core: a second role-holder for the four eyes
    auditor: Partner         # shell: the GGD's privacy officer
    veilig_thuis: Partner    # shell: Veilig Thuis, formal, beroepsgeheim and bemoeizorg roles
    woningcorporatie: Partner  # shell: not referred to
    case: str
    other_case: str

    @property
    def partners(self) -> list[Partner]:
        return [self.ggd, self.bemoeizorg, self.politie, self.auditor, self.veilig_thuis,
                self.woningcorporatie]


@pytest.fixture
async def zorgnetwerk(tmp_path: Path) -> AsyncIterator[Zorgnetwerk]:
    async with running_server(tmp_path) as url:
        ggd = await make_partner(tmp_path, url, "ggd", name="GGD Rotterdam-Rijnmond (regie)")
        network = await ggd.networks.create(
            name="Lokaal Zorgnetwerk Huiselijk Geweld", kind="oggz", covenant=COVENANT,
            server_fingerprint=server_fingerprint(url), policy=network_policy("oggz"))
        bemoeizorg = await make_partner(tmp_path, url, "bemoeizorg", name="Bemoeizorgteam")
        politie = await make_partner(tmp_path, url, "politie", name="Politie wijkteam")
        auditor = await make_partner(tmp_path, url, "auditor", name="GGD privacy officer")
        vt = await make_partner(tmp_path, url, "veilig-thuis", name="Veilig Thuis Rotterdam")
        corporatie = await make_partner(tmp_path, url, "corporatie", name="Woningcorporatie")
        await admit(ggd, network, bemoeizorg, ring="core", party="formal",
                    roles=("bemoeizorg", "professional-secrecy"))
        await admit(ggd, network, politie, ring="core", party="formal", roles=("bemoeizorg",))
        await admit(ggd, network, auditor, ring="shell", party="formal", roles=("auditor",))
        await admit(ggd, network, vt, ring="shell", party="formal",
                    roles=("bemoeizorg", "professional-secrecy"))
        await admit(ggd, network, corporatie, ring="shell", party="formal")
        for p in (bemoeizorg, politie, auditor, vt, corporatie):
            await p.sync(network)
        case = await bemoeizorg.cases.create(network, INTAKE, identity=IDENTITY)
        other = await bemoeizorg.cases.create(network, INTAKE, identity=IDENTITY)
        world = Zorgnetwerk(network, ggd, bemoeizorg, politie, auditor, vt, corporatie, case,
                            other)
        for p in world.partners:
            await p.sync(network)
        try:
            yield world
        finally:
            for p in world.partners:
                await p.close()


async def refer(z: Zorgnetwerk) -> None:
    """Step 1: the ketenregisseur shares the case with Veilig Thuis; Veilig Thuis syncs."""
    await z.ggd.cases.share(z.network, z.case, z.veilig_thuis.key_id, reason=REFERRAL)
    await z.veilig_thuis.sync(z.network)


async def test_veilig_thuis_reads_the_referred_case_and_nothing_else(zorgnetwerk: Zorgnetwerk) -> None:
    z = zorgnetwerk
    with pytest.raises(NotFound):                                # before the referral
        z.veilig_thuis.cases.get(z.network, z.case)
    await refer(z)
    view = z.veilig_thuis.cases.get(z.network, z.case)
    assert view.readable and "domestic-violence" in view.state["domains"]
    assert [c.case for c in z.veilig_thuis.cases.all(z.network)] == [z.case]
    await z.woningcorporatie.sync(z.network)                     # another shell partner
    assert z.woningcorporatie.cases.all(z.network) == []
    entries = [e["entry"] for e in await z.ggd.audit.entries(z.network) if e.get("entry")]
    shares = [e for e in entries if e["action"] == "share" and e.get("case") == z.case]
    assert [e["subject"] for e in shares] == [z.veilig_thuis.key_id]


async def test_veilig_thuis_gets_identity_under_the_persons_consent(zorgnetwerk: Zorgnetwerk) -> None:
    z = zorgnetwerk
    await refer(z)
    consent = await z.ggd.disclosure.record_consent(
        z.network, z.case, classes=("name", "address", "official"),
        partners=(z.veilig_thuis.key_id,), purpose="Melding bij Veilig Thuis (meldcode).",
        evidence=b"getekend toestemmingsformulier")
    grant = await z.ggd.disclosure.grant(z.network, z.case, consent=consent,
                                         grantee=z.veilig_thuis.key_id,
                                         classes=("name", "address", "official"),
                                         reason="verwijzing Veilig Thuis")
    released = await z.veilig_thuis.disclosure.release(z.network, grant)
    assert released.case == z.case
    assert released.classes["name"] == IDENTITY["name"]
    assert released.classes["official"] == IDENTITY["official"]


async def test_veilig_thuis_without_consent_needs_the_domestic_violence_ground_and_four_eyes(
        zorgnetwerk: Zorgnetwerk) -> None:
    """The meldcode lets a professional report acute or structural unsafety without
    consent: in the network that is the bemoeizorg exception on the domestic-violence
    ground, by Veilig Thuis, co-signed by a second person with the role, flagged for
    review."""
    z = zorgnetwerk
    await refer(z)
    invocation = await z.veilig_thuis.disclosure.invoke_bemoeizorg(
        z.network, z.case, ground="domestic-violence", classes=("name", "address"),
        justification="Acute onveiligheid: buren melden geweld, geen contact met bewoner.")
    with pytest.raises(ServerRefused) as early:                  # four eyes first
        await z.veilig_thuis.disclosure.bemoeizorg_release(z.network, invocation)
    assert early.value.details.get("reason") == "bemoeizorg-four-eyes-required"
    await z.politie.disclosure.cosign(z.network, invocation, case=z.case)
    released = await z.veilig_thuis.disclosure.bemoeizorg_release(z.network, invocation)
    assert released.classes["address"] == IDENTITY["address"]
    entries = [e["entry"] for e in await z.auditor.audit.entries(z.network) if e.get("entry")]
    invoked = [e for e in entries if e["action"] == "bemoeizorg-invoke"]
    assert invoked and invoked[0]["review_required"] and invoked[0]["emergency"]
    assert invoked[0]["actor"]["partner"] == z.veilig_thuis.key_id


async def test_veilig_thuis_cannot_use_bemoeizorg_on_a_case_not_referred_to_it(
        zorgnetwerk: Zorgnetwerk) -> None:
    """R3: a shell partner receives identity only of a case shared with it, whatever the
    basis: the invocation itself is refused, and the refusal is audited."""
    z = zorgnetwerk
    await refer(z)
    with pytest.raises(ServerRefused) as refused:
        await z.veilig_thuis.disclosure.invoke_bemoeizorg(
            z.network, z.other_case, ground="domestic-violence", classes=("name",),
            justification="Acute onveiligheid bij een andere bewoner.")
    assert refused.value.details.get("reason") == "shell-without-share"
    entries = [e["entry"] for e in await z.auditor.audit.entries(z.network) if e.get("entry")]
    assert any(e["outcome"] == "deny" and e.get("case") == z.other_case
               and e["reason"] == "shell-without-share" for e in entries)
