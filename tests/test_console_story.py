"""The Buurtnetwerk 55+ story of ``make demo`` (cli/demo/practice_amersfoort.py), played
by its coördinator entirely in the console, in Dutch, in headless Chromium (ADR 0040).

Welzijn Amersfoort's opbouwwerker runs ``schakel console`` over its home against a real
``schakel serve``.  Everything the coördinator does happens in the browser: found the
network on the operator's server fingerprint, read the fingerprint to say aloud off the
screen, admit the partners comparing the fingerprints they read aloud (a swapped bundle
refused), share the home-care consult with the GP's practice, publish the card, read the
volunteer driver's anonymous signal and answer it, grant the visiting service the man's
name and address under the consent social work recorded (the policy refusing his BSN
before anything is sent), verify the audit log and read the man's subject access
report.  The other organisations act through the library, each in its own home, as they
would in their own consoles or systems; after each step the test checks what the screen
showed and what the other side can now read.  At the end the server's files hold none
of the man's identity nor any case text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.demo.practice_amersfoort import (
    CONSULT_INTAKE, COVENANT, DRIVER_CONCERN, MAN, MAN_INTAKE, NEIGHBOURHOOD,
)
from schakel.cli.serverprocess import ServerProcess
from schakel.client import Partner
from schakel.client.card import anonymous_signal, anonymous_status, fetch_card
from tests.client_harness import PASSPHRASE, make_partner
from tests.test_console_browser import start_console
from tests.test_intake_browser import (  # noqa: F401  (browser: the shared fixture)
    BROWSER, IN_CI, MISSING, WAIT, browser, by_id, console_errors, gone, screenshot, wait_for,
)

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)

FEEDBACK = ("Dank u wel! Maatschappelijk werk gaat langs; u hoort niets over hem, maar er "
            "wordt voor hem gezorgd.")


@dataclass
class Soesterkwartier:
    """The server, the coördinator's console and the other organisations' homes."""

    server: ServerProcess
    url: str
    tmp: Path
    console: Any = None
    address: str = ""
    partners: dict[str, Partner] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.address.split("/?", 1)[0]


#: The organisations the coördinator admits: (label, name, ring, party, roles).
CAST = (("mw", "Maatschappelijk Werk Amersfoort", "core", "formal", ("professional-secrecy",)),
        ("thuiszorg", "Thuiszorg Amersfoort", "core", "formal", ()),
        ("bezoekwerk", "Kerkelijk Bezoekwerk Soesterkwartier", "core", "informal", ()),
        ("huisarts", "Huisartsenpraktijk Soesterkwartier", "shell", "formal", ()),
        ("privacy", "Privacyfunctionaris Gemeente Amersfoort", "shell", "formal", ("auditor",)))


@pytest.fixture
async def soesterkwartier(tmp_path: Path) -> AsyncIterator[Soesterkwartier]:
    server = ServerProcess(tmp_path / "server")
    server.init()
    url = server.start()
    s = Soesterkwartier(server=server, url=url, tmp=tmp_path)
    try:
        welzijn = await make_partner(tmp_path, url, "welzijn",
                                     name="Welzijn Amersfoort (opbouwwerk)")
        await welzijn.close()
        for label, name, *_ in CAST:
            s.partners[label] = await make_partner(tmp_path, url, label, name=name)
        s.console, s.address = start_console(tmp_path / "welzijn")
        yield s
    finally:
        for p in s.partners.values():
            await p.close()
        if s.console is not None:
            s.console.terminate()
            s.console.wait(10)
        server.stop()


# ------------------------------------------------------------------ driving the browser

def _next_page(driver: Any, element: Any) -> None:
    """Click ``element`` and wait for the page that answers (forms answer with a redirect)."""
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    element.click()
    WebDriverWait(driver, WAIT).until(gone(old))
    wait_for(driver, "main")


def press(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    _next_page(driver, driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']"))


def follow(driver: Any, text: str) -> None:
    """Follow the link whose whole text is ``text`` (or, failing that, that starts with it)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.LINK_TEXT, text) or driver.find_elements(
        By.XPATH, f"//a[starts-with(normalize-space(), '{text}')]")
    assert found, f"no link {text!r} on {driver.current_url}"
    _next_page(driver, found[0])


