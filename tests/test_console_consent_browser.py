"""The console's consent and disclosure screens in a real browser (cli/console/consent.py,
ADR 0041): a coördinator runs ``schakel console`` as a child process over its home,
against a real ``schakel serve``, and in headless Chromium (Selenium, Debian's
chromedriver; the pattern of tests/test_console_browser.py) records a person's consent
with the signed form, checks a grant against the policy — refused, nothing sent — and
grants what the policy allows; the volunteers' organisation then receives it.

Set ``SCHAKEL_SCREENSHOTS=<folder>`` to keep the screenshots.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.serverprocess import ServerProcess
from schakel.client import Partner
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, PASSPHRASE, admit, make_partner, network_policy,
)
from tests.test_console_browser import link, start_console, submit
from tests.test_intake_browser import (  # noqa: F401  (browser: the shared fixture)
    BROWSER, IN_CI, MISSING, browser, by_id, console_errors, screenshot, wait_for,
)

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)

PURPOSE = "Bezoek door een buurtvrijwilliger met de koffiekar."
REASON = "Vrijwilliger plant het eerste bezoek."


@dataclass
class Kruiskamp:
    server: ServerProcess
    network: str
    case: str
    volunteers: Partner
    address: str = ""


@pytest.fixture
async def kruiskamp(tmp_path: Path) -> AsyncIterator[Kruiskamp]:
    """A neighbourhood network on a real server: the coördinator, who owns a case with
    the person's identity, and the volunteers' organisation (core, informal); the
    coördinator's console started over its home."""
    server = ServerProcess(tmp_path / "server")
    server.init()
    url = server.start()
    partners: list[Partner] = []
    console = None
    try:
        coordinator = await make_partner(tmp_path, url, "welzijn",
                                         name="Welzijn Amersfoort (regie)")
        partners.append(coordinator)
        network = await coordinator.networks.create(
            name="Buurtnetwerk 55+ Kruiskamp", kind="neighbourhood", covenant=COVENANT,
            server_fingerprint=server.fingerprint, policy=network_policy("neighbourhood"))
        volunteers = await make_partner(tmp_path, url, "vrijwilligers", name="Buurtvrijwilligers")
        partners.append(volunteers)
        await admit(coordinator, network, volunteers, ring="core", party="informal")
        await volunteers.sync(network)
        await coordinator.sync(network)
        case = await coordinator.cases.create(network, INTAKE, identity=IDENTITY)
        await coordinator.close()
        partners.remove(coordinator)
        console, address = start_console(tmp_path / "welzijn")
        yield Kruiskamp(server=server, network=network, case=case, volunteers=volunteers,
                        address=address)
    finally:
        for p in partners:
            await p.close()
        if console is not None:
            console.terminate()
            console.wait(10)
        server.stop()


def tick(driver: Any, element_id: str) -> None:
    element = by_id(driver, element_id)
    if not element.is_selected():
        element.click()


async def test_a_coordinator_records_consent_checks_a_grant_and_grants_in_the_console(
        kruiskamp: Kruiskamp, browser: Any, tmp_path: Path) -> None:
    """Record the consent with the signed form (the page names its SHA-256, the only
    thing sent of it); "Toets aan het beleid" for a volunteer asking for official data
    shows the policy's refusal with its reason and sends nothing; the allowed grant is
    sent, and the volunteers' organisation receives the name; all in Dutch, and no CSP
    violation."""
    from selenium.webdriver.support.ui import Select

    k = kruiskamp
    form = tmp_path / "toestemming.pdf"
    form.write_bytes(b"%PDF-1.4 ondertekend toestemmingsformulier")

    browser.get(k.address)
    wait_for(browser, "passphrase")
    by_id(browser, "passphrase").send_keys(PASSPHRASE)
    submit(browser, "Ontgrendelen")
    link(browser, "Casussen")
    link(browser, k.case[:8])
    link(browser, "Toestemming en inzage")
    main = browser.find_element("tag name", "main").text
    assert "Toestemming en inzage" in main
    assert "Alleen de SHA-256-vingerafdruk van dit bestand verlaat deze computer" in main

    tick(browser, "class-name")
    tick(browser, "class-address")
    tick(browser, "class-official")
    tick(browser, "party-informal")
    by_id(browser, "purpose").send_keys(PURPOSE)
    by_id(browser, "evidence").send_keys(str(form))
    submit(browser, "Toestemming vastleggen")
    wait_for(browser, "recorded")
    assert "is vastgelegd" in by_id(browser, "recorded").text
    assert hashlib.sha256(form.read_bytes()).hexdigest() in browser.page_source
    assert "van kracht" in browser.find_element("tag name", "table").text

    Select(by_id(browser, "grantee")).select_by_visible_text(
        "Buurtvrijwilligers (informele partijen (vrijwilligers))")
    tick(browser, "grant-class-official")
    Select(by_id(browser, "grant_consent")).select_by_index(1)
    submit(browser, "Toets aan het beleid")
    decision = wait_for(browser, "decision")
    assert "Het beleid weigert deze vrijgave" in decision.text
    assert "informal-class-not-allowed" in decision.text
    assert "Er is niets naar de server verstuurd" in decision.text
    assert decision.get_attribute("role") == "alert"
    screenshot(browser, "console-consent-refused", tmp_path)
    await k.volunteers.sync(k.network)
    assert await k.volunteers.disclosure.grants(k.network) == []

    by_id(browser, "grant-class-official").click()          # the form kept the choices
    tick(browser, "grant-class-name")
    submit(browser, "Toets aan het beleid")
    assert "Het beleid staat deze vrijgave toe" in wait_for(browser, "decision").text
    by_id(browser, "grant_reason").send_keys(REASON)
    submit(browser, "Vrijgeven")
    assert "is verstuurd" in wait_for(browser, "granted").text
    assert console_errors(browser) == []

    await k.volunteers.sync(k.network)
    grants = await k.volunteers.disclosure.grants(k.network)
    assert [(g.direction, g.classes) for g in grants] == [("to-you", ["name"])]
    released = await k.volunteers.disclosure.release(k.network, grants[0].grant)
    assert released.classes == {"name": IDENTITY["name"]}
    stored = b"".join(p.read_bytes() for p in k.server.data.glob("schakel.db*"))
    assert b"ondertekend toestemmingsformulier" not in stored      # the form stays here
