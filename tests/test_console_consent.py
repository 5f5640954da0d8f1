"""The console's consent and disclosure screens (cli/console/consent.py; ADR 0041) against
the real aiohttp app, with the aiohttp test client, over real partner homes talking to a
real server (tests/client_harness.py).

The coördinator records a person's consent with the signed form (only its SHA-256 is
sent), checks a grant against the network policy before anything is sent (threat row
CO-8), grants, and revokes; the grantee releases the grant in its own console and sees the
identity on a page kept out of the browser's cache (CO-9).  Each test is one rule, named
after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schakel.cli.console.guard import MAX_BODY, MAX_UPLOAD
from tests.client_harness import IDENTITY, INTAKE, running_server, standard_network
from tests.test_console import Console, _console

EVIDENCE = b"%PDF- ondertekend toestemmingsformulier van de bewoner"
PURPOSE = "Afstemming van hulp rond de woning."


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[Any, Console, str]]:
    """A standard network on a real server, a case of the formal member with the
    person's identity, and the console over the coördinator's home, unlocked."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            case = await cast.formal.cases.create(cast.network, INTAKE, identity=IDENTITY)
            await cast.coordinator.sync(cast.network)
            async for console in _console(Path(cast.coordinator.session.home.path)):
                console.network, console.url = cast.network, url
                await console.enter()
                await console.unlock()
                yield cast, console, case
        finally:
            await cast.close()


def _page(console: Console, case: str) -> str:
    return f"/n/{console.network}/cases/{case}/consent"


async def record(console: Console, case: str, *, classes: tuple[str, ...],
                 parties: tuple[str, ...] = (), partners: tuple[str, ...] = (),
                 purpose: str = PURPOSE, evidence: bytes = EVIDENCE) -> aiohttp.ClientResponse:
    """Post the consent form as a browser does: multipart, with the signed form's file."""
    form = aiohttp.FormData()
    form.add_field("csrf", await console.csrf(_page(console, case)))
    for cls in classes:
        form.add_field("classes", cls)
    for party in parties:
        form.add_field("parties", party)
    for key_id in partners:
        form.add_field("partners", key_id)
    form.add_field("purpose", purpose)
    form.add_field("days", "365")
    form.add_field("evidence", evidence, filename="toestemming.pdf",
                   content_type="application/pdf")
    return await console.client.post(_page(console, case), data=form, headers=console.origin)


async def recorded(console: Console, case: str, **kw: Any) -> str:
    """Record a consent and return its id (from the page's confirmation)."""
    answer = await record(console, case, **kw)
    text = await answer.text()
    assert answer.status == 200, text
    found = re.search(r'<p id="recorded">Consent ([A-Za-z0-9_-]+) is recorded', text)
    assert found, text
    return found.group(1)


async def send_grant(console: Console, case: str, *, do: str, consent: str, grantee: str,
                     classes: tuple[str, ...], reason: str = "huisbezoek plannen"
                     ) -> aiohttp.ClientResponse:
    data = [("csrf", await console.csrf(_page(console, case))), ("do", do),
            ("grantee", grantee), ("grant_consent", consent), ("grant_reason", reason),
            *(("grant_classes", c) for c in classes)]
    return await console.client.post(f"/n/{console.network}/cases/{case}/grant", data=data,
                                     headers=console.origin)


async def audit_size(cast: Any) -> int:
    return len(await cast.auditor.audit.entries(cast.network))


