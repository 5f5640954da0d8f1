"""Disclosure through the client library, end to end against the real server (flows 4,
5 and 7; docs/protocol.md §D, §7, §15.2, §15.5; client/disclosure.py, client/referral.py).

Each test is one rule, named after it.  Real keys and a real server on a loopback socket
(tests/client_harness.py); every partner only knows what it synced and verified.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.client import ServerMisbehaviour, ServerRefused
from schakel.client.wire import new_id
from schakel.client.partner import Partner
from schakel.protocol.errors import PolicyViolation
from schakel.server.config import Limits
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, network_policy, running_server, server_fingerprint,
    standard_network,
)
from tests.disclosure_harness import JUSTIFICATION

EVIDENCE = b"%PDF- ondertekend toestemmingsformulier"
NAME_ADDRESS = {"name": IDENTITY["name"], "address": IDENTITY["address"]}


async def consented_grant(cast: Any, case: str, grantee: Partner,
                          classes: tuple[str, ...] = ("address", "name")) -> tuple[str, str]:
    """The coordinator records the person's consent for ``grantee`` and grants it."""
    coordinator, network = cast.coordinator, cast.network
    await coordinator.sync(network)
    consent = await coordinator.disclosure.record_consent(
        network, case, classes=classes, partners=[grantee.key_id],
        purpose="Afstemming van hulp rond de woning.", evidence=EVIDENCE)
    grant = await coordinator.disclosure.grant(network, case, consent=consent, grantee=grantee.key_id,
                                    classes=classes, reason="huisbezoek plannen")
    return consent, grant


async def entries_by_index(partner: Partner, network: str) -> dict[int, dict[str, Any]]:
    return {e["index"]: e["entry"] for e in await partner.audit.entries(network)}


