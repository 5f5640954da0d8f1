"""The console's audit screens (cli/console/audit.py; ADR 0040, ADR 0043) against the real
aiohttp app with the aiohttp test client, over real partner homes talking to a real
server (tests/client_harness.py), and behind the tamper proxy (tests/tamper_proxy.py):
the signed tree heads a home holds, one entry's inclusion proof (verified, and a broken
one shown as a failure, CO-12), a sealed purpose opened for an auditor only (CO-13), and
a case's printable subject access report.  Each test is one rule, named after it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.protocol import merkle
from schakel.protocol.encoding import b64d
from schakel.client import ServerRefused
from tests.client_harness import IDENTITY, INTAKE, running_server, standard_network
from tests.tamper_proxy import rewrite_audit_proof, tampered_server
from tests.test_console import Console, _console, _verified_page

EVIDENCE = b"ondertekend formulier"
#: The grant's reason: the purpose its audit entry seals to the coordinator and auditors.
GRANT_PURPOSE = "huisbezoek plannen"


@dataclass
class Disclosed:
    """A case whose name was released to the informal core partner under a consent, and
    then, after the consent was revoked, refused: ``grant`` is the index of the grant's
    audit entry (its purpose sealed), ``denial`` that of the refusal."""

    cast: Any
    case: str
    grant: int
    denial: int


async def _disclose(cast: Any) -> Disclosed:
    network, coordinator, grantee = cast.network, cast.coordinator, cast.informal
    case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
    await coordinator.sync(network)
    consent = await coordinator.disclosure.record_consent(
        network, case, classes=["name"], partners=[grantee.key_id], purpose="Huisbezoek.",
        evidence=EVIDENCE)
    grant = await coordinator.disclosure.grant(network, case, consent=consent,
                                               grantee=grantee.key_id, classes=["name"],
                                               reason=GRANT_PURPOSE)
    await grantee.sync(network)
    await grantee.disclosure.release(network, grant)
    await coordinator.disclosure.revoke_consent(network, case, consent,
                                                reason="de persoon trekt in")
    with pytest.raises(ServerRefused):
        await grantee.disclosure.release(network, grant)
    entries = {e["index"]: e["entry"] for e in await cast.auditor.audit.entries(network)}
    granted = [i for i, e in entries.items() if e["action"] == "grant" and e["case"] == case]
    denied = [i for i, e in entries.items() if e["action"] == "deny" and e["case"] == case]
    assert len(granted) == 1 and len(denied) == 1
    return Disclosed(cast=cast, case=case, grant=granted[0], denial=denied[0])


@pytest.fixture
async def disclosed(tmp_path: Path) -> AsyncIterator[Disclosed]:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            yield await _disclose(cast)
        finally:
            await cast.close()


async def _open(partner: Any, network: str) -> AsyncIterator[Console]:
    """A console over ``partner``'s home, entered and unlocked."""
    async for console in _console(Path(partner.session.home.path)):
        console.network = network
        await console.enter()
        await console.unlock()
        yield console


def _purpose(text: str) -> str:
    found = re.search(r'<dd id="purpose">(.*?)</dd>', text, re.S)
    assert found, text
    return found.group(1)


# ------------------------------------------------------------------ heads and proofs


async def test_audit_screen_lists_the_signed_tree_heads_this_home_holds(
        disclosed: Disclosed) -> None:
    cast = disclosed.cast
    async for console in _open(cast.coordinator, cast.network):
        text = await _verified_page(console)
        verified = await cast.auditor.audit.verify(cast.network)
        heads = re.findall(r'<tr class="head-row"><td>(\d+)</td><td><code>([^<]+)</code>', text)
        assert heads, text
        assert [int(s) for s, _ in heads] == sorted((int(s) for s, _ in heads), reverse=True)
        assert (str(verified.size), verified.root) in heads
        for size, root in heads:
            signed = await cast.auditor.audit.monitor(cast.network).head_at(int(size))
            assert signed.root == root


async def test_an_entrys_page_shows_its_inclusion_proof_and_it_verifies(
        disclosed: Disclosed) -> None:
    cast, index = disclosed.cast, disclosed.grant
    async for console in _open(cast.coordinator, cast.network):
        answer = await console.client.get(f"/n/{cast.network}/audit/{index}")
        text = await answer.text()
        assert answer.status == 200, text
        assert "Inclusion proof: verified" in text
        assert "What the proof shows" in text
        leaf = re.search(r'<code id="leaf-hash">([^<]+)</code>', text).group(1)
        path = re.findall(r"<li><code>([^<]+)</code></li>", text)
        size = int(re.search(r"(\d+) entries, signed", text).group(1))
        head = await cast.auditor.audit.monitor(cast.network).head_at(size)
        assert head.root in text
        assert path
        merkle.verify_inclusion_by_hash(b64d(leaf), index, size, [b64d(p) for p in path],
                                        b64d(head.root))
        assert f"/n/{cast.network}/cases/{disclosed.case}/report" in text


