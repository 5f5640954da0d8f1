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

from schakel.client.fold import summary
from tests.test_client_threats import NOTE, World, caught, world  # noqa: F401  (fixture)

__all__: list[str] = []


async def _page_of_two_cases(w: World) -> tuple[str, str]:
    """The coordinator writes: three notes on ``w.case`` (seq 2, 3, 4) around a new case
    (its header and intake event): one page of five items the victim has not synced."""
    await w.coord.cases.add_event(w.network, w.case, NOTE)
    await w.coord.cases.add_event(w.network, w.case, NOTE)
    other = await w.coord.cases.create(w.network, {
        "kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
        "domains": ["loneliness"], "severity": "low", "care_status": "known",
        "source": "partner", "complex": False, "summary": "Tweede casus."})
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
