"""The console's case list in pages (cli/console/cases.py; ADR 0040): a network with
more cases than one page, on a real server, the console over the coördinator's home
(the fixtures of tests/test_console.py).  One test per rule."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.console.cases import CASES_PAGE
from tests.client_harness import running_server, standard_network
from tests.test_console import OLDER_MAN, Console, _console

#: More cases than one page holds: a full first page and a second one.
TOTAL = CASES_PAGE + 7


def shown(html: str) -> list[str]:
    """The cases (short ids) a list page shows."""
    return re.findall(r'<tr><td><a href="/n/[^/]+/cases/[^"]+">([^<]+)</a>', html)


@pytest.fixture
async def many(tmp_path: Path) -> AsyncIterator[tuple[Any, Console, list[str]]]:
    """:data:`TOTAL` cases; the last one alone has the problem domain "eviction"."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            made = []
            for i in range(TOTAL):
                domains = ["eviction"] if i == TOTAL - 1 else ["loneliness"]
                made.append(await cast.coordinator.cases.create(
                    cast.network, {**OLDER_MAN, "domains": domains}))
            async for console in _console(Path(cast.coordinator.session.home.path)):
                console.network, console.url = cast.network, url
                await console.enter()
                await console.unlock()
                yield cast, console, made
        finally:
            await cast.close()


async def test_case_list_shows_one_page_of_cases_with_the_count_and_a_link_to_the_next(
        many: tuple[Any, Console, list[str]]) -> None:
    _cast, console, made = many
    first = await (await console.client.get(f"/n/{console.network}/cases")).text()
    assert len(shown(first)) == CASES_PAGE
    assert f"Cases 1–{CASES_PAGE} of {TOTAL}." in first
    assert "Page 1 of 2" in first
    assert f'href="/n/{console.network}/cases?page=2" rel="next"' in first
    assert 'rel="prev"' not in first

    second = await (await console.client.get(f"/n/{console.network}/cases?page=2")).text()
    assert sorted(shown(first) + shown(second)) == sorted(c[:8] for c in made)
    assert f"Cases {CASES_PAGE + 1}–{TOTAL} of {TOTAL}." in second
    assert f'href="/n/{console.network}/cases?page=1" rel="prev"' in second
    assert 'rel="next"' not in second


async def test_case_list_page_beyond_the_last_shows_the_last_and_nonsense_shows_the_first(
        many: tuple[Any, Console, list[str]]) -> None:
    _cast, console, _made = many
    base = f"/n/{console.network}/cases"
    first = shown(await (await console.client.get(base)).text())
    last = shown(await (await console.client.get(base + "?page=2")).text())
    assert shown(await (await console.client.get(base + "?page=99")).text()) == last
    assert shown(await (await console.client.get(base + "?page=-1x")).text()) == first


async def test_case_filter_searches_every_case_not_only_the_page_shown(
        many: tuple[Any, Console, list[str]]) -> None:
    _cast, console, made = many
    text = await (await console.client.get(
        f"/n/{console.network}/cases?status=open&domain=eviction")).text()
    assert shown(text) == [made[-1][:8]]
    assert f"of the 1 that match the filter ({TOTAL} in all)" in text
    assert 'rel="next"' not in text


async def test_case_list_after_a_sync_shows_what_another_client_of_the_same_home_changed(
        many: tuple[Any, Console, list[str]]) -> None:
    cast, console, made = many
    closed = f"/n/{console.network}/cases?status=closed&sync=1"
    assert shown(await (await console.client.get(closed)).text()) == []
    # The same home, another client (as `schakel case close` in a terminal would be):
    # it syncs and folds into the home's state, so the console's own sync brings nothing
    # new and the sync's list of touched cases is empty.
    await cast.coordinator.cases.close(console.network, made[3], reason="Afgerond.")
    assert shown(await (await console.client.get(closed)).text()) == [made[3][:8]]
    added = await cast.coordinator.cases.create(console.network,
                                                {**OLDER_MAN, "domains": ["nuisance"]})
    found = await (await console.client.get(
        f"/n/{console.network}/cases?domain=nuisance&sync=1")).text()
    assert shown(found) == [added[:8]]