async def test_an_entry_whose_inclusion_proof_the_server_broke_is_shown_as_a_failure(
        tmp_path: Path) -> None:
    async with tampered_server(tmp_path) as ts:
        cast = await standard_network(tmp_path, ts.url)
        try:
            async for console in _open(cast.coordinator, cast.network):
                rewrite_audit_proof(ts.proxy, cast.network, 1, "changed")
                answer = await console.client.get(f"/n/{cast.network}/audit/1")
                text = await answer.text()
                assert ts.proxy.hits() >= 1
                assert answer.status == 409
                assert "inclusion proof does not verify" in text
                assert "audit-entry-rewritten" in text
                assert "this was recorded in your home" in text
                assert "Inclusion proof: verified" not in text
                ts.proxy.clear()
                again = await console.client.get(f"/n/{cast.network}/audit/1")
                assert "Inclusion proof: verified" in await again.text()
        finally:
            await cast.close()


async def test_an_entry_outside_the_log_is_refused_with_what_to_do(
        disclosed: Disclosed) -> None:
    cast = disclosed.cast
    async for console in _open(cast.coordinator, cast.network):
        answer = await console.client.get(f"/n/{cast.network}/audit/9999999")
        text = await answer.text()
        assert answer.status == 404
        assert 'role="alert"' in text and "What to do" in text


# ------------------------------------------------------------------ sealed purposes


async def test_an_auditor_sees_a_sealed_purpose_opened(disclosed: Disclosed) -> None:
    cast = disclosed.cast
    async for console in _open(cast.auditor, cast.network):
        text = await (await console.client.get(
            f"/n/{cast.network}/audit/{disclosed.grant}")).text()
        assert f'<span class="opened">{GRANT_PURPOSE}</span>' in _purpose(text)


async def test_a_non_auditor_sees_that_a_purpose_is_sealed_and_not_its_text(
        disclosed: Disclosed) -> None:
    cast = disclosed.cast
    async for console in _open(cast.informal, cast.network):
        answer = await console.client.get(f"/n/{cast.network}/audit/{disclosed.grant}")
        text = await answer.text()
        assert answer.status == 200, text
        assert "Sealed: only the coördinator and the network’s auditors" in _purpose(text)
        assert GRANT_PURPOSE not in text


# ------------------------------------------------------------------ access report


async def test_the_access_report_page_lists_a_release_and_a_refusal_and_is_printable(
        disclosed: Disclosed) -> None:
    cast, case = disclosed.cast, disclosed.case
    async for console in _open(cast.coordinator, cast.network):
        answer = await console.client.get(f"/n/{cast.network}/cases/{case}/report")
        text = await answer.text()
        assert answer.status == 200, text
        releases = re.findall(r'<tr class="release">(.*?)</tr>', text)
        assert len(releases) == 1 and cast.informal.name in releases[0]
        assert "name" in releases[0] and "consent" in releases[0]
        denials = re.findall(r'<tr class="denial">(.*?)</tr>', text)
        assert len(denials) == 1 and "consent-revoked" in denials[0]
        assert f"#{disclosed.denial}" in denials[0]
        assert GRANT_PURPOSE in text          # the coördinator's sealed copy, opened
        assert '<link rel="stylesheet" href="/static/print.css" media="print">' in text
        assert "<script" not in text.lower()
        sheet = await console.client.get("/static/print.css")
        assert sheet.status == 200 and "display: none" in await sheet.text()


async def test_the_audit_screen_and_the_case_page_link_to_the_access_report(
        disclosed: Disclosed) -> None:
    cast, case = disclosed.cast, disclosed.case
    async for console in _open(cast.coordinator, cast.network):
        audit = await (await console.client.get(f"/n/{cast.network}/audit")).text()
        assert f'action="/n/{cast.network}/audit/report"' in audit
        answer = await console.client.get(f"/n/{cast.network}/audit/report?case={case}",
                                          allow_redirects=False)
        assert answer.headers["Location"] == f"/n/{cast.network}/cases/{case}/report"
        page = await (await console.client.get(f"/n/{cast.network}/cases/{case}")).text()
        assert f'href="/n/{cast.network}/cases/{case}/report"' in page


async def test_a_partner_who_is_neither_coordinator_nor_auditor_is_refused_the_report(
        disclosed: Disclosed) -> None:
    cast = disclosed.cast
    async for console in _open(cast.informal, cast.network):
        answer = await console.client.get(
            f"/n/{cast.network}/cases/{disclosed.case}/report")
        text = await answer.text()
        assert answer.status == 403
        assert 'role="alert"' in text and '<tr class="release">' not in text
