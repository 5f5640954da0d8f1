"""A sync page is verified and stored as one unit (docs/protocol.md §16.4): a bad object
anywhere in a page stores nothing of that page -- not the items before it, not the items
after it -- the cursor stays before the page, and the misbehaviour is the page's first bad
object.  An honest answer afterwards is read in full.

Real partners against the real server behind the tampering proxy (the ``world`` of
:mod:`tests.test_client_threats`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schakel.client.fold import summary
from tests.client_harness import INTAKE
from tests.test_client_threats import NOTE, World, caught, world  # noqa: F401  (fixture)

__all__: list[str] = []


async def _page_of_two_cases(w: World) -> tuple[str, str]:
    """The coordinator writes: three notes on ``w.case`` (seq 2, 3, 4) around a new case
    (its header and intake event): one page of five items the victim has not synced."""
    await w.coord.cases.add_event(w.network, w.case, NOTE)
    await w.coord.cases.add_event(w.network, w.case, NOTE)
    other = await w.coord.cases.create(w.network, {**INTAKE, "summary": "Tweede casus."})
    await w.coord.cases.add_event(w.network, w.case, NOTE)
    return w.case, other


def _event_item(items: list[dict[str, Any]], case: str, seq: int) -> dict[str, Any]:
    return next(it for it in items if it["kind"] == "event" and it["case"] == case
                and it["envelope"]["signed"]["seq"] == seq)


def _victim_holds_nothing_of_the_page(w: World, case: str, other: str, cursor: str) -> None:
    state = w.victim.session.state
    info = summary(state, w.network, case)
    assert info is not None and info["last_seq"] == 1, "an event of the page was kept"
    assert state.docs("event", (w.network, case))[-1][0][-1] == f"{1:010d}"
    assert summary(state, w.network, other) is None, "the other case's header was kept"
    assert state.get_doc("header", (w.network, other)) is None
    assert state.cursor(w.network, "sync") == cursor, "the cursor moved past a bad object"


async def test_bad_object_mid_page_stores_nothing_of_the_page_and_cursor_stays(
        world: World) -> None:
    """An event with a signature that does not verify, in the middle of a page: the event
    before it, the header and events after it are not stored, the cursor does not move;
    the honest page afterwards is stored in full."""
    w = world
    case, other = await _page_of_two_cases(w)
    cursor = w.victim.session.state.cursor(w.network, "sync")

    def forge(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert [it["kind"] for it in items] == ["event", "event", "header", "event", "event"]
        second, third = _event_item(items, case, 2), _event_item(items, case, 3)
        third["envelope"]["signatures"] = copy.deepcopy(second["envelope"]["signatures"])
        return items

    w.proxy.on_sync(w.network, forge, times=1)
    await caught(w, w.victim, w.victim.sync(w.network), "bad-signature")
    _victim_holds_nothing_of_the_page(w, case, other, cursor)

    await w.victim.sync(w.network)                      # the honest answer, read in full
    info = summary(w.victim.session.state, w.network, case)
    assert info is not None and info["last_seq"] == 4
    assert w.victim.cases.get(w.network, other).readable
    assert w.victim.session.state.cursor(w.network, "sync") != cursor


async def test_first_bad_object_of_a_page_names_the_misbehaviour(world: World) -> None:
    """Two lies in one page: a bad signature on the third item and a header that names
    another case on the fifth.  The refusal names the first in page order, and nothing of
    the page is stored."""
    w = world
    case, other = await _page_of_two_cases(w)
    cursor = w.victim.session.state.cursor(w.network, "sync")

    def forge(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        second, third = _event_item(items, case, 2), _event_item(items, case, 3)
        third["envelope"]["signatures"] = copy.deepcopy(second["envelope"]["signatures"])
        last = _event_item(items, case, 4)
        last["envelope"]["signed"]["case"] = other
        return items

    w.proxy.on_sync(w.network, forge, times=1)
    exc = await caught(w, w.victim, w.victim.sync(w.network), "bad-signature")
    assert exc.details.get("seq") == 3
    _victim_holds_nothing_of_the_page(w, case, other, cursor)


# ---------------------------------------------------------------- pages that overlap
#
# With pages of two items, the five items above are three pages: while one page is
# folded the next is fetched and checked -- in the worker process, started before the
# sync (schakel.client.pagecheck) -- and each page is still its own transaction.


async def _small_pages_in_the_worker(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("schakel.client.feed.PAGE", 2)
    await w.victim.session.page_checker.start()


async def test_pages_checked_in_the_worker_are_stored_like_pages_checked_here(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The five items in pages of two, every page checked in the worker process: the
    partner stores every event and can read both cases."""
    w = world
    await _small_pages_in_the_worker(w, monkeypatch)
    case, other = await _page_of_two_cases(w)
    result = await w.victim.sync(w.network)
    assert result.items == 5
    assert w.victim.session.page_checker.pages_in_worker == 3, "a page was checked here"
    info = summary(w.victim.session.state, w.network, case)
    assert info is not None and info["last_seq"] == 4
    view = w.victim.cases.get(w.network, other)
    assert view.readable and [e.plaintext["kind"] for e in view.events] == ["intake"]


