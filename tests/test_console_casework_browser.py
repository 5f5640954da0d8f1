"""A case's actions in a real browser (cli/console/casework.py, ADR 0044): the coördinator's
console, served in this process over a real partner home against a real server, records
formal help in headless Chromium (Selenium through Debian's chromedriver, the pattern of
tests/test_console_browser.py): "nvt" as the reason informal help is not possible is
refused with the rule explained and the form kept, then the reason in words is added.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.client_harness import PASSPHRASE, running_server, standard_network
from tests.test_console import OLDER_MAN
from tests.test_intake_browser import (  # noqa: F401  (browser: the shared fixture)
    BROWSER, IN_CI, MISSING, WAIT, browser, by_id, console_errors, gone, screenshot, wait_for,
)

pytestmark = pytest.mark.skipif(not BROWSER and not IN_CI, reason=MISSING)

REASON_IN_WORDS = "Open been vraagt wondzorg door een verpleegkundige."


async def test_formal_help_with_a_placeholder_reason_is_refused_then_added_in_the_browser(
        browser: Any, tmp_path: Path) -> None:
    from aiohttp import web
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from schakel.cli.commands.console import free_port
    from schakel.cli.console.app import make_app
    from schakel.cli.console.guard import LOOPBACK, Gate

    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        case = await cast.coordinator.cases.create(cast.network, OLDER_MAN)
        gate = Gate(port=free_port(LOOPBACK))
        runner = web.AppRunner(make_app(Path(cast.coordinator.session.home.path), None, gate),
                               access_log=None)
        page = f"{gate.origin}/n/{cast.network}/cases/{case}"

        def add_action(reason: str) -> None:
            Select(by_id(browser, "action-help-type")).select_by_value("formal")
            Select(by_id(browser, "action-relation")).select_by_value("complementary")
            field = by_id(browser, "action-reason")
            field.clear()
            field.send_keys(reason)
            old = browser.find_element("tag name", "html")
            browser.find_element(
                "css selector", f"form[action='/n/{cast.network}/cases/{case}/action'] button"
            ).click()
            WebDriverWait(browser, WAIT).until(gone(old))
            wait_for(browser, "main")

        def drive() -> tuple[str, str, str]:
            browser.get(gate.address())
            wait_for(browser, "passphrase")
            by_id(browser, "passphrase").send_keys(PASSPHRASE)
            browser.find_element("css selector", "form[action='/unlock'] button").click()
            wait_for(browser, "main")
            browser.get(page)
            wait_for(browser, "action-description")
            by_id(browser, "action-description").send_keys(
                "Wijkverpleging komt twee keer per week.")
            add_action("nvt")
            refusal = browser.find_element("css selector", "section.refusal[role='alert']").text
            kept = by_id(browser, "action-description").get_attribute("value")
            screenshot(browser, "console-action-refused", tmp_path)
            add_action(REASON_IN_WORDS)
            return refusal, kept, by_id(browser, "actions").find_element(
                "xpath", "following-sibling::ol").text

        try:
            await runner.setup()
            await web.TCPSite(runner, LOOPBACK, gate.port).start()
            refusal, kept, actions = await asyncio.to_thread(drive)
            assert "formal-action-reason-says-nothing" in refusal
            assert "Informal where possible, professional where necessary" in refusal
            assert kept == "Wijkverpleging komt twee keer per week."
            assert REASON_IN_WORDS in actions and "formal (professional) help" in actions
            # The refusal is a page answered with 422 by design; nothing else (no CSP
            # violation, no failed request) may be in the browser's console.
            assert [e for e in console_errors(browser) if "status of 422" not in e] == []
            await cast.formal.sync(cast.network)
            view = cast.formal.cases.get(cast.network, case)
            assert [a["informal_not_possible"] for a in view.state["actions"]] == [REASON_IN_WORDS]
        finally:
            await runner.cleanup()
            await cast.close()
