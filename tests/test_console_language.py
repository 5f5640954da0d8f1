"""The console's language setting (ADR 0037, ADR 0040): the header's form switches the
words of every page between Dutch and English for the console's process, through the
console's own guarded POST (session and CSRF token), against the real aiohttp app with
the aiohttp test client (the fixture pattern of tests/test_console.py).
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schakel.cli.console.app import make_app
from schakel.cli.console.guard import Gate
from schakel.cli.i18n import language, use


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def dutch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nobody asks for a language (so the console starts Dutch); the process's choice is
    forgotten after each test, since the setting is process-wide."""
    for name in ("SCHAKEL_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    use(None)
    yield
    use(None)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Gate]]:
    """A console over a home that needs no server, entered with its start token."""
    gate = Gate(port=_port())
    client = TestClient(TestServer(make_app(tmp_path / "home", None, gate), host="127.0.0.1",
                                   port=gate.port))
    await client.start_server()
    try:
        entered = await client.get(f"/?token={gate.token}", allow_redirects=False)
        assert entered.status == 303
        yield client, gate
    finally:
        await client.close()


async def _csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', await (await client.get("/")).text())
    assert found
    return found.group(1)


async def test_the_language_form_switches_the_console_to_english_and_back(
        client: tuple[TestClient, Gate]) -> None:
    http, gate = client
    text = await (await http.get("/")).text()
    assert 'lang="nl"' in text and "Wachtwoordzin" in text
    assert '<option value="nl" selected>Nederlands</option>' in text
    answer = await http.post("/language", data={"csrf": await _csrf(http), "lang": "en"},
                             headers={"Origin": gate.origin})
    assert answer.status == 200
    text = await answer.text()
    assert 'lang="en"' in text and "Passphrase" in text and "Wachtwoordzin" not in text
    assert '<option value="en" selected>English</option>' in text
    answer = await http.post("/language", data={"csrf": await _csrf(http), "lang": "nl"},
                             headers={"Origin": gate.origin})
    assert 'lang="nl"' in await answer.text() and language() == "nl"


async def test_the_language_form_without_the_csrf_token_is_refused(
        client: tuple[TestClient, Gate]) -> None:
    http, gate = client
    answer = await http.post("/language", data={"lang": "en"}, headers={"Origin": gate.origin})
    assert answer.status == 403
    assert language() == "nl"


async def test_a_language_the_console_does_not_speak_is_refused(
        client: tuple[TestClient, Gate]) -> None:
    http, gate = client
    answer = await http.post("/language", data={"csrf": await _csrf(http), "lang": "de"},
                             headers={"Origin": gate.origin})
    assert answer.status == 422
    text = await answer.text()
    assert 'role="alert"' in text and "Nederlands of English" in text
    assert language() == "nl"
