"""The person's right of access through one contact point (docs/protocol.md §15.7; ADR
0033; client/access.py, client/access_render.py, server/routes/lookups.py), end to end:
the real server behind the tamper proxy (tests/tamper_proxy.py), which keeps every
request a client sent, and real partners (tests/client_harness.py).

One coordinator runs two networks (a neighbourhood network and an OGGZ network); a core
member holds a case of Hendrik de Vries (BSN 111222333) in each, and a case of another
person in the first.  Each test is one rule, named after it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.client import ServerMisbehaviour
from schakel.client.access_render import render_html, render_text
from schakel.client.errors import ServerRefused
from schakel.client.partner import Partner
from schakel.protocol import schema
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.server.config import Limits
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, Cast, admit, make_partner, network_policy, running_server,
    server_fingerprint, standard_network,
)
from tests.tamper_proxy import tampered_server

BSN, BORN = IDENTITY["official"]["bsn"], IDENTITY["official"]["date_of_birth"]
OTHER = {"name": {"given_names": "Anna", "family_name": "Jansen"},
         "official": {"bsn": "123456782", "date_of_birth": "1950-01-01"}}
EVIDENCE = b"ondertekend toestemmingsformulier"


@dataclass
class World:
    cast: Cast
    oggz: str
    mine_a: str          # Hendrik's case in the neighbourhood network
    mine_b: str          # Hendrik's case in the OGGZ network
    other: str           # another person's case in the neighbourhood network

    @property
    def coordinator(self) -> Partner:
        return self.cast.coordinator


async def build(tmp_path: Path, url: str, *, coordinator_org: str | None = None) -> World:
    """The two networks of the module docstring."""
    cast = await standard_network(tmp_path, url)
    coordinator, owner = cast.coordinator, cast.formal
    oggz = await coordinator.networks.create(
        name="Lokaal Zorgnetwerk Woningvervuiling", kind="oggz", covenant=COVENANT,
        server_fingerprint=server_fingerprint(url), policy=network_policy("oggz"))
    await admit(coordinator, oggz, owner, ring="core", party="formal",
                roles=("professional-secrecy",))
    await owner.sync(oggz)
    mine_a = await owner.cases.create(cast.network, INTAKE, identity=IDENTITY)
    other = await owner.cases.create(cast.network, INTAKE, identity=OTHER)
    mine_b = await owner.cases.create(oggz, {**INTAKE, "domains": ["housing-pollution"]},
                                      identity=IDENTITY)
    return World(cast=cast, oggz=oggz, mine_a=mine_a, mine_b=mine_b, other=other)


async def test_the_report_finds_the_persons_cases_in_two_networks_and_not_another_persons(
        tmp_path: Path) -> None:
    async with tampered_server(tmp_path) as ts:
        world = await build(tmp_path, ts.proxy.url)
        try:
            report = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            found = {(c["network"], c["case"]) for c in report["cases"]}
            assert found == {(world.cast.network, world.mine_a), (world.oggz, world.mine_b)}
            assert world.other not in json.dumps(report)
            assert {n["network"]: n["cases"] for n in report["networks"]} == {
                world.cast.network: 1, world.oggz: 1}
            case = next(c for c in report["cases"] if c["case"] == world.mine_a)
            assert case["matched_on"] == ["bsn"] and case["match"] == "unconfirmed"
            assert case["held"]["classes"] == ["address", "name", "official"]
            assert case["held"]["values"] == {}      # the coordinator holds no identity
            assert case["held"]["anonymous"]["age_band"] == INTAKE["age_band"]
            assert case["owner"]["partner"] == world.cast.formal.key_id
            # The search is itself in the person's report, as the log recorded it.
            assert [line["action"] for line in case["lookups"]] == ["lookup"]
            # Another person's BSN finds the other case only.
            theirs = await world.coordinator.access.report(
                bsn=OTHER["official"]["bsn"], birth_date=OTHER["official"]["date_of_birth"])
            assert [c["case"] for c in theirs["cases"]] == [world.other]
        finally:
            await world.cast.close()


async def test_the_family_name_finds_a_case_without_a_bsn(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            no_bsn = {**IDENTITY, "official": {"date_of_birth": BORN}}
            case = await world.cast.formal.cases.create(world.cast.network, INTAKE,
                                                       identity=no_bsn)
            without = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            assert case not in {c["case"] for c in without["cases"]}
            named = await world.coordinator.access.report(
                bsn=BSN, birth_date=BORN, family_name="De Vries")
            matched = {c["case"]: c["matched_on"] for c in named["cases"]}
            assert matched[case] == ["name-dob"]
            assert matched[world.mine_a] == ["bsn", "name-dob"]
        finally:
            await world.cast.close()


async def test_a_non_coordinator_lookup_is_refused_and_audited(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            member, network = world.cast.formal, world.cast.network
            # The library refuses before it sends anything ...
            with pytest.raises(PolicyViolation) as early:
                await member.access.report(bsn=BSN, birth_date=BORN, networks=[network])
            assert early.value.details["reason"] == "lookup-requires-coordinator"
            assert await member.access.coordinated() == []
            # ... and the server refuses a member's own request, and audits it.
            token = {"kind": "bsn", "token": "AAAAAA"}
            with pytest.raises(ServerRefused) as refused:
                await member.session.conn.post(f"/v1/networks/{network}/lookups",
                                               {"tokens": [token], "purpose": "access-request"})
            assert refused.value.status == 403 and refused.value.code == "policy_violation"
            assert refused.value.details["reason"] == "lookup-requires-coordinator"
            index = refused.value.details["audit_index"]
            entries = {e["index"]: e["entry"]
                       for e in await world.coordinator.audit.entries(network)}
            assert entries[index]["action"] == "deny"
            assert entries[index]["reason"] == "lookup-requires-coordinator"
            assert entries[index]["actor"]["partner"] == member.key_id
        finally:
            await world.cast.close()


BSN_FORMS = (BSN, "111.222.333", "111 222 333", BSN.encode().hex(), BSN[::-1])


async def test_the_server_never_receives_the_bsn(tmp_path: Path) -> None:
    """Neither a request (target, header fields, body) nor the server's database or
    log holds the BSN, in any usual spelling, after the report was made."""
    async with tampered_server(tmp_path) as ts:
        world = await build(tmp_path, ts.proxy.url)
        try:
            ts.proxy.exchanges.clear()
            report = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            assert len(report["cases"]) == 2
            sent = ts.proxy.exchanges
            assert [e for e in sent if e.path.endswith("/lookups")]
            for ex in sent:
                wire = (ex.request_target + json.dumps(ex.request_headers)).encode() + \
                    ex.request_body
                for form in BSN_FORMS:
                    assert form.encode() not in wire, (ex.method, ex.path)
            assert report["subject"]["bsn"] == "******333"
        finally:
            await world.cast.close()
        server_files = [p for p in (tmp_path / "server").rglob("*") if p.is_file()]
        assert any(p.suffix == ".db" or "sqlite" in p.name for p in server_files) or server_files
        for path in server_files:
            data = path.read_bytes()
            for form in BSN_FORMS:
                assert form.encode() not in data, path
        # The database holds no BSN column or value in any table, read row by row.
        db = next(p for p in server_files if p.name.endswith(".db"))
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in conn.execute(f"SELECT * FROM [{table}]"):
                    assert BSN not in repr(row), table


async def test_reads_appear_in_the_report(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            network = world.cast.network
            reader = world.cast.informal
            await reader.session.conn.get(f"/v1/networks/{network}/cases/{world.mine_a}")
            report = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            case = next(c for c in report["cases"] if c["case"] == world.mine_a)
            readers = {(r["partner"], r["reason"].split(":")[0]) for r in case["reads"]}
            assert (reader.key_id, "case") in readers
            assert any(p == world.coordinator.key_id for p, _ in readers)
            assert "Buurtvrijwilligers" in render_text(report)
        finally:
            await world.cast.close()


async def test_releases_consents_and_purposes_are_reported(tmp_path: Path) -> None:
    """Who received identity, on what basis and for what purpose (opened from the
    sealed purpose, ADR 0029), and the consent's state (revoked after its revocation)."""
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            network, coordinator, grantee = world.cast.network, world.coordinator, world.cast.informal
            await coordinator.sync(network)
            consent = await coordinator.disclosure.record_consent(
                network, world.mine_a, classes=["name"], partners=[grantee.key_id],
                purpose="Huisbezoek door de buurtvrijwilliger.", evidence=EVIDENCE)
            grant = await coordinator.disclosure.grant(
                network, world.mine_a, consent=consent, grantee=grantee.key_id,
                classes=["name"], reason="huisbezoek")
            await grantee.sync(network)
            await grantee.disclosure.release(network, grant)
            report = await coordinator.access.report(bsn=BSN, birth_date=BORN)
            case = next(c for c in report["cases"] if c["case"] == world.mine_a)
            [received] = case["recipients"]
            assert (received["partner"], received["classes"], received["basis"],
                    received["purpose"]) == (grantee.key_id, ["name"], "consent", "huisbezoek")
            [given] = case["consents"]
            assert (given["consent"], given["state"], given["purpose"]) == (
                consent, "in-force", "Huisbezoek door de buurtvrijwilliger.")
            await coordinator.disclosure.revoke_consent(network, world.mine_a, consent,
                                                        reason="ingetrokken")
            again = await coordinator.access.report(bsn=BSN, birth_date=BORN)
            case = next(c for c in again["cases"] if c["case"] == world.mine_a)
            assert case["consents"][0]["state"] == "revoked"
            assert case["consents"][0]["revoked"] is not None
        finally:
            await world.cast.close()