def fill(driver: Any, element_id: str, text: str) -> None:
    box = by_id(driver, element_id)
    box.clear()
    box.send_keys(text)


def choose(driver: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, element_id)).select_by_value(value)


def tick(driver: Any, name: str, value: str, on: bool = True) -> None:
    box = driver.find_element("css selector", f"input[name='{name}'][value='{value}']")
    if box.is_selected() != on:
        box.click()


def main_text(driver: Any) -> str:
    return str(driver.find_element("tag name", "main").text)


# ------------------------------------------------------------------ the story

async def test_the_coordinator_plays_the_buurtnetwerk_story_entirely_in_the_console(
        soesterkwartier: Soesterkwartier, browser: Any, tmp_path: Path) -> None:
    s, d = soesterkwartier, browser
    p = s.partners

    # -- unlock, found the network, read the fingerprint aloud off the screen
    d.get(s.address)
    wait_for(d, "passphrase")
    fill(d, "passphrase", PASSPHRASE)
    press(d, "Ontgrendelen")
    follow(d, "Een netwerk oprichten")
    fill(d, "name", NEIGHBOURHOOD)
    choose(d, "kind", "neighbourhood")
    fill(d, "covenant", COVENANT)
    fill(d, "server_fingerprint", s.server.fingerprint)
    fill(d, "allow", "Soesterkwartier")
    press(d, "Richt het netwerk op")
    assert "Het netwerk is opgericht" in main_text(d)
    assert by_id(d, "network-role").text == "coördinator"
    heard = by_id(d, "my-fingerprint").text
    network = d.current_url.split("?")[0].rsplit("/", 1)[1]
    screenshot(d, "console-network", tmp_path)
    for partner in p.values():
        partner.trust(network, heard)

    # -- admit the partners, comparing what each read aloud; a swapped bundle is refused
    follow(d, "Deelnemers")
    swapped = tmp_path / "bundle-swapped.json"
    swapped.write_text(json.dumps(p["huisarts"].bundle()), encoding="utf-8")
    by_id(d, "bundle_file").send_keys(str(swapped))
    choose(d, "ring", "shell")
    fill(d, "fingerprint", p["thuiszorg"].fingerprint)       # another organisation's
    press(d, "Vergelijken en toelaten")
    assert "groepen verschillen" in by_id(d, "comparison").text
    assert "NEE" in by_id(d, "comparison").text
    refused = console_errors(d)          # the refusal is a 422 page; nothing else went wrong
    assert len(refused) == 1 and "members/admit" in refused[0] and "422" in refused[0]
    for label, name, ring, party, roles in CAST:
        bundle = tmp_path / f"bundle-{label}.json"
        bundle.write_text(json.dumps(p[label].bundle()), encoding="utf-8")
        by_id(d, "bundle_file").send_keys(str(bundle))
        choose(d, "ring", ring)
        choose(d, "party", party)
        for role in roles:
            tick(d, "roles", role)
        fill(d, "fingerprint", p[label].fingerprint)
        press(d, "Vergelijken en toelaten")
        assert by_id(d, "admitted").text.startswith(f"{name} is toegelaten"), main_text(d)
        await p[label].networks.accept_covenant(network, COVENANT)
        await p[label].sync(network)
    table = by_id(d, "members").text
    assert all(name in table for _l, name, *_r in CAST)
    assert "kern" in table and "schil" in table
    screenshot(d, "console-members", tmp_path)

    # -- home care's consult, shared with the GP's practice in the schil
    consult = await p["thuiszorg"].cases.consult(network, CONSULT_INTAKE)
    await p["huisarts"].sync(network)
    assert not p["huisarts"].cases.all(network)
    follow(d, "Casussen")
    follow(d, "Nu bijwerken")            # the list asks the server at most every 15 s
    follow(d, consult[:8])
    assert by_id(d, "summary-text").text == CONSULT_INTAKE["summary"]
    follow(d, "Delen met een deelnemer")
    choose(d, "partner", p["huisarts"].key_id)
    fill(d, "share_reason", "medicatievraag")
    press(d, "Deel de casus")
    await p["huisarts"].sync(network)
    assert p["huisarts"].cases.get(network, consult).state["summary"] == CONSULT_INTAKE["summary"]

    # -- the card, the volunteer driver's anonymous signal and the coördinator's answer
    follow(d, "Netwerk")
    tick(d, "signaller_kinds", "volunteer-driver")
    press(d, "Publiceer de kaart")
    intake = by_id(d, "intake-address").text
    assert intake.startswith(f"{s.url}/intake/{network}#vingerafdruk=")
    card, _ = await fetch_card(s.url, network, fingerprint=heard)
    ticket = await anonymous_signal(card, DRIVER_CONCERN, urgency="medium",
                                    signaller_kind="volunteer-driver")
    follow(d, "Signalen")
    assert "Signalen: 1" in main_text(d)
    follow(d, f"Signaal {ticket.signal[:8]}")
    assert by_id(d, "concern").text == DRIVER_CONCERN
    choose(d, "status", "taken-up")
    fill(d, "message", FEEDBACK)
    press(d, "Terugkoppeling versturen")
    status = await anonymous_status(ticket, card)
    assert status.status == "taken-up" and status.messages == [FEEDBACK]

    # -- social work brings in the man with his consent; the coördinator grants the
    #    visiting service his name and address, and the policy refuses his BSN first
    man = await p["mw"].cases.create(network, MAN_INTAKE, identity=MAN)
    consent = await p["mw"].disclosure.record_consent(
        network, man, classes=("name", "address", "official"), parties=("formal", "informal"),
        purpose="bezoek en afstemming van zorg", valid_days=365,
        evidence=b"toestemmingsformulier, ondertekend 2026")
    follow(d, "Casussen")
    follow(d, "Nu bijwerken")
    follow(d, man[:8])
    assert by_id(d, "summary-text").text == MAN_INTAKE["summary"]
    assert "Hendrik" not in main_text(d)                    # the kern holds no name
    follow(d, "Toestemming en inzage")
    choose(d, "grantee", p["bezoekwerk"].key_id)
    for cls in ("name", "address", "official"):
        tick(d, "grant_classes", cls)
    choose(d, "grant_consent", consent)
    fill(d, "grant_reason", "wekelijks bezoek")
    press(d, "Toets aan het beleid")
    decision = by_id(d, "decision").text
    assert "Het beleid weigert deze vrijgave" in decision
    assert "informal-class-not-allowed" in decision
    screenshot(d, "console-grant-refused", tmp_path)
    await p["bezoekwerk"].sync(network)
    assert not [g for g in await p["bezoekwerk"].disclosure.grants(network) if g.case == man]
    tick(d, "grant_classes", "official", on=False)
    press(d, "Vrijgeven")
    assert by_id(d, "granted").text
    grants = [g for g in await p["bezoekwerk"].disclosure.grants(network) if g.case == man]
    assert [sorted(g.classes) for g in grants] == [["address", "name"]]
    released = await p["bezoekwerk"].disclosure.release(network, grants[0].grant)
    assert released.classes["name"] == MAN["name"]
    assert "official" not in released.classes

    # -- the audit log verifies, and the man's subject access report shows the release
    follow(d, "Auditlog")
    press(d, "Controleer het auditlog")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, WAIT).until(lambda drv: "Het auditlog klopt" in drv.page_source)
    d.get(f"{s.origin}/n/{network}/cases/{man}")
    wait_for(d, "summary-text")
    follow(d, "Inzageverslag")
    releases = d.find_element("css selector", "section[aria-labelledby='releases-title']").text
    assert "Kerkelijk Bezoekwerk Soesterkwartier" in releases
    assert console_errors(d) == []

    # -- what the server kept: ciphertext only
    stored = b"".join(f.read_bytes() for f in s.server.data.glob("schakel.db*"))
    for word in ("Hendrik", "de Vries", "Soesterweg", "111222333", DRIVER_CONCERN[:40],
                 str(MAN_INTAKE["summary"])[:40], str(CONSULT_INTAKE["summary"])[:40]):
        assert word.encode() not in stored, word
