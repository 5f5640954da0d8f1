"""The console in a real browser (cli/console/, ADR 0040): a coördinator runs
``schakel console`` as a child process over its home, against a real ``schakel serve``
(cli/serverprocess.py), and handles a signal end to end in headless Chromium driven by
Selenium through Debian's chromedriver (the pattern of tests/test_intake_browser.py).

Set ``SCHAKEL_SCREENSHOTS=<folder>`` to keep the screenshots (docs/screenshots/
console-inbox.png was made so).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.serverprocess import ServerProcess
from schakel.client import Partner
from schakel.client.card import anonymous_signal, anonymous_status, read_card
from tests.client_harness import COVENANT, PASSPHRASE, make_partner, network_policy
from tests.test_intake_browser import (  # noqa: F401  (browser: the shared fixture)
    BROWSER, IN_CI, MISSING, WAIT, browser, by_id, console_errors, gone, screenshot, wait_for,
)

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)

CONCERN = ("Mevrouw De Wit van de Kruiskamp haalt haar post niet meer op en de buren zien "
           "haar al een week niet.")
MESSAGE = "Dank u wel, we gaan deze week bij haar langs."
SUMMARY = "Oudere vrouw lijkt zich terug te trekken; post blijft liggen."
NOTE = "Buurtvrijwilliger gaat donderdag langs met de koffiekar."


@dataclass
class Buurtnetwerk:
    server: ServerProcess
    home: Path
    network: str
    card: Any
    console: subprocess.Popen[str] | None = None
    address: str = ""


def start_console(home: Path) -> tuple[subprocess.Popen[str], str]:
    """``schakel console --no-browser`` over ``home``; returns it and the address it printed."""
    env = {**os.environ, "SCHAKEL_LANG": "nl", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "console", "--home", str(home),
                             "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
    return proc, line[line.index("http://"):].strip()


@pytest.fixture
async def buurtnetwerk(tmp_path: Path) -> AsyncIterator[Buurtnetwerk]:
    server = ServerProcess(tmp_path / "server")
    server.init()
    url = server.start()
    coordinator: Partner | None = None
    b: Buurtnetwerk | None = None
    try:
        coordinator = await make_partner(tmp_path, url, "welzijn",
                                         name="Welzijn Amersfoort (regie)")
        network = await coordinator.networks.create(
            name="Buurtnetwerk 55+ Kruiskamp", kind="neighbourhood", covenant=COVENANT,
            server_fingerprint=server.fingerprint,
            policy=network_policy("neighbourhood", anonymous_signals=True))
        card = read_card(await coordinator.cards.publish(
            network, valid_until=datetime.now(UTC) + timedelta(days=30)),
            fingerprint=str(coordinator.fingerprint))
        await coordinator.close()
        coordinator = None
        b = Buurtnetwerk(server=server, home=tmp_path / "welzijn", network=network, card=card)
        b.console, b.address = start_console(b.home)
        yield b
    finally:
        if coordinator is not None:
            await coordinator.close()
        if b is not None and b.console is not None:
            b.console.terminate()
            b.console.wait(10)
        server.stop()


def _then_next_page(driver: Any, element: Any) -> None:
    """Click ``element`` and wait until the browser has left the page it was on, so
    that what the test reads next is the answer (a form answers with a redirect)."""
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    element.click()
    WebDriverWait(driver, WAIT).until(gone(old))
    wait_for(driver, "main")


def submit(driver: Any, button_text: str) -> None:
    from selenium.webdriver.common.by import By

    _then_next_page(driver, driver.find_element(
        By.XPATH, f"//button[normalize-space()='{button_text}']"))


def link(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    _then_next_page(driver, driver.find_element(By.PARTIAL_LINK_TEXT, text))


async def test_a_coordinator_handles_a_signal_end_to_end_in_the_console(
        buurtnetwerk: Buurtnetwerk, browser: Any, tmp_path: Path) -> None:
    """Unlock, choose the network, read the signal in the inbox, answer the signaller,
    turn the signal into a case, find it in the list and add a note; every screen in
    Dutch, the start token gone from the address bar, and no CSP violation."""
    from selenium.webdriver.support.ui import Select

    b = buurtnetwerk
    ticket = await anonymous_signal(b.card, CONCERN, signaller_kind="neighbour")

    browser.get(b.address)
    wait_for(browser, "passphrase")
    assert "token=" not in browser.current_url
    assert "Ontgrendel uw omgeving" in browser.page_source
    by_id(browser, "passphrase").send_keys(PASSPHRASE)
    submit(browser, "Ontgrendelen")

    assert "Buurtnetwerk 55+ Kruiskamp" in browser.find_element("tag name", "main").text
    link(browser, "Signalen")
    assert "Signalen: 1" in browser.page_source
    screenshot(browser, "console-inbox", tmp_path)
    link(browser, f"Signaal {ticket.signal[:8]}")
    assert by_id(browser, "concern").text == CONCERN

    Select(by_id(browser, "status")).select_by_value("received")
    by_id(browser, "message").send_keys(MESSAGE)
    submit(browser, "Terugkoppeling versturen")
    wait_for(browser, "concern")
    status = await anonymous_status(ticket, b.card)
    assert status.messages == [MESSAGE]

    by_id(browser, "summary").send_keys(SUMMARY)
    Select(by_id(browser, "age_band")).select_by_value("75-84")
    by_id(browser, "neighbourhood").send_keys("Kruiskamp")
    browser.find_element("css selector", "input[name=domains][value=loneliness]").click()
    Select(by_id(browser, "care_status")).select_by_value("misses-care")
    submit(browser, "Casus aanmaken")
    wait_for(browser, "summary-text")
    assert by_id(browser, "summary-text").text == SUMMARY
    case = browser.current_url.rsplit("/", 1)[1]
    assert (await anonymous_status(ticket, b.card)).status == "taken-up"

    link(browser, "Casussen")
    assert case[:8] in browser.find_element("tag name", "table").text
    link(browser, case[:8])
    by_id(browser, "text").send_keys(NOTE)
    submit(browser, "Aantekening toevoegen")
    wait_for(browser, "summary-text")
    assert NOTE in browser.find_element("css selector", "ol.events").text
    assert console_errors(browser) == []
    stored = b"".join(p.read_bytes() for p in b.server.data.glob("schakel.db*"))
    for word in ("De Wit", "koffiekar", "post blijft liggen"):
        assert word.encode() not in stored, word


async def test_the_audit_log_is_verified_in_the_console_while_the_page_refreshes_itself(
        buurtnetwerk: Buurtnetwerk, browser: Any, tmp_path: Path) -> None:
    """The coördinator verifies the network's audit log from the console: the page says
    how far the check got and refreshes itself (a meta refresh: no script, no CSP
    violation), then shows the verified head and the entries, in Dutch."""
    from selenium.webdriver.support.ui import WebDriverWait

    b = buurtnetwerk
    browser.get(b.address)
    wait_for(browser, "passphrase")
    by_id(browser, "passphrase").send_keys(PASSPHRASE)
    submit(browser, "Ontgrendelen")
    link(browser, "Signalen")
    link(browser, "Auditlog")
    submit(browser, "Controleer het auditlog")
    WebDriverWait(browser, WAIT).until(lambda d: "Het auditlog klopt" in d.page_source)
    main = browser.find_element("tag name", "main").text
    assert "Omvang" in main and "Wortel" in main
    assert "gecontroleerd" in browser.find_element("tag name", "table").text
    screenshot(browser, "console-audit", tmp_path)
    assert console_errors(browser) == []


async def test_an_auditor_sees_a_tampered_audit_log_fail_in_the_console(
        browser: Any, tmp_path: Path) -> None:
    """Behind the tamper proxy (tests/tamper_proxy.py) the server rewrites an audit entry;
    the auditor's console, served in this process, shows in Chromium that the log does not
    verify, which misbehaviour it is and what it means, and no verified head."""
    import asyncio

    from aiohttp import web
    from selenium.webdriver.support.ui import WebDriverWait

    from schakel.cli.commands.console import free_port
    from schakel.cli.console.app import make_app
    from schakel.cli.console.guard import LOOPBACK, Gate
    from tests.client_harness import standard_network
    from tests.tamper_proxy import rewrite_audit_entry, tampered_server

    async with tampered_server(tmp_path) as ts:
        cast = await standard_network(tmp_path, ts.url)
        gate = Gate(port=free_port(LOOPBACK))
        runner = web.AppRunner(make_app(Path(cast.auditor.session.home.path), None, gate),
                               access_log=None)
        try:
            await runner.setup()
            await web.TCPSite(runner, LOOPBACK, gate.port).start()
            rewrite_audit_entry(ts.proxy, cast.network, 0)

            def drive() -> tuple[str, str]:
                browser.get(gate.address())
                wait_for(browser, "passphrase")
                by_id(browser, "passphrase").send_keys(PASSPHRASE)
                browser.find_element("css selector", "form[action='/unlock'] button").click()
                wait_for(browser, "main")
                browser.get(f"{gate.origin}/n/{cast.network}/audit")
                old = browser.find_element("tag name", "html")
                browser.find_element(
                    "css selector", f"form[action='/n/{cast.network}/audit/verify'] button").click()
                WebDriverWait(browser, WAIT).until(lambda d: old != d.find_element(
                    "tag name", "html") and "failed-title" in d.page_source)
                return by_id(browser, "failed-title").text, browser.find_element(
                    "css selector", "section.refusal").text

            title, failure = await asyncio.to_thread(drive)
            assert ts.proxy.hits() >= 1
            assert title
            assert "audit-entry-rewritten" in failure
            assert by_id(browser, "main").text.count(title) == 1
            assert "head-title" not in browser.page_source      # no verified head is shown
            screenshot(browser, "console-audit-failed", tmp_path)
            assert console_errors(browser) == []
        finally:
            await runner.cleanup()
            await cast.close()
