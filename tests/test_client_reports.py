"""Audit and reports through the client library, end to end against the real server
(flows 10 and 11; docs/protocol.md §15.1, §15.2; client/reports.py).

Each test is one rule, named after it.  The access-report test that catches a server
leaving a release out of a person's report puts the tamper proxy (tests/tamper_proxy.py)
in front of the real server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schakel.client import ServerMisbehaviour
from tests.client_harness import (
    IDENTITY, INTAKE, admit, make_partner, network_policy, running_server, server_fingerprint,
    standard_network,
)
from tests.tamper_proxy import tampered_server

EVIDENCE = b"ondertekend formulier"


async def test_aggregate_report_suppresses_small_cells(tmp_path: Path) -> None:
    """Counts below min_cell are shown as "<5"; a breakdown with one suppressed cell
    also hides its smallest other cell (else the total gives it away); domains (several
    per case) are not complemented; the median needs min_cell cases; no case ids."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, owner = cast.network, cast.formal
            plan = ["Soesterkwartier"] * 6 + ["Schothorst"] * 5 + ["Kruiskamp"] * 2
            cases = []
            for i, neighbourhood in enumerate(plan):
                intake = {**INTAKE, "neighbourhood": neighbourhood}
                if i < 2:
                    intake["domains"] = ["loneliness", "financial"]
                cases.append(await owner.cases.create(network, intake))
            for case in cases[:5]:
                await owner.cases.add_event(network, case, {
                    "kind": "action", "description": "Vrijwilliger komt langs.",
                    "help_type": "informal", "relation": "preceding", "by": cast.informal.key_id})
            await owner.cases.add_event(network, cases[5], {
                "kind": "action", "description": "Wijkverpleging start.", "help_type": "formal",
                "relation": "follow-up", "by": owner.key_id,
                "informal_not_possible": "Wondzorg vraagt een verpleegkundige."})
            await owner.cases.consult(network, {**INTAKE, "summary": "Anonieme vraag."})
            await cast.coordinator.sync(network)

            report = cast.coordinator.reports.aggregate(network)
            assert report["cases"] == 13 and report["consults"] == "<5"
            assert report["by_neighbourhood"] == {"Kruiskamp": "<5", "Schothorst": "<5",
                                                  "Soesterkwartier": 6}
            assert report["by_domain"] == {"financial": "<5", "loneliness": 13, "self-care": 11}
            assert report["by_help_type"] == {"formal": "<5", "informal": "<5", "none": 7}
            assert report["by_source"] == {"partner": 13}
            assert report["cases_with_action"] == 6
            assert isinstance(report["median_days_to_first_action"], float)
            assert report["median_days_to_first_action"] < 1

            strict = cast.coordinator.reports.aggregate(network, min_cell=7)
            assert strict["median_days_to_first_action"] == "<7"
            assert strict["by_help_type"] == {"formal": "<7", "informal": "<7", "none": 7}

            text = json.dumps(report)
            assert not [c for c in cases if c in text]
            assert "Vrijwilliger" not in text and INTAKE["summary"] not in text
        finally:
            await cast.close()


async def test_access_report_is_checked_against_the_verified_log(tmp_path: Path) -> None:
    """The subject access report lists the release with who, what and on which basis,
    and every line matches a verified audit entry of the case."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, coordinator, grantee = cast.network, cast.coordinator, cast.informal
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            await coordinator.sync(network)
            consent = await coordinator.disclosure.record_consent(
                network, case, classes=["name"], partners=[grantee.key_id],
                purpose="Huisbezoek.", evidence=EVIDENCE)
            grant = await coordinator.disclosure.grant(network, case, consent=consent,
                                            grantee=grantee.key_id, classes=["name"],
                                            reason="huisbezoek")
            await grantee.sync(network)
            released = await grantee.disclosure.release(network, grant)

            report = await coordinator.reports.access(network, case)
            assert [(r["index"], r["partner"], r["classes"], r["basis"], r["ref"])
                    for r in report["releases"]] == [
                (released.receipt_index, grantee.key_id, ["name"], "consent", grant)]
            assert report["verified"]["entries"] == 1 + len(report["reads"])
            assert {r["partner"] for r in report["reads"]} >= {coordinator.key_id,
                                                                grantee.key_id}
            # The purposes, sealed in the log, opened by the report's reader only.
            assert {(p["action"], p["purpose_text"]) for p in report["purposes"]} == {
                ("consent", "Huisbezoek."), ("grant", "huisbezoek")}
            assert "#" in report["text"] and "huisbezoek" in report["text"]
            assert (await cast.auditor.reports.access(network, case))["releases"] == \
                report["releases"]
        finally:
            await cast.close()


def _leave_out(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(body: dict[str, Any]) -> dict[str, Any]:
        body[field] = value
        return body
    return edit


@pytest.mark.parametrize("edit, message", [
    (_leave_out("releases", []), "release entry"),
    (_leave_out("reads", []), "read entry"),
    (_leave_out("size", 0), "covers 0 log entries"),
    (_leave_out("purposes", []), "purpose entry"),
], ids=["release", "read", "size", "purpose"])
async def test_access_report_leaving_out_a_release_or_read_is_caught(
        tmp_path: Path, edit: Callable[[dict[str, Any]], dict[str, Any]], message: str) -> None:
    """A server that drops a release from a person's access report (the line that says
    who received the person's name), or a read of the case's data, or claims to have built
    it from a smaller log than the client had seen, is caught against the verified log and
    recorded."""
    async with tampered_server(tmp_path) as srv:
        url = srv.url
        coordinator = await make_partner(tmp_path, url, "coordinator")
        owner = await make_partner(tmp_path, url, "owner")
        grantee = await make_partner(tmp_path, url, "grantee")
        try:
            network = await coordinator.networks.create(
                name="Buurtnetwerk", kind="neighbourhood",
                covenant="Convenant Buurtnetwerk Soesterkwartier: wij delen alleen wat nodig is.",
                server_fingerprint=server_fingerprint(url), policy=network_policy("neighbourhood"))
            await admit(coordinator, network, owner, ring="core", party="formal")
            await admit(coordinator, network, grantee, ring="core", party="formal")
            await owner.sync(network)
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await coordinator.sync(network)
            consent = await coordinator.disclosure.record_consent(
                network, case, classes=["address"], partners=[grantee.key_id],
                purpose="Huisbezoek.", evidence=EVIDENCE)
            grant = await coordinator.disclosure.grant(network, case, consent=consent,
                                            grantee=grantee.key_id, classes=["address"],
                                            reason="huisbezoek")
            await grantee.sync(network)
            await grantee.disclosure.release(network, grant)
            honest = await coordinator.reports.access(network, case)
            assert len(honest["releases"]) == 1 and honest["reads"]

            srv.proxy.on("GET", rf"/v1/networks/{re.escape(network)}/cases/[^/]+/access-report",
                         edit)
            with pytest.raises(ServerMisbehaviour) as caught:
                await coordinator.reports.access(network, case)
            assert caught.value.what == "audit-entry-rewritten"
            assert message in caught.value.message
            assert srv.proxy.hits() == 1
            assert coordinator.misbehaviours()[-1]["what"] == "audit-entry-rewritten"
        finally:
            for p in (coordinator, owner, grantee):
                await p.close()
