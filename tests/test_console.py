"""The console (``schakel console``, cli/console/; ADR 0040) against the real aiohttp
app, with the aiohttp test client, over a real partner home talking to a real server
(tests/client_harness.py).

The first tests are the console's refusals (ADR 0040 §2, threat rows CO-1..CO-6): each
is one rule, named after it.  The last ones are its screens: the coördinator reads a
signal, answers it, turns it into a case, and adds a note; the PII guard's refusal shows
the span it refuses and sends nothing; the audit screen verifies the log, and behind the
tamper proxy (tests/tamper_proxy.py) shows a rewritten entry as a failure (CO-7).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from schakel.cli.console.app import make_app
from schakel.cli.console.guard import COOKIE, Gate
from schakel.cli.main import main
from tests.client_harness import PASSPHRASE, running_server, standard_network


#: The anonymous intake of the cases the console's tests add notes to and close.
OLDER_MAN = {"kind": "intake", "summary": "Zorgen om een oudere man.", "age_band": "75-84",
             "neighbourhood": "Soesterkwartier", "domains": ["loneliness"], "severity": "low",
             "care_status": "known", "source": "partner", "complex": False}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    client: TestClient
    gate: Gate
    home: Path
    network: str = ""
    url: str = ""

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.gate.origin}

    async def enter(self) -> None:
        answer = await self.client.get(f"/?token={self.gate.token}", allow_redirects=False)
        assert answer.status == 303

    async def csrf(self, path: str = "/") -> str:
        text = await (await self.client.get(path)).text()
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        assert found, text
        return found.group(1)

    async def post(self, path: str, data: dict[str, Any], *, page: str | None = None,
                   **kw: Any) -> Any:
        form = {"csrf": await self.csrf(page or "/"), **data}
        return await self.client.post(path, data=form, headers=self.origin,
                                      allow_redirects=kw.pop("allow_redirects", True), **kw)

    async def unlock(self) -> None:
        answer = await self.post("/unlock", {"passphrase": PASSPHRASE})
        assert answer.status == 200, await answer.text()


async def _console(home: Path, server: str | None = None) -> AsyncIterator[Console]:
    gate = Gate(port=_port())
    app = make_app(home, server, gate)
    client = TestClient(TestServer(app, host="127.0.0.1", port=gate.port))
    await client.start_server()
    try:
        yield Console(client=client, gate=gate, home=home)
    finally:
        await client.close()


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Console]:
    """A console over a home that needs no server (the refusals come first)."""
    async for console in _console(tmp_path / "home"):
        yield console


# ------------------------------------------------------------------ refusals


def test_console_refuses_a_bind_address_other_than_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["console", "--home", str(tmp_path), "--bind", "0.0.0.0",
                                       "--no-browser"])
    assert result.exit_code == 2
    assert "127.0.0.1" in result.output


async def test_start_token_is_exchanged_for_an_httponly_samesite_strict_cookie_and_left_out_of_the_url(
        bare: Console) -> None:
    answer = await bare.client.get(f"/?token={bare.gate.token}", allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert bare.gate.token not in cookie
    page = await bare.client.get("/")
    assert page.status == 200
    assert "passphrase" in await page.text()


async def test_start_token_works_once(bare: Console) -> None:
    await bare.enter()
    bare.client.session.cookie_jar.clear()
    again = await bare.client.get(f"/?token={bare.gate.token}", allow_redirects=False)
    assert again.status == 403
    assert "Set-Cookie" not in again.headers


async def test_wrong_start_token_is_refused(bare: Console) -> None:
    answer = await bare.client.get("/?token=" + "A" * 43, allow_redirects=False)
    assert answer.status == 403
    assert "Set-Cookie" not in answer.headers
    assert not bare.gate.used        # a guess does not burn the real token


@pytest.mark.parametrize("path", ["/", "/static/console.css", "/n/AAAAAAAAAAAAAAAAAAAAAA/cases"])
async def test_request_without_session_is_refused(bare: Console, path: str) -> None:
    answer = await bare.client.get(path)
    assert answer.status == 403
    assert "passphrase" not in await answer.text()


async def test_forged_session_cookie_is_refused(bare: Console) -> None:
    await bare.enter()
    bare.client.session.cookie_jar.clear()
    answer = await bare.client.get("/", cookies={COOKIE: "x" * 43})
    assert answer.status == 403


async def test_foreign_host_header_is_refused_against_dns_rebinding(bare: Console) -> None:
    await bare.enter()
    for host in (f"evil.example:{bare.gate.port}", f"localhost:{bare.gate.port}",
                 "127.0.0.1"):
        answer = await bare.client.get("/", headers={"Host": host})
        assert answer.status == 403, host
    fresh = Gate(port=bare.gate.port)
    assert (await bare.client.get(f"/?token={fresh.token}",
                                  headers={"Host": "evil.example"})).status == 403


async def test_post_with_a_foreign_origin_is_refused(bare: Console) -> None:
    await bare.enter()
    csrf = await bare.csrf()
    answer = await bare.client.post("/unlock", data={"csrf": csrf, "passphrase": PASSPHRASE},
                                    headers={"Origin": "http://evil.example"})
    assert answer.status == 403


async def test_post_without_origin_is_refused(bare: Console) -> None:
    await bare.enter()
    csrf = await bare.csrf()
    answer = await bare.client.post("/unlock", data={"csrf": csrf, "passphrase": PASSPHRASE})
    assert answer.status == 403


@pytest.mark.parametrize("sent", [None, "", "wrong-token"])
async def test_post_without_the_sessions_csrf_token_is_refused(bare: Console,
                                                               sent: str | None) -> None:
    await bare.enter()
    await bare.csrf()
    data = {"passphrase": PASSPHRASE} | ({"csrf": sent} if sent is not None else {})
    answer = await bare.client.post("/unlock", data=data, headers=bare.origin)
    assert answer.status == 403


async def test_every_answer_carries_the_strict_security_headers(bare: Console) -> None:
    refused = await bare.client.get("/")
    await bare.enter()
    shown = await bare.client.get("/")
    missing = await bare.client.get("/nowhere")
    for answer in (refused, shown, missing):
        csp = answer.headers["Content-Security-Policy"]
        for part in ("default-src 'self'", "script-src 'none'", "frame-ancestors 'none'",
                     "form-action 'self'"):
            assert part in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        assert answer.headers["Cache-Control"] == "no-store"
    assert "<script" not in await shown.text() and "style=" not in await shown.text()


async def test_pages_are_dutch_by_default(bare: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHAKEL_LANG")
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    await bare.enter()
    text = await (await bare.client.get("/")).text()
    assert 'lang="nl"' in text and "Wachtwoordzin" in text


# ------------------------------------------------------------------ screens


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[Any, Console]]:
    """A standard network on a real server; the console over the coördinator's home."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            home = cast.coordinator.session.home.path
            async for console in _console(Path(home)):
                console.network, console.url = cast.network, url
                yield cast, console
        finally:
            await cast.close()