async def test_consent_is_recorded_and_only_the_forms_sha256_is_sent(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    page = await (await console.client.get(_page(console, case))).text()
    assert "Only the SHA-256 fingerprint of this file leaves this computer" in page
    assert 'enctype="multipart/form-data"' in page

    consent = await recorded(console, case, classes=("address", "name"),
                             partners=(cast.informal.key_id,))
    text = await (await console.client.get(_page(console, case))).text()
    row = re.search(rf'<tr id="consent-{consent}">(.*?)</tr>', text, re.DOTALL)
    assert row and "in force" in row.group(1) and "Buurtvrijwilligers" in row.group(1)
    assert PURPOSE in row.group(1)

    entries = [e["entry"] for e in await cast.auditor.audit.entries(cast.network)]
    assert any(e["action"] == "consent" and e["ref"] == consent for e in entries)
    held = cast.coordinator.disclosure.consents(cast.network, case)
    assert [c["evidence_sha256"] for c in held] == [hashlib.sha256(EVIDENCE).hexdigest()]


async def test_a_recorded_consent_answers_with_a_redirect_so_a_reload_records_nothing(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    form = aiohttp.FormData()
    form.add_field("csrf", await console.csrf(_page(console, case)))
    for name, value in (("classes", "name"), ("parties", "formal"), ("purpose", PURPOSE),
                        ("days", "30")):
        form.add_field(name, value)
    form.add_field("evidence", EVIDENCE, filename="toestemming.pdf")
    answer = await console.client.post(_page(console, case), data=form, headers=console.origin,
                                       allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"].startswith(f"{_page(console, case)}?recorded=")
    assert len(cast.coordinator.disclosure.consents(cast.network, case)) == 1


async def test_a_consent_without_the_signed_form_is_refused_and_nothing_is_sent(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    before = await audit_size(cast)
    answer = await record(console, case, classes=("name",), parties=("formal",), evidence=b"")
    assert answer.status == 422
    assert "Choose the file of the signed consent form" in await answer.text()
    assert await audit_size(cast) == before


async def test_a_consent_upload_above_the_limit_is_refused_before_it_is_read(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    before = await audit_size(cast)
    answer = await record(console, case, classes=("name",), parties=("formal",),
                          evidence=b"x" * (MAX_UPLOAD + 1))
    assert answer.status == 403
    assert "at most 16 MiB" in await answer.text()
    assert await audit_size(cast) == before


async def test_the_larger_body_limit_holds_for_the_consent_form_only(
        network: tuple[Any, Console, str]) -> None:
    _cast, console, case = network
    scan = EVIDENCE + b"\0" * (4 * MAX_BODY)
    answer = await record(console, case, classes=("name",), parties=("formal",), evidence=scan)
    assert answer.status == 200, await answer.text()
    assert hashlib.sha256(scan).hexdigest() in await answer.text()
    note = f"/n/{console.network}/cases/{case}/note"
    answer = await console.post(note, {"text": "x" * (MAX_BODY + 1)},
                                page=f"/n/{console.network}/cases/{case}")
    assert answer.status == 403
    assert "too large" in await answer.text()


async def test_policy_check_shows_the_refusal_with_its_reason_and_sends_nothing(
        network: tuple[Any, Console, str]) -> None:
    """Threat row CO-8: an informal grantee asking for ``official`` is refused on this
    computer, with the policy's reason code and explanation, before anything is sent."""
    cast, console, case = network
    consent = await recorded(console, case, classes=("name", "official"),
                             parties=("informal",))
    before = await audit_size(cast)
    grants_before = len(await cast.auditor.disclosure.grants(cast.network))

    answer = await send_grant(console, case, do="check", consent=consent,
                              grantee=cast.informal.key_id, classes=("official",))
    text = await answer.text()
    assert answer.status == 200
    decision = re.search(r'<section class="refusal" id="decision" role="alert".*?</section>',
                         text, re.DOTALL)
    assert decision, text
    assert "reason: informal-class-not-allowed: volunteers (informal parties)" in decision.group(0)
    assert "Nothing was sent to the server" in decision.group(0)

    granted = await send_grant(console, case, do="grant", consent=consent,
                               grantee=cast.informal.key_id, classes=("official",))
    assert granted.status == 422
    assert "informal-class-not-allowed" in await granted.text()
    assert await audit_size(cast) == before
    assert len(await cast.auditor.disclosure.grants(cast.network)) == grants_before


async def test_policy_check_of_a_permitted_grant_sends_nothing_and_grant_sends_it(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    consent = await recorded(console, case, classes=("address", "name"),
                             partners=(cast.informal.key_id,))
    before = await audit_size(cast)
    answer = await send_grant(console, case, do="check", consent=consent,
                              grantee=cast.informal.key_id, classes=("name",))
    text = await answer.text()
    assert 'id="decision" role="status"' in text and "The policy allows this grant" in text
    assert await audit_size(cast) == before

    answer = await send_grant(console, case, do="grant", consent=consent,
                              grantee=cast.informal.key_id, classes=("name",))
    text = await answer.text()
    assert answer.status == 200, text
    grant = re.search(r'<p id="granted">Grant ([A-Za-z0-9_-]+) is sent', text)
    assert grant, text
    shown = {g.grant: g for g in await cast.auditor.disclosure.grants(cast.network)}
    assert shown[grant.group(1)].grantee == cast.informal.key_id
    assert shown[grant.group(1)].classes == ["name"]


async def test_grantee_releases_the_grant_and_sees_the_name_on_a_page_kept_out_of_caches(
        network: tuple[Any, Console, str]) -> None:
    """Threat row CO-9: the identity is shown on its own page, with ``no-store``."""
    cast, console, case = network
    consent = await recorded(console, case, classes=("address", "name"),
                             partners=(cast.informal.key_id,))
    answer = await send_grant(console, case, do="grant", consent=consent,
                              grantee=cast.informal.key_id, classes=("address", "name"))
    assert answer.status == 200, await answer.text()

    async for grantee in _console(Path(cast.informal.session.home.path)):
        grantee.network = cast.network
        await grantee.enter()
        await grantee.unlock()
        listing = f"/n/{cast.network}/grants"
        text = await (await grantee.client.get(listing)).text()
        assert "the server first writes the release to the audit log" in text
        grant = re.search(r'action="/n/[^/]+/grants/([A-Za-z0-9_-]+)/release"', text)
        assert grant, text
        case_page = await (await grantee.client.get(f"/n/{cast.network}/cases/{case}")).text()
        assert IDENTITY["name"]["family_name"] not in case_page

        shown = await grantee.post(f"/n/{cast.network}/grants/{grant.group(1)}/release", {},
                                   page=listing)
        text = await shown.text()
        assert shown.status == 200, text
        assert str(shown.url).endswith(f"/cases/{case}/identity")
        assert IDENTITY["name"]["family_name"] in text
        assert shown.headers["Cache-Control"] == "no-store"
        entries = [e["entry"] for e in await cast.auditor.audit.entries(cast.network)]
        assert any(e["action"] == "release" and e["ref"] == grant.group(1) for e in entries)


async def test_a_revoked_consent_shows_the_purge_instructions_it_caused(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    consent = await recorded(console, case, classes=("name",), partners=(cast.informal.key_id,))
    answer = await send_grant(console, case, do="grant", consent=consent,
                              grantee=cast.informal.key_id, classes=("name",))
    grant = re.search(r'<p id="granted">Grant ([A-Za-z0-9_-]+) is sent', await answer.text())
    assert grant
    await cast.informal.sync(cast.network)
    await cast.informal.disclosure.release(cast.network, grant.group(1))

    answer = await console.post(f"{_page(console, case)}/{consent}/revoke",
                                {"revoke_reason": "Persoon trekt toestemming in."},
                                page=_page(console, case))
    text = await answer.text()
    assert answer.status == 200, text
    row = re.search(rf'<tr id="consent-{consent}">(.*?)</tr>', text, re.DOTALL)
    assert row and "revoked; purge instructions: " in row.group(1)
    assert f'/consent/{consent}/revoke"' not in text
    entries = [e["entry"] for e in await cast.auditor.audit.entries(cast.network)]
    assert any(e["action"] == "consent-revoke" and e["ref"] == consent for e in entries)


@pytest.mark.parametrize("route", ["consent", "consent/AAAAAAAAAAAAAAAAAAAAAA/revoke", "grant",
                                   "grants"])
async def test_the_consent_screens_post_routes_require_the_csrf_token(
        network: tuple[Any, Console, str], route: str) -> None:
    cast, console, case = network
    path = (f"/n/{cast.network}/grants/AAAAAAAAAAAAAAAAAAAAAA/release" if route == "grants"
            else f"/n/{cast.network}/cases/{case}/{route}")
    before = await audit_size(cast)
    answer = await console.client.post(path, data={"do": "grant", "revoke_reason": "x"},
                                       headers=console.origin)
    assert answer.status == 403
    assert "CSRF" in await answer.text()
    assert await audit_size(cast) == before


async def test_the_coordinator_grants_under_a_consent_the_cases_owner_recorded(
        network: tuple[Any, Console, str]) -> None:
    """The case's owner records the consent in its own home; the coördinator's grant form
    offers it from the verified audit log (who recorded it, which classes), and the grant
    under it goes through and is released."""
    cast, console, case = network
    consent = await cast.formal.disclosure.record_consent(
        cast.network, case, classes=("name", "address"), parties=("informal",),
        purpose=PURPOSE, evidence=EVIDENCE)
    text = await (await console.client.get(_page(console, case))).text()
    option = re.search(rf'<option value="{consent}"[^>]*>([^<]*)</option>', text)
    assert option and "Wijkteam Noord" in option.group(1)
    answer = await send_grant(console, case, do="grant", consent=consent,
                              grantee=cast.informal.key_id, classes=("name",))
    assert answer.status == 200, await answer.text()
    granted = [g for g in await cast.informal.disclosure.grants(cast.network) if g.case == case]
    assert len(granted) == 1
    await cast.informal.sync(cast.network)
    released = await cast.informal.disclosure.release(cast.network, granted[0].grant)
    assert released.classes["name"] == IDENTITY["name"]


async def test_a_consent_its_owner_revoked_is_no_longer_offered_for_a_grant(
        network: tuple[Any, Console, str]) -> None:
    cast, console, case = network
    consent = await cast.formal.disclosure.record_consent(
        cast.network, case, classes=("name",), parties=("informal",), purpose=PURPOSE,
        evidence=EVIDENCE)
    await cast.formal.disclosure.revoke_consent(cast.network, case, consent,
                                                reason="bewoner trekt toestemming in")
    text = await (await console.client.get(_page(console, case))).text()
    assert f'<option value="{consent}"' not in text
    answer = await send_grant(console, case, do="grant", consent=consent,
                              grantee=cast.informal.key_id, classes=("name",))
    assert answer.status == 422
    assert not [g for g in await cast.informal.disclosure.grants(cast.network) if g.case == case]