async def test_consent_grant_release_gives_the_grantee_the_identity_and_is_audited(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, grantee = cast.network, cast.informal
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            assert grantee.identity.get(network, case) == {}
            consent, grant = await consented_grant(cast, case, grantee)

            await grantee.sync(network)
            released = await grantee.disclosure.release(network, grant)
            assert (released.network, released.case) == (network, case)
            assert released.classes == NAME_ADDRESS
            assert grantee.identity.get(network, case) == NAME_ADDRESS
            assert grantee.session.state.get_doc("pending-release", (network, grant)) is None

            for reader in (cast.coordinator, grantee):     # the grantee reads its own entry
                entry = (await entries_by_index(reader, network))[released.receipt_index]
                assert (entry["action"], entry["outcome"], entry["basis"]) == (
                    "release", "allow", "consent")
                assert (entry["case"], entry["ref"]) == (case, grant)
                assert entry["actor"]["partner"] == grantee.key_id
                assert sorted(entry["classes"]) == ["address", "name"]
            actions = [e["action"] for e in (await entries_by_index(cast.coordinator,
                                                                    network)).values()]
            assert {"consent", "grant", "release"} <= set(actions)
            assert (await cast.coordinator.audit.verify(network)).checked >= len(actions)
        finally:
            await cast.close()


async def test_grant_refused_early_for_an_informal_party_asking_official(tmp_path: Path) -> None:
    """R6: informal parties receive at most the informal classes, whatever the consent
    says.  The coordinator's client refuses before sending, with the policy's
    explanation; the server never saw the grant, so the log holds no denial for it."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, coordinator = cast.network, cast.coordinator
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            await coordinator.sync(network)
            consent = await coordinator.disclosure.record_consent(
                network, case, classes=["name", "official"], parties=["informal"],
                purpose="Aanvraag bij de gemeente.", evidence=EVIDENCE)
            size = (await coordinator.audit.verify(network)).size

            judged = await coordinator.disclosure.judge_grant(
                network, case, consent=consent, grantee=cast.informal.key_id,
                classes=["name", "official"])
            assert (judged.allowed, judged.reason) == (False, "informal-class-not-allowed")
            with pytest.raises(PolicyViolation) as refused:
                await coordinator.disclosure.grant(network, case, consent=consent,
                                        grantee=cast.informal.key_id,
                                        classes=["name", "official"], reason="aanvraag")
            assert refused.value.details["reason"] == judged.reason
            assert refused.value.message == f"refused before sending: {judged.message}"
            assert refused.value.details["early"] is True
            assert "informal parties may receive at most" in refused.value.message
            assert "official" in refused.value.message

            after = await entries_by_index(coordinator, network)
            assert (await coordinator.audit.verify(network)).size == size
            assert not [e for e in after.values() if e["action"] in ("deny", "grant")]
            # The allowed part of the same request goes through.
            assert (await coordinator.disclosure.judge_grant(
                network, case, consent=consent, grantee=cast.informal.key_id,
                classes=["name"])).allowed
            await coordinator.disclosure.grant(network, case, consent=consent, grantee=cast.informal.key_id,
                                    classes=["name"], reason="aanvraag")
        finally:
            await cast.close()


async def test_revoked_consent_purge_instruction_is_executed_and_acknowledged_by_the_duty(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, grantee, coordinator = cast.network, cast.informal, cast.coordinator
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            consent, grant = await consented_grant(cast, case, grantee)
            await grantee.sync(network)
            await grantee.disclosure.release(network, grant)
            assert grantee.session.state.secret_refs("class-key", (network, case))

            instructions = await coordinator.disclosure.revoke_consent(network, case, consent,
                                                            reason="de persoon trekt in")
            assert len(instructions) == 1
            report = await grantee.duties(network)
            assert report.purged == instructions
            assert grantee.identity.get(network, case) == {}
            assert grantee.session.state.secret_refs("class-key", (network, case)) == []
            # The owner keeps its own identity: a purge concerns released copies.
            assert cast.formal.identity.get(network, case)["name"] == IDENTITY["name"]

            entries = await entries_by_index(coordinator, network)
            acks = [e for e in entries.values() if e["action"] == "purge-ack"]
            assert [(a["ref"], a["actor"]["partner"], a["case"]) for a in acks] == [
                (instructions[0], grantee.key_id, case)]
            # Executed once: the next run has nothing left to do.
            assert (await grantee.duties(network)).purged == []
            # And a release under the revoked consent is refused by the server.
            with pytest.raises(Exception) as denied:
                await grantee.disclosure.release(network, grant)
            assert getattr(denied.value, "code", None) == "policy_violation"
            assert grantee.identity.get(network, case) == {}
        finally:
            await cast.close()


async def test_bemoeizorg_invoke_cosign_release_review_in_an_oggz_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url, kind="oggz")
        try:
            network = cast.network
            arts = await cast.join(tmp_path, url, "ggd-arts", roles=("bemoeizorg",))
            vpk = await cast.join(tmp_path, url, "ggd-vpk", roles=("bemoeizorg",))
            await cast.formal.sync(network)
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            await arts.sync(network)

            with pytest.raises(PolicyViolation) as bad_ground:
                await arts.disclosure.invoke_bemoeizorg(network, case, ground="curiosity",
                                             justification=JUSTIFICATION)
            assert bad_ground.value.details["reason"] == "bemoeizorg-ground-invalid"

            invocation = await arts.disclosure.invoke_bemoeizorg(network, case, ground="severe-self-neglect",
                                                      justification=JUSTIFICATION,
                                                      classes=["name", "address"])
            with pytest.raises(PolicyViolation) as alone:
                await arts.disclosure.cosign(network, invocation)
            assert alone.value.details["reason"] == "bemoeizorg-same-person-cosign"
            await vpk.disclosure.cosign(network, invocation, case=case)   # may not read the invocation

            released = await arts.disclosure.bemoeizorg_release(network, invocation)
            assert released.classes == NAME_ADDRESS and arts.identity.get(network, case) == NAME_ADDRESS

            assert await cast.auditor.disclosure.justification(network, invocation) == JUSTIFICATION
            await cast.auditor.disclosure.review(network, invocation, approved=True,
                                      note="Grond en onderbouwing voldoende.")

            entries = await entries_by_index(cast.coordinator, network)
            by_action = {e["action"]: e for e in entries.values() if e.get("ref") == invocation
                         or e["action"] == "review"}
            assert {"bemoeizorg-invoke", "bemoeizorg-cosign", "bemoeizorg-release",
                    "review"} <= set(by_action)
            rel = entries[released.receipt_index]
            assert (rel["action"], rel["emergency"], rel["review_required"]) == (
                "bemoeizorg-release", True, True)
            assert by_action["review"]["reason"] == "review-approved"

            # Access ends access_hours after the invocation: the duty destroys the
            # released identity by the client's own clock, before any instruction.
            later = arts.session.now() + timedelta(hours=73)
            monkeypatch.setattr(arts.session, "clock", lambda: later)
            report = await arts.duties(network)
            assert report.expired == [invocation]
            assert arts.identity.get(network, case) == {}
            assert arts.session.state.secret_refs("class-key", (network, case)) == []
        finally:
            await cast.close()


async def test_release_without_receipt_raises_receipt_missing_and_stores_nothing(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, grantee = cast.network, cast.informal
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            _, grant = await consented_grant(cast, case, grantee)
            await grantee.sync(network)
            path, body = f"/v1/networks/{network}/releases", {"grant": grant,
                                                              "release": new_id()}
            answer = await grantee.session.conn.post(path, body)
            assert answer["receipt"] and answer["envelopes"]
            stripped = {k: v for k, v in answer.items() if k != "receipt"}

            with pytest.raises(ServerMisbehaviour) as caught:
                await grantee.disclosure._accept_release(network, stripped, action="release", ref=grant,
                                              release_id=body["release"])
            assert caught.value.what == "receipt-missing"
            assert grantee.identity.get(network, case) == {}
            assert grantee.session.state.secret_refs("class-key", (network, case)) == []
            assert grantee.session.state.docs("release", (network,)) == []
            assert [m["what"] for m in grantee.misbehaviours()] == ["receipt-missing"]

            # The same release retried under its id comes back with the same envelopes
            # and the receipt of its own (re-delivery) entry: believed.
            again = await grantee.session.conn.post(path, body)
            released = await grantee.disclosure._accept_release(network, again, action="release",
                                                     ref=grant, release_id=body["release"])
            assert released.classes == NAME_ADDRESS
            assert released.receipt_index > answer["receipt"]["index"]
            redelivery = (await entries_by_index(grantee, network))[released.receipt_index]
            assert redelivery["reason"].endswith(
                f"re-delivery of entry {answer['receipt']['index']}")
        finally:
            await cast.close()


async def test_referral_creates_the_receiving_case(tmp_path: Path) -> None:
    """The coordinator of a neighbourhood network, also coordinator (so core member) of
    an oggz network, refers a case: the oggz network gets a new case with the folded
    anonymous state and a summary note, no identity; both logs record the referral."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, coordinator, owner = cast.network, cast.coordinator, cast.formal
            oggz = await coordinator.networks.create(name="OGGZ-netwerk Eemland", kind="oggz",
                                                    covenant=COVENANT,
                                                    server_fingerprint=server_fingerprint(url),
                                                    policy=network_policy("oggz"))
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await owner.cases.add_event(network, case, {"kind": "analysis",
                                                  "text": "Vereenzaming, zorgmijding."})
            await owner.cases.add_event(network, case, {
                "kind": "action", "description": "Buurtvrijwilliger gaat op bezoek.",
                "help_type": "informal", "relation": "preceding", "by": cast.informal.key_id})
            consent = await owner.disclosure.record_consent(
                network, case, classes=["name"], partners=[coordinator.key_id],
                purpose="Overdracht aan het OGGZ-netwerk.", evidence=EVIDENCE)
            await coordinator.sync(network)

            new_case = await coordinator.referrals.refer(network, case, oggz, consent=consent,
                                               reason="ernstige zorgmijding")
            assert new_case != case
            await coordinator.sync(oggz)
            view = coordinator.cases.get(oggz, new_case)
            source = coordinator.cases.get(network, case).state
            for name in ("age_band", "neighbourhood", "domains", "severity", "care_status",
                         "source", "complex", "summary"):
                assert view.state[name] == source[name], name
            notes = " ".join(n["text"] for n in view.state["notes"])
            assert "Vereenzaming, zorgmijding." in notes
            assert "Buurtvrijwilliger gaat op bezoek." in notes
            assert coordinator.identity.get(oggz, new_case) == {}
            assert view.owner == coordinator.key_id

            out = [e for e in (await entries_by_index(coordinator, network)).values()
                   if e["action"] == "referral-out"]
            into = [e for e in (await entries_by_index(coordinator, oggz)).values()
                    if e["action"] == "referral-in"]
            assert [(e["case"], e["basis"]) for e in out] == [(case, "consent")]
            assert [e["case"] for e in into] == [new_case]
            assert out[0]["ref"] == into[0]["ref"]
        finally:
            await cast.close()


async def test_a_referral_the_consent_does_not_cover_leaves_no_open_case_behind(
        tmp_path: Path) -> None:
    """The receiving case must exist before the server can check a referral.  A consent
    this client recorded that does not name the receiver is refused before any case is
    made; one recorded elsewhere is refused by the server, and the client then closes
    the case it made, so no open case without a referral stays in the other network."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, coordinator, owner = cast.network, cast.coordinator, cast.formal
            oggz = await coordinator.networks.create(name="OGGZ-netwerk Eemland", kind="oggz",
                                                    covenant=COVENANT,
                                                    server_fingerprint=server_fingerprint(url),
                                                    policy=network_policy("oggz"))
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            own = await coordinator.disclosure.record_consent(
                network, case, classes=["name"], partners=[owner.key_id],
                purpose="Alleen voor het wijkteam.", evidence=EVIDENCE)
            await coordinator.sync(network)
            with pytest.raises(PolicyViolation) as early:
                await coordinator.referrals.refer(network, case, oggz, consent=own, reason="nazorg")
            assert early.value.details["reason"] == "consent-not-for-receiver"
            await coordinator.sync(oggz)
            assert coordinator.cases.all(oggz) == []

            elsewhere = await owner.disclosure.record_consent(
                network, case, classes=["name"], partners=[owner.key_id],
                purpose="Alleen voor het wijkteam.", evidence=EVIDENCE)
            with pytest.raises(ServerRefused) as refused:
                await coordinator.referrals.refer(network, case, oggz, consent=elsewhere,
                                        reason="nazorg")
            assert refused.value.details.get("reason") == "consent-not-for-receiver"
            await coordinator.sync(oggz)
            left = coordinator.cases.all(oggz)
            assert len(left) == 1 and left[0].status == "closed"
        finally:
            await cast.close()


async def test_notifications_are_read_past_a_server_page_smaller_than_the_clients(
        tmp_path: Path) -> None:
    """A server may serve fewer notifications per page than the client asks (its
    ``max_page``): the coordinator's client reads on to an empty page and misses none."""
    async with running_server(tmp_path, limits=Limits(max_page=1)) as url:
        cast = await standard_network(tmp_path, url, kind="oggz")
        try:
            network = cast.network
            arts = await cast.join(tmp_path, url, "ggd-arts", roles=("bemoeizorg",))
            await cast.formal.sync(network)
            cases = [await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
                     for _ in range(3)]
            await arts.sync(network)
            invocations = [await arts.disclosure.invoke_bemoeizorg(
                network, case, ground="severe-self-neglect", justification=JUSTIFICATION,
                classes=["name"]) for case in cases]
            feed = await cast.coordinator.networks.notifications(network)
            assert [n["invocation"] for n in feed if n["kind"] == "bemoeizorg"] == invocations
        finally:
            await cast.close()
