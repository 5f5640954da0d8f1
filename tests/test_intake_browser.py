"""The resident's intake page in a real browser against a real ``schakel serve``
(server/routes/intake.py, server/static/intake.js; docs/protocol.md §14.3 "Intake page",
§N.11, §C.6-§C.8; ADR 0038).

The Steunpunt Eenzaamheid Zeist practice: a neighbour who worries about the man next door
opens the address on the steunpunt's leaflet, types the coordinator's fingerprint from the
leaflet, writes the signal, and keeps the ontvangstcode; the coordinator reads the signal
with the library and feeds back what it did; the neighbour reads that on the page.
Headless Chromium from Debian (``chromium``, ``chromium-driver``) is driven by Selenium
through the system chromedriver, never a driver Selenium Manager would download.  The
server is a child process (cli/serverprocess.py) on a real SQLite file; the coordinator is
the real client library (tests/client_harness.py).  Each test is one rule, named after it.

Set ``SCHAKEL_SCREENSHOTS=<folder>`` to keep the screenshots the tests take
(docs/screenshots/intake.png was made so).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.serverprocess import ServerProcess
from schakel.client import Partner
from schakel.keys import Fingerprint, PartnerKeys
from tests.client_harness import COVENANT, make_partner, network_policy

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER = CHROMIUM is not None and os.access(CHROMEDRIVER, os.X_OK)
#: CI (.ci/run, CI=true) installs the browser: there a missing one fails instead of skipping.
IN_CI = os.environ.get("CI") == "true"
MISSING = ("Debian's chromium and chromium-driver are not installed "
           "(apt-get install chromium chromium-driver; .ci/run installs them)")

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)

CONCERN = ("Meneer Jansen van nummer 12 aan de Slotlaan zit sinds zijn vrouw overleed alleen "
           "thuis; de gordijnen blijven dicht en hij zegt niemand meer te zien.")
MESSAGE = "Dank u wel. Een vrijwilliger van het steunpunt gaat deze week bij hem langs."
WAIT = 20.0


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through /usr/bin/chromedriver, offline: Selenium Manager is
    never asked for a driver or a browser (SE_OFFLINE, explicit paths)."""
    if not BROWSER:
        pytest.fail(f"CI must run the browser tests: {MISSING}")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1000,1400", "--lang=nl-NL",
                     "--no-first-run", "--disable-extensions", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, element_id: str) -> Any:
    """The element, once it is shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(ec.visibility_of_element_located((By.ID, element_id)))


def gone(old: Any) -> Any:
    """A wait condition: the element ``old`` (the page's ``<html>`` before a click) has
    left the document, so the page now shown is the answer.  Chromium may answer a
    question about an element of a page being replaced with "does not belong to the
    document" instead of "stale"; both mean it is gone."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def left(_driver: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    return left


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id)


def console_errors(driver: Any) -> list[str]:
    """Messages of level SEVERE in the page's console: a Content-Security-Policy violation,
    a script error, a failed request.  The browser's own request for ``/favicon.ico``
    (the page names no icon, and the server has none) is left out."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "/favicon.ico " not in entry["message"]]


def screenshot(driver: Any, name: str, tmp_path: Path) -> None:
    """Save a screenshot (a PNG) in ``tmp_path``, and in ``$SCHAKEL_SCREENSHOTS`` if set."""
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("SCHAKEL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(keep) / path.name)


# ------------------------------------------------------------------ the steunpunt


class Steunpunt:
    """A real server process and the coordinator of a network on it with a card."""

    def __init__(self, server: ServerProcess, coordinator: Partner, network: str) -> None:
        self.server, self.coordinator, self.network = server, coordinator, network

    @property
    def page(self) -> str:
        return f"{self.server.url}/intake/{self.network}"

    @property
    def fingerprint(self) -> str:
        return str(self.coordinator.fingerprint)

    def signal_rows(self) -> int:
        with sqlite3.connect(f"file:{self.server.data / 'schakel.db'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM signals").fetchone()[0])


async def found(tmp_path: Path) -> Steunpunt:
    server = ServerProcess(tmp_path / "server")
    server.init()
    url = server.start()
    coordinator = await make_partner(tmp_path, url, "steunpunt",
                                     name="Steunpunt Eenzaamheid Zeist (regie)")
    network = await coordinator.networks.create(
        name="Steunpunt Eenzaamheid Zeist", kind="neighbourhood", covenant=COVENANT,
        server_fingerprint=server.fingerprint,
        policy=network_policy("neighbourhood", anonymous_signals=True))
    await coordinator.cards.publish(network, valid_until=datetime.now(UTC) + timedelta(days=365),
                                    signaller_kinds=("neighbour", "volunteer-driver", "resident"))
    return Steunpunt(server, coordinator, network)


@pytest.fixture
async def steunpunt(tmp_path: Path) -> Any:
    s = await found(tmp_path)
    try:
        yield s
    finally:
        await s.coordinator.close()
        s.server.stop()


def check_the_card(driver: Any, s: Steunpunt, fingerprint: str) -> None:
    driver.get(s.page)
    field = wait_for(driver, "fingerprint")
    field.send_keys(fingerprint)
    by_id(driver, "check").click()


def write_the_signal(driver: Any, concern: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait_for(driver, "step-send")
    Select(by_id(driver, "kind")).select_by_value("neighbour")
    by_id(driver, "concern").send_keys(concern)
    by_id(driver, "urgency-high").click()
    by_id(driver, "send").click()


# ------------------------------------------------------------------ the tests


async def test_a_resident_signals_through_the_page_and_reads_the_feedback(
        steunpunt: Steunpunt, browser: Any, tmp_path: Path) -> None:
    """The page checks the card under the fingerprint the resident typed, shows the server
    fingerprint, seals and sends the signal, and shows the ontvangstcode; the coordinator
    reads exactly what was typed with the library and gives feedback; the page, opened
    again later with only the code, shows the signed status and the sealed message."""
    s = steunpunt
    check_the_card(browser, s, s.fingerprint)
    wait_for(browser, "card-facts")
    assert by_id(browser, "fact-name").text == "Steunpunt Eenzaamheid Zeist"
    assert by_id(browser, "fact-server").text == s.server.fingerprint
    screenshot(browser, "intake", tmp_path)

    write_the_signal(browser, CONCERN)
    wait_for(browser, "step-receipt")
    code = by_id(browser, "receipt-code").get_attribute("value")
    receipt, signal, _ = code.split(".")
    assert len(receipt) == 43 and len(signal) == 22
    assert by_id(browser, "concern").get_attribute("value") == ""
    assert s.signal_rows() == 1

    [got] = await s.coordinator.signals.received(s.network)
    assert (got.signal, got.source, got.sender) == (signal, "anonymous", None)
    assert got.content["concern"] == CONCERN
    assert (got.content["signaller_kind"], got.content["urgency"],
            got.content["contact_back"]) == ("neighbour", "high", True)
    await s.coordinator.signals.feedback(s.network, signal, "taken-up", MESSAGE)

    browser.get("about:blank")                 # later: nothing kept but the code
    check_the_card(browser, s, s.fingerprint)
    ticket = wait_for(browser, "ticket")
    ticket.send_keys(code)
    by_id(browser, "read-feedback").click()
    wait_for(browser, "feedback")
    assert by_id(browser, "feedback-status").text == "Opgepakt"
    assert MESSAGE in by_id(browser, "feedback-list").text
    screenshot(browser, "intake-feedback", tmp_path)
    assert console_errors(browser) == []


async def test_the_servers_database_holds_no_plaintext_of_a_signal_sent_through_the_page(
        steunpunt: Steunpunt, browser: Any) -> None:
    """After the page sent the signal, neither the server's SQLite file (with its WAL) nor
    its log holds any part of the text: the server stored a sealed box only."""
    s = steunpunt
    check_the_card(browser, s, s.fingerprint)
    write_the_signal(browser, CONCERN)
    wait_for(browser, "step-receipt")
    assert s.signal_rows() == 1
    stored = b"".join(p.read_bytes() for p in s.server.data.glob("schakel.db*"))
    for word in ("Jansen", "Slotlaan", "gordijnen", "niemand meer te zien"):
        assert word.encode() not in stored, word
        assert word not in s.server.output(), word
    with sqlite3.connect(f"file:{s.server.data / 'schakel.db'}?mode=ro", uri=True) as db:
        (row,) = db.execute("SELECT * FROM signals").fetchall()
    assert "Jansen" not in json.dumps([str(v) for v in row])


async def test_the_page_refuses_a_card_with_a_bad_signature_and_sends_nothing(
        steunpunt: Steunpunt, browser: Any) -> None:
    """A server that serves the coordinator's card with another box key in it (to read the
    signals itself): the signature no longer holds, the page says so and offers no form;
    no signal reaches the server."""
    s = steunpunt
    impostor = PartnerKeys.generate()
    db = sqlite3.connect(s.server.data / "schakel.db", isolation_level=None, timeout=30)
    try:
        (raw,) = db.execute("SELECT envelope FROM cards WHERE network = ?", (s.network,)).fetchone()
        envelope = json.loads(raw)
        envelope["signed"]["intake"]["box"] = impostor.public.box.b64()
        db.execute("UPDATE cards SET envelope = ? WHERE network = ?",
                   (json.dumps(envelope), s.network))
    finally:
        db.close()
    check_the_card(browser, s, s.fingerprint)
    refusal = wait_for(browser, "refusal")
    assert "handtekening klopt niet" in refusal.text
    assert not by_id(browser, "step-send").is_displayed()
    assert not by_id(browser, "card-facts").is_displayed()
    assert s.signal_rows() == 0


async def test_the_page_refuses_a_card_under_another_fingerprint_than_the_leaflets(
        steunpunt: Steunpunt, browser: Any) -> None:
    """The resident typed a fingerprint that is not the card's coordinator's (a leaflet of
    another network, a card some impostor signed): refused before anything is sealed."""
    s = steunpunt
    stranger = str(Fingerprint.of(PartnerKeys.generate().public.sign))
    check_the_card(browser, s, stranger)
    refusal = wait_for(browser, "refusal")
    assert "niet ondertekend door de coördinator" in refusal.text
    assert not by_id(browser, "step-send").is_displayed()
    assert s.signal_rows() == 0


async def test_the_page_runs_under_its_content_security_policy_without_violations(
        steunpunt: Steunpunt, browser: Any) -> None:
    """The page, its script and libsodium.js run with the strict policy the server sends:
    the check completes and the console shows no violation or script error."""
    s = steunpunt
    browser.get_log("browser")                 # drop what earlier pages logged
    check_the_card(browser, s, s.fingerprint)
    wait_for(browser, "card-facts")
    assert console_errors(browser) == []
    policy = browser.execute_script(
        "return performance.getEntriesByType('navigation')[0].name")
    assert policy == s.page


async def test_the_page_shows_no_feedback_the_coordinator_did_not_sign(
        steunpunt: Steunpunt, browser: Any) -> None:
    """A server that turns the coordinator's "niet opgepakt" into "opgepakt" (the signed
    statement and its own summary both): the signature no longer holds, and the page shows
    a refusal instead of any status."""
    s = steunpunt
    check_the_card(browser, s, s.fingerprint)
    write_the_signal(browser, CONCERN)
    wait_for(browser, "step-receipt")
    code = by_id(browser, "receipt-code").get_attribute("value")
    signal = code.split(".")[1]
    await s.coordinator.signals.received(s.network)
    await s.coordinator.signals.feedback(s.network, signal, "not-taken-up", MESSAGE)
    db = sqlite3.connect(s.server.data / "schakel.db", isolation_level=None, timeout=30)
    try:
        (row_id, raw), = db.execute("SELECT id, envelope FROM feedback").fetchall()
        envelope = json.loads(raw)
        envelope["signed"]["status"] = "taken-up"
        db.execute("UPDATE feedback SET envelope = ? WHERE id = ?", (json.dumps(envelope), row_id))
        db.execute("UPDATE signals SET status = 'taken-up'")
    finally:
        db.close()
    by_id(browser, "read-feedback").click()
    refusal = wait_for(browser, "refusal")
    assert "handtekening klopt niet" in refusal.text
    assert not by_id(browser, "feedback").is_displayed()