async def test_wrong_passphrase_is_refused_on_the_unlock_page(
        network: tuple[Any, Console]) -> None:
    _cast, console = network
    await console.enter()
    answer = await console.post("/unlock", {"passphrase": "not it"})
    assert answer.status == 422
    assert "The passphrase does not open this home" in await answer.text()


async def test_coordinator_reads_a_signal_answers_it_and_turns_it_into_a_case(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    concern = "Mevrouw op de hoek haalt haar boodschappen niet meer."
    ticket = await cast.informal.signals.send(console.network, concern, anonymous=True,
                                              signaller_kind="volunteer")
    await console.enter()
    await console.unlock()
    inbox = await (await console.client.get(f"/n/{console.network}/signals")).text()
    assert ticket.signal in inbox
    one = f"/n/{console.network}/signals/{ticket.signal}"
    assert concern in await (await console.client.get(one)).text()

    answer = await console.post(one + "/feedback", {"status": "received",
                                                    "message": "Dank u, we kijken ernaar."},
                                page=one)
    assert answer.status == 200
    status = await cast.informal.signals.status(ticket)
    assert status.messages == ["Dank u, we kijken ernaar."]

    answer = await console.post(one + "/case", {
        "summary": "Oudere vrouw redt de boodschappen niet meer alleen.",
        "age_band": "75-84", "neighbourhood": "Soesterkwartier", "domains": "loneliness",
        "severity": "medium", "care_status": "misses-care"}, page=one)
    assert answer.status == 200, await answer.text()
    case = str(answer.url).rsplit("/", 1)[1]
    assert "Oudere vrouw redt" in await answer.text()
    assert (await cast.informal.signals.status(ticket)).status == "taken-up"
    await cast.formal.sync(console.network)
    assert cast.formal.cases.get(console.network, case).state["source"] == "anonymous-signal"

    listed = await (await console.client.get(
        f"/n/{console.network}/cases?status=open&domain=loneliness")).text()
    assert case[:8] in listed
    other = await (await console.client.get(
        f"/n/{console.network}/cases?status=closed")).text()
    assert case[:8] not in other

    page = f"/n/{console.network}/cases/{case}"
    answer = await console.post(page + "/note", {"text": "Buurvrouw doet voorlopig de boodschappen."},
                                page=page)
    assert answer.status == 200
    await cast.formal.sync(console.network)
    texts = [e.plaintext.get("text") for e in cast.formal.cases.get(console.network, case).events
             if e.plaintext]
    assert "Buurvrouw doet voorlopig de boodschappen." in texts


async def test_note_with_identifying_data_is_refused_showing_the_span_and_nothing_is_sent(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    case = await cast.coordinator.cases.create(console.network, OLDER_MAN)
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}"
    before = len(cast.coordinator.cases.get(console.network, case).events)
    answer = await console.post(page + "/note", {"text": "Bel hem op 06-12345678 morgen."},
                                page=page)
    assert answer.status == 422
    text = await answer.text()
    assert "<mark>06-12345678</mark>" in text
    await cast.formal.sync(console.network)
    assert len(cast.formal.cases.get(console.network, case).events) == before


async def test_a_signals_sealed_identity_becomes_the_cases_and_stays_out_of_the_kern(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    who = {"name": {"given_names": "Aaltje", "family_name": "Verhoef"}}
    ticket = await cast.shell.signals.send(console.network, "Mevrouw Verhoef valt vaak.",
                                           signaller_kind="shell-partner", identity_hint=who)
    await console.enter()
    await console.unlock()
    one = f"/n/{console.network}/signals/{ticket.signal}"
    answer = await console.post(one + "/case", {
        "summary": "Oudere vrouw valt vaak thuis.", "age_band": "75-84",
        "neighbourhood": "Soesterkwartier", "domains": "self-care", "severity": "high",
        "care_status": "known"}, page=one)
    assert answer.status == 200, await answer.text()
    case = str(answer.url).rsplit("/", 1)[1]
    await cast.formal.sync(console.network)
    view = cast.formal.cases.get(console.network, case)
    assert view.state["source"] == "shell-partner"
    assert "Verhoef" not in repr(view.state)
    await cast.coordinator.sync(console.network)
    held = cast.coordinator.identity.get(console.network, case)
    assert dict(held["name"])["family_name"] == "Verhoef"


async def test_a_case_is_closed_with_a_reason_the_pii_guard_checked(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    case = await cast.coordinator.cases.create(console.network, OLDER_MAN)
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}"
    refused = await console.post(page + "/close", {"reason": "Verhuisd naar 06-12345678."},
                                 page=page)
    assert refused.status == 422 and "<mark>06-12345678</mark>" in await refused.text()
    answer = await console.post(page + "/close", {"reason": "Hulp loopt via de huisarts."},
                                page=page)
    assert answer.status == 200
    await cast.formal.sync(console.network)
    assert cast.formal.cases.get(console.network, case).status == "closed"


def test_the_browser_is_started_with_a_private_file_not_with_the_token(tmp_path: Path) -> None:
    """Other users of the computer see a process's arguments: the browser gets the name of
    a 0600 page that forwards to the start address, never the address itself."""
    from schakel.cli.commands.console import opener

    gate = Gate(port=_port())
    page = opener(gate.address(), tmp_path)
    assert gate.token not in page.as_uri()
    assert page.stat().st_mode & 0o077 == 0
    assert gate.address() in page.read_text(encoding="utf-8")


# ------------------------------------------------------------------ audit


async def _verified_page(console: Console) -> str:
    """Start a verification from the audit screen and follow the page until it is done
    (it refreshes itself while the background verification runs)."""
    import asyncio

    audit = f"/n/{console.network}/audit"
    answer = await console.post(audit + "/verify", {}, page=audit)
    assert answer.status == 200
    for _ in range(200):
        text = await (await console.client.get(audit)).text()
        if 'http-equiv="refresh"' not in text:
            return text
        assert "entries checked so far" in text
        await asyncio.sleep(0.05)
    raise AssertionError("the verification did not finish")


async def test_audit_screen_verifies_the_log_and_shows_head_and_entries_newest_first(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    await console.enter()
    await console.unlock()
    text = await _verified_page(console)
    verified = await cast.auditor.audit.verify(console.network)
    assert "The audit log verifies" in text
    assert f"<dd>{verified.size}</dd>" in text and verified.root in text
    rows = re.findall(r"<tr><td>(\d+)</td>", text)
    assert len(rows) >= 2
    assert [int(r) for r in rows] == sorted((int(r) for r in rows), reverse=True)
    assert int(rows[0]) == verified.size - 1


async def test_audit_screen_shows_a_rewritten_entry_as_a_failure_and_what_it_means(
        tmp_path: Path) -> None:
    from tests.tamper_proxy import rewrite_audit_entry, tampered_server

    async with tampered_server(tmp_path) as ts:
        cast = await standard_network(tmp_path, ts.url)
        try:
            home = Path(cast.coordinator.session.home.path)
            async for console in _console(home):
                console.network = cast.network
                await console.enter()
                await console.unlock()
                rewrite_audit_entry(ts.proxy, cast.network, 0)
                text = await _verified_page(console)
                assert ts.proxy.hits() >= 1
                assert "The audit log does not verify" in text
                assert "audit-entry-rewritten" in text
                assert "someone changed who did what" in text
                assert "this was recorded in your home" in text
                assert "The audit log verifies" not in text
        finally:
            await cast.close()