async def test_update_now_on_the_case_list_asks_the_server_at_once(
        many: tuple[Any, Console, list[str]]) -> None:
    cast, console, _made = many
    page = await (await console.client.get(f"/n/{console.network}/cases")).text()
    link = re.search(r'<a href="([^"]+&amp;sync=1)">Update now</a>', page)
    assert link, page
    # Another member writes a case; the console's next page may show the home as it
    # was (it asked the server moments ago), the link asks the server first.
    added = await cast.formal.cases.create(console.network,
                                           {**OLDER_MAN, "domains": ["addiction"]})
    text = await (await console.client.get(
        link.group(1).replace("&amp;", "&").replace("page=1", "domain=addiction&page=1"))).text()
    assert shown(text) == [added[:8]]


async def test_case_list_shows_a_case_the_console_just_made_from_a_signal(
        many: tuple[Any, Console, list[str]]) -> None:
    cast, console, _made = many
    listed = f"/n/{console.network}/cases?domain=parenting"
    assert shown(await (await console.client.get(listed)).text()) == []
    ticket = await cast.informal.signals.send(console.network, "Zorgen om een gezin.",
                                              anonymous=True, signaller_kind="volunteer")
    one = f"/n/{console.network}/signals/{ticket.signal}"
    answer = await console.post(one + "/case", {
        "summary": "Gezin met jonge kinderen heeft hulp nodig.", "age_band": "30-44",
        "neighbourhood": "Soesterkwartier", "domains": "parenting", "severity": "medium",
        "care_status": "misses-care"}, page=one)
    assert answer.status == 200, await answer.text()
    case = str(answer.url).rsplit("/", 1)[1]
    assert shown(await (await console.client.get(listed)).text()) == [case[:8]]


async def test_case_list_within_the_sync_interval_shows_the_home_as_it_was(
        many: tuple[Any, Console, list[str]]) -> None:
    """The throttle itself: a list asked for moments after a sync does not ask the server,
    so a case another member wrote since is not shown until "update now" (or 15 s)."""
    cast, console, _made = many
    listed = f"/n/{console.network}/cases?domain=addiction"
    assert shown(await (await console.client.get(listed + "&sync=1")).text()) == []
    added = await cast.formal.cases.create(console.network,
                                           {**OLDER_MAN, "domains": ["addiction"]})
    assert shown(await (await console.client.get(listed)).text()) == []
    assert shown(await (await console.client.get(listed + "&sync=1")).text()) == [added[:8]]


async def test_a_list_refreshed_by_another_screens_sync_shows_what_that_sync_brought(
        many: tuple[Any, Console, list[str]]) -> None:
    """Every screen syncs through one function: after the network's page synced, the
    list shows the case that sync brought, without asking the server again."""
    cast, console, _made = many
    listed = f"/n/{console.network}/cases?domain=addiction"
    assert shown(await (await console.client.get(listed + "&sync=1")).text()) == []
    added = await cast.formal.cases.create(console.network,
                                           {**OLDER_MAN, "domains": ["addiction"]})
    assert (await console.client.get(f"/n/{console.network}")).status == 200
    assert shown(await (await console.client.get(listed)).text()) == [added[:8]]


async def test_a_form_sent_for_a_network_makes_the_next_case_list_ask_the_server(
        many: tuple[Any, Console, list[str]]) -> None:
    cast, console, made = many
    listed = f"/n/{console.network}/cases?domain=addiction"
    assert shown(await (await console.client.get(listed + "&sync=1")).text()) == []
    added = await cast.formal.cases.create(console.network,
                                           {**OLDER_MAN, "domains": ["addiction"]})
    page = f"/n/{console.network}/cases/{made[0]}"
    # a note the PII guard refuses before anything is sent (its handler does not sync)
    answer = await console.post(page + "/note", {"text": "Bel 06-12345678."}, page=page)
    assert answer.status == 422
    assert shown(await (await console.client.get(listed)).text()) == [added[:8]]
