"""Per-user parties and on-behalf-of through the client library, against the real server
(docs/protocol.md §N.4, §A.1; ADR 0032; client/disclosure.py, client/identity.py,
client/audit.py).

Stichting WIJ Breda: one organisation, one key, paid professionals and volunteers.  Each
person opens a session of the organisation's home with its own acting user; the acting
user's party decides what the server releases and what the library shows.  Real keys, a
real server on a loopback socket (tests/client_harness.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from schakel.client import ServerRefused
from schakel.client.audit import actor_agrees
from schakel.client.partner import Partner
from schakel.protocol.errors import PolicyViolation
from schakel.protocol.objects.audit import AuditEntry
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, PASSPHRASE, make_partner, running_server, standard_network,
)

PROFESSIONAL, VOLUNTEER = "wij-beroepskracht-1", "wij-vrijwilliger-7"
BEHALF = ("Stichting Present Breda", "Zonnebloem Breda-Noord")
EVIDENCE = b"%PDF- ondertekend toestemmingsformulier"


async def join_wij(tmp_path: Path, url: str, cast: object) -> Partner:
    """WIJ: formal, professional-secrecy, one professional and one volunteer listed, on
    behalf of two volunteer organisations; its home's configured user is the professional."""
    wij = await make_partner(tmp_path, url, "wij", name="Stichting WIJ Breda",
                             acting_user=PROFESSIONAL)
    coordinator, network = cast.coordinator, cast.network        # type: ignore[attr-defined]
    wij.trust(network, coordinator.fingerprint)
    await coordinator.networks.admit(network, wij.bundle(), ring="core", party="formal",
                                     roles=("professional-secrecy",),
                                     fingerprint=wij.fingerprint, on_behalf_of=BEHALF,
                                     users={PROFESSIONAL: "formal", VOLUNTEER: "informal"})
    await wij.networks.accept_covenant(network, COVENANT)
    await wij.sync(network)
    return wij


async def granted(cast: object, case: str, grantee: str, classes: tuple[str, ...]) -> str:
    coordinator, network = cast.coordinator, cast.network        # type: ignore[attr-defined]
    await coordinator.sync(network)
    consent = await coordinator.disclosure.record_consent(
        network, case, classes=classes, partners=[grantee],
        purpose="Afstemming van hulp rond de woning.", evidence=EVIDENCE)
    return await coordinator.disclosure.grant(network, case, consent=consent, grantee=grantee,
                                              classes=classes, reason="huisbezoek plannen")


async def test_acting_users_party_decides_what_the_library_releases_and_shows(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        wij = await join_wij(tmp_path, url, cast)
        try:
            network = cast.network
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            grant = await granted(cast, case, wij.key_id, ("name", "official"))
            async with await Partner.open(wij.session.home.path, PASSPHRASE,
                                          acting_user=VOLUNTEER) as volunteer:
                await volunteer.sync(network)
                with pytest.raises(ServerRefused) as refused:
                    await volunteer.disclosure.release(network, grant)
                assert refused.value.details["reason"] == "informal-class-not-allowed"
                released = await wij.disclosure.release(network, grant)
                assert set(released.classes) == {"name", "official"}
                # The organisation's keys now hold both; its volunteer is shown the name only.
                assert set(wij.identity.get(network, case)) == {"name", "official"}
                assert volunteer.identity.get(network, case) == {"name": IDENTITY["name"]}
                assert volunteer.identity.withheld(network, case) == ["official"]
            assert (await cast.coordinator.audit.verify(network)).checked > 0
            entries = [e["entry"] for e in await cast.coordinator.audit.entries(network)
                       if e["entry"]["actor"]["partner"] == wij.key_id]
            parties = {(e["action"], e["actor"]["acting_user"], e["actor"].get("party"))
                       for e in entries}
            assert ("deny", VOLUNTEER, "informal") in parties
            assert ("release", PROFESSIONAL, "formal") in parties
            assert all(e["actor"]["on_behalf_of"] == list(BEHALF) for e in entries)
            listed = {m["key_id"]: m for m in cast.coordinator.networks.members(network)}
            assert listed[wij.key_id]["on_behalf_of"] == list(BEHALF)
            assert listed[wij.key_id]["users"] == {PROFESSIONAL: "formal",
                                                   VOLUNTEER: "informal"}
        finally:
            await wij.close()
            await cast.close()


async def test_unlisted_acting_user_is_refused_before_sending(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        wij = await join_wij(tmp_path, url, cast)
        try:
            network = cast.network
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            grant = await granted(cast, case, wij.key_id, ("name",))
            async with await Partner.open(wij.session.home.path, PASSPHRASE,
                                          acting_user="wij-onbekend-3") as stranger:
                with pytest.raises(PolicyViolation) as refused:
                    await stranger.disclosure.release(network, grant)
                assert refused.value.details["reason"] == "acting-user-not-listed"
                assert refused.value.details["early"] is True
                with pytest.raises(ServerRefused) as server_refused:
                    await stranger.sync(network)
                assert server_refused.value.status == 403
        finally:
            await wij.close()
            await cast.close()


async def test_audit_entry_stating_another_party_or_on_behalf_of_is_caught(
        tmp_path: Path) -> None:
    """The client checks every entry's actor against the verified membership: a log that
    shows the volunteer as a professional, or moves the act to other organisations, does
    not pass (``actor_agrees``, which ``audit.verify`` applies to every entry)."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        wij = await join_wij(tmp_path, url, cast)
        try:
            network = cast.network
            await cast.formal.cases.create(network, INTAKE)      # something new to read
            async with await Partner.open(wij.session.home.path, PASSPHRASE,
                                          acting_user=VOLUNTEER) as volunteer:
                await volunteer.sync(network)
            tv = await cast.coordinator.session.trusted(network)
            [read] = [e["entry"] for e in await cast.coordinator.audit.entries(network)
                      if e["entry"]["actor"]["acting_user"] == VOLUNTEER]
            entry = AuditEntry.from_json(read)
            assert entry.actor.party == "informal" and actor_agrees(tv, entry)
            for change in ({"party": "formal"}, {"on_behalf_of": ("Leger des Heils",)},
                           {"on_behalf_of": None}):
                forged = dataclasses.replace(entry, actor=dataclasses.replace(entry.actor,
                                                                              **change))
                assert not actor_agrees(tv, forged), change
        finally:
            await wij.close()
            await cast.close()