async def test_bad_object_in_a_later_page_keeps_the_pages_before_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged signature on the second page (checked in the worker): the first page is
    stored with the cursor after it, nothing of the second page or after it is, and the
    misbehaviour names the forged event."""
    w = world
    await _small_pages_in_the_worker(w, monkeypatch)
    case, other = await _page_of_two_cases(w)

    forged: list[int] = []

    def forge(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for it in items:                 # the other case's intake: page 2 of 3, once
            if it["kind"] == "event" and it["case"] == other and not forged:
                it["envelope"]["signed"]["acting_user"] = "iemand-anders"
                forged.append(1)
        return items

    w.proxy.on_sync(w.network, forge)
    exc = await caught(w, w.victim, w.victim.sync(w.network), "bad-signature")
    state = w.victim.session.state
    assert w.victim.session.page_checker.pages_in_worker >= 2
    info = summary(state, w.network, case)
    assert info is not None and info["last_seq"] == 3, "the first page was not kept"
    assert summary(state, w.network, other) is None, "the second page's header was kept"
    assert (exc.details.get("case"), exc.details.get("seq")) == (other, 1)
    result = await w.victim.sync(w.network)            # the honest answer: from page 2 on
    assert result.items == 3, "the cursor is not right after the first page"


async def test_worker_refusal_is_raised_when_the_fold_reaches_the_item(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event of the third page whose signature the worker refuses: the two pages
    before it are stored, the third is not, and the refusal names that event."""
    w = world
    await _small_pages_in_the_worker(w, monkeypatch)
    case, other = await _page_of_two_cases(w)

    def forge(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for it in items:
            if it["kind"] == "event" and it["case"] == case and \
                    it["envelope"]["signed"]["seq"] == 4:
                it["envelope"]["signed"]["acting_user"] = "iemand-anders"
        return items

    w.proxy.on_sync(w.network, forge)
    exc = await caught(w, w.victim, w.victim.sync(w.network), "bad-signature")
    assert exc.details.get("seq") == 4
    state = w.victim.session.state
    assert w.victim.session.page_checker.pages_in_worker >= 2
    info = summary(state, w.network, case)
    assert info is not None and info["last_seq"] == 3
    assert state.get_doc("header", (w.network, other)) is not None


async def test_a_later_page_that_fails_is_raised_after_the_page_before_it_is_stored(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second page comes without a valid cursor while the first is still to be stored
    (it is asked for ahead): the first page is stored all the same, then the second
    page's lie is raised."""
    w = world
    await _small_pages_in_the_worker(w, monkeypatch)
    case, other = await _page_of_two_cases(w)
    pages: list[int] = []

    def second_without_cursor(body: Any) -> Any:
        if body.get("items"):
            pages.append(1)
            if len(pages) == 2:
                body["cursor"] = "not-a-position"
        return body

    w.proxy.on("GET", rf"/v1/networks/{w.network}/sync", second_without_cursor)
    await caught(w, w.victim, w.victim.sync(w.network), "context-mismatch")
    info = summary(w.victim.session.state, w.network, case)
    assert info is not None and info["last_seq"] == 3, "the first page was not stored"
    assert summary(w.victim.session.state, w.network, other) is None
