"""The members screen in a real browser (cli/console/members.py, ADR 0042): the
coördinator's console, served in this process over a real partner home against a real
server, admits a partner in headless Chromium (Selenium through Debian's chromedriver, the
pattern of tests/test_console_browser.py): the key bundle chosen as a file, a misheard
fingerprint refused with both fingerprints compared group by group, then the right one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.client_harness import PASSPHRASE, make_partner, running_server, standard_network
from tests.test_intake_browser import (  # noqa: F401  (browser: the shared fixture)
    BROWSER, IN_CI, MISSING, WAIT, browser, by_id, console_errors, gone, screenshot, wait_for,
)

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)


async def test_a_coordinator_admits_a_partner_comparing_the_fingerprint_in_the_browser(
        browser: Any, tmp_path: Path) -> None:
    from aiohttp import web
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from schakel.cli.commands.console import free_port
    from schakel.cli.console.app import make_app
    from schakel.cli.console.guard import LOOPBACK, Gate

    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        newcomer = await make_partner(tmp_path, url, "ggd", name="GGD Regio Utrecht")
        bundle = tmp_path / "ggd-bundle.json"
        bundle.write_text(json.dumps(newcomer.bundle()), encoding="utf-8")
        groups = str(newcomer.fingerprint).split()
        misheard = groups[:3] + [f"{(int(groups[3]) + 1) % 100000:05d}"] + groups[4:]
        gate = Gate(port=free_port(LOOPBACK))
        runner = web.AppRunner(make_app(Path(cast.coordinator.session.home.path), None, gate),
                               access_log=None)
        members = f"{gate.origin}/n/{cast.network}/members"

        def admit(fingerprint: str) -> None:
            by_id(browser, "bundle_file").send_keys(str(bundle))
            Select(by_id(browser, "ring")).select_by_value("shell")
            Select(by_id(browser, "party")).select_by_value("formal")
            field = by_id(browser, "fingerprint")
            field.clear()
            field.send_keys(fingerprint)
            old = browser.find_element("tag name", "html")
            browser.find_element(
                "css selector", f"form[action='/n/{cast.network}/members/admit'] button").click()
            WebDriverWait(browser, WAIT).until(gone(old))
            wait_for(browser, "main")

        def drive() -> tuple[str, list[str], str]:
            browser.get(gate.address())
            wait_for(browser, "passphrase")
            by_id(browser, "passphrase").send_keys(PASSPHRASE)
            browser.find_element("css selector", "form[action='/unlock'] button").click()
            wait_for(browser, "main")
            browser.get(members)
            wait_for(browser, "fingerprint")
            admit(" ".join(misheard))
            refusal = browser.find_element("css selector", "section.refusal[role='alert']").text
            differs = [row.text for row in browser.find_elements(
                "css selector", "#comparison tr.differs")]
            screenshot(browser, "console-admit-refused", tmp_path)
            admit(" ".join(groups))
            return refusal, differs, by_id(browser, "admitted").text

        try:
            await runner.setup()
            await web.TCPSite(runner, LOOPBACK, gate.port).start()
            refusal, differs, admitted = await asyncio.to_thread(drive)
            assert refusal
            assert len(differs) == 1
            assert groups[3] in differs[0] and misheard[3] in differs[0]
            assert "GGD Regio Utrecht" in admitted
            assert "GGD Regio Utrecht" in by_id(browser, "members").text
            # The refusal is a page answered with 422 by design; nothing else (no CSP
            # violation, no failed request) may be in the browser's console.
            assert [e for e in console_errors(browser) if "status of 422" not in e] == []
            await cast.formal.sync(cast.network)
            assert newcomer.key_id in {m["key_id"] for m in
                                       cast.formal.networks.members(cast.network)}
        finally:
            await runner.cleanup()
            await newcomer.close()
            await cast.close()