async def test_held_identity_confirms_a_match_and_rejects_another_persons(
        tmp_path: Path) -> None:
    """A case whose official identity the contact point holds is confirmed when it
    names the BSN and date of birth, and left out when it names another person."""
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            coordinator, network = world.coordinator, world.cast.network
            await coordinator.sync(network)
            own = await coordinator.cases.create(network, INTAKE, identity=IDENTITY)
            report = await coordinator.access.report(bsn=BSN, birth_date=BORN)
            case = next(c for c in report["cases"] if c["case"] == own)
            assert case["match"] == "confirmed"
            assert case["held"]["values"]["official"]["bsn"] == "******" + BSN[-3:]
            later = {**IDENTITY, "official": {"bsn": BSN, "date_of_birth": "1990-01-01"}}
            namesake = await coordinator.cases.create(network, INTAKE, identity=later)
            report = await coordinator.access.report(bsn=BSN, birth_date=BORN)
            assert namesake not in {c["case"] for c in report["cases"]}
            assert next(n for n in report["networks"] if n["network"] == network)["rejected"] == 1
        finally:
            await world.cast.close()


async def test_the_report_renders_in_dutch_and_english(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            nl = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            en = await world.coordinator.access.report(bsn=BSN, birth_date=BORN, lang="en")
            assert nl["lang"] == "nl" and en["lang"] == "en"
            text_nl, text_en = render_text(nl), render_text(en)
            assert "Inzageverslag" in text_nl and "Wie uw identiteitsgegevens ontving" in text_nl
            assert "Subject access report" in text_en and "Who received your identity" in text_en
            assert "Inzageverslag" not in text_en
            html_nl, html_en = render_html(nl), render_html(en)
            assert '<html lang="nl">' in html_nl and '<html lang="en">' in html_en
            assert "Toestemmingen" in html_nl and "Consents" in html_en
            for page in (html_nl, html_en):
                assert "<script" not in page.lower() and "@media print" in page
                assert "http://" not in page and "https://" not in page
                assert BSN not in page and "******333" in page
            with pytest.raises(MalformedError):
                await world.coordinator.access.report(bsn=BSN, birth_date=BORN, lang="de")
        finally:
            await world.cast.close()


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_html_escapes_hostile_field_values(tmp_path: Path) -> None:
    """An organisation name, an acting user and a purpose written to break out of the
    page are shown as text, never as markup."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network = cast.network
            hostile = await make_partner(tmp_path, url, "hostile", name=HOSTILE,
                                         acting_user="<b>onclick=alert(2)</b>")
            await admit(cast.coordinator, network, hostile, ring="core", party="formal",
                        roles=("professional-secrecy",))
            await hostile.sync(network)
            case = await hostile.cases.create(network, INTAKE, identity=IDENTITY)
            await hostile.session.conn.get(f"/v1/networks/{network}/cases/{case}")
            await cast.coordinator.sync(network)
            await cast.coordinator.disclosure.record_consent(
                network, case, classes=["name"], partners=[cast.formal.key_id],
                purpose='Bezoek "<i>" & <u>uitleg</u>', evidence=EVIDENCE)
            report = await cast.coordinator.access.report(bsn=BSN, birth_date=BORN)
            page = render_html(report)
            assert "<script" not in page.lower() and "<img" not in page.lower()
            assert "<b>" not in page and "<u>" not in page and "<i>" not in page
            assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
            assert "&lt;b&gt;onclick=alert(2)&lt;/b&gt;" in page
            assert "&lt;u&gt;uitleg&lt;/u&gt;" in page
            # Only the page's own markup remains: every tag is one the renderer writes.
            tags = set(re.findall(r"</?([a-zA-Z0-9]+)", page))
            assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2",
                            "h3", "p", "dl", "dt", "dd", "ul", "li", "span", "section",
                            "code", "table", "tr", "th", "td"}, tags
        finally:
            await cast.close()


async def test_the_json_report_validates_against_its_schema(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            report = await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            schema.validate("access-report", json.loads(json.dumps(report)))
            for broken in ({**report, "subject": {**report["subject"], "bsn": BSN}},
                           {**report, "lang": "de"},
                           {**report, "cases": [{**report["cases"][0], "match": "maybe"}]}):
                with pytest.raises(MalformedError):
                    schema.validate("access-report", broken)
        finally:
            await world.cast.close()


async def test_lookups_over_the_daily_limit_are_refused_and_audited(tmp_path: Path) -> None:
    async with running_server(tmp_path, limits=Limits(lookups_per_day=2)) as url:
        world = await build(tmp_path, url)
        try:
            coordinator, network = world.coordinator, world.cast.network
            for _ in range(2):
                await coordinator.access.report(bsn=BSN, birth_date=BORN, networks=[network])
            with pytest.raises(ServerRefused) as refused:
                await coordinator.access.report(bsn=BSN, birth_date=BORN, networks=[network])
            assert refused.value.status == 429 and refused.value.code == "rate_limited"
            assert refused.value.details["reason"] == "lookup-rate-limit"
            assert 0 < refused.value.details["retry_after"] <= 24 * 3600
            entries = {e["index"]: e["entry"] for e in await coordinator.audit.entries(network)}
            assert entries[refused.value.details["audit_index"]]["reason"] == "lookup-rate-limit"
            assert sum(e["action"] == "lookup" for e in entries.values()) == 2
            # The other network has its own allowance.
            await coordinator.access.report(bsn=BSN, birth_date=BORN, networks=[world.oggz])
        finally:
            await world.cast.close()


async def test_a_lookup_answer_the_log_does_not_record_is_caught(tmp_path: Path) -> None:
    """A server that answers more (or fewer) cases than its lookup entry names is
    caught by the receipt check and recorded as misbehaviour."""
    async with tampered_server(tmp_path) as ts:
        world = await build(tmp_path, ts.proxy.url)
        try:
            def add_other(body: dict[str, Any]) -> dict[str, Any]:
                body["matches"].append({"case": world.other, "tokens": [0]})
                return body
            ts.proxy.on("POST", r"/v1/networks/[^/]+/lookups", add_other)
            with pytest.raises(ServerMisbehaviour) as caught:
                await world.coordinator.access.report(bsn=BSN, birth_date=BORN)
            assert ts.proxy.hits() > 0
            assert caught.value.what == "receipt-invalid"
            assert world.coordinator.misbehaviours()[-1]["what"] == "receipt-invalid"
        finally:
            await world.cast.close()


async def test_an_invalid_bsn_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    async with tampered_server(tmp_path) as ts:
        world = await build(tmp_path, ts.proxy.url)
        try:
            ts.proxy.exchanges.clear()
            for bad in ("111222334", "12345678", "abcdefghi", "000000000"):
                with pytest.raises(MalformedError) as refused:
                    await world.coordinator.access.report(bsn=bad, birth_date=BORN)
                assert bad not in refused.value.message
            with pytest.raises(MalformedError):
                await world.coordinator.access.report(bsn=BSN, birth_date="2999-01-01")
            assert ts.proxy.exchanges == []
        finally:
            await world.cast.close()




async def test_the_report_masks_a_held_bsn_as_it_masks_the_subject(tmp_path: Path) -> None:
    """ADR 0033 §5: the BSN is shown masked everywhere in the report, among the values the
    contact point holds itself too, so a lost printout carries no full number."""
    async with running_server(tmp_path) as url:
        world = await build(tmp_path, url)
        try:
            coordinator, network = world.coordinator, world.cast.network
            await coordinator.sync(network)
            own = await coordinator.cases.create(network, INTAKE, identity=IDENTITY)
            for lang in ("nl", "en"):
                report = await coordinator.access.report(bsn=BSN, birth_date=BORN, lang=lang)
                case = next(c for c in report["cases"] if c["case"] == own)
                assert case["match"] == "confirmed"
                assert case["held"]["values"]["official"]["bsn"] == "******" + BSN[-3:]
                assert BSN not in json.dumps(report)
                assert BSN not in render_html(report) and BSN not in render_text(report)
        finally:
            await world.cast.close()
