"""A case's anonymous layer in the console (cli/console/casework.py; ADR 0040, ADR 0044):
the kern's analysis, actions ("informal where possible, professional where necessary",
docs/protocol.md §7) and their outcomes, added from the case page, against the real
aiohttp app over the coördinator's home on a real server (tests/client_harness.py); the
other members read what was written with their own clients.  One test per rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.client_harness import running_server, standard_network, write_unchecked
from tests.test_console import OLDER_MAN, Console, _console

REASON_IN_WORDS = "Open been vraagt wondzorg door een verpleegkundige."


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Any, Console]]:
    """A standard network on a real server; the console over the coördinator's home."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            async for console in _console(Path(cast.coordinator.session.home.path)):
                console.network, console.url = cast.network, url
                yield cast, console
        finally:
            await cast.close()


async def opened_case(world: tuple[Any, Console]) -> tuple[Any, Console, str, str]:
    """A case of the coördinator's, and the console unlocked on it."""
    cast, console = world
    case = await cast.coordinator.cases.create(console.network, OLDER_MAN)
    await console.enter()
    await console.unlock()
    return cast, console, case, f"/n/{console.network}/cases/{case}"


def nursing(**extra: str) -> dict[str, str]:
    return {"description": "Wijkverpleging komt twee keer per week.", "help_type": "formal",
            "relation": "complementary", **extra}


async def events_seen_by_the_kern(cast: Any, network: str, case: str) -> list[dict[str, Any]]:
    await cast.formal.sync(network)
    return [e.plaintext for e in cast.formal.cases.get(network, case).events if e.plaintext]


async def test_an_analysis_is_added_and_another_member_reads_it(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    text = "Vereenzaming na het overlijden van zijn vrouw; redt de boodschappen niet."
    answer = await console.post(page + "/analysis", {
        "analysis": text, "domains": "self-care", "severity": "medium"}, page=page)
    assert answer.status == 200, await answer.text()
    assert text in await answer.text()
    await cast.formal.sync(console.network)
    state = cast.formal.cases.get(console.network, case).state
    assert [a["text"] for a in state["analysis"]] == [text]
    assert state["domains"] == ["self-care"] and state["severity"] == "medium"


async def test_an_informal_action_is_added_by_this_partner(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    answer = await console.post(page + "/action", {
        "description": "Een buurtvrijwilliger gaat wekelijks op bezoek.",
        "help_type": "informal", "relation": "preceding"}, page=page)
    assert answer.status == 200, await answer.text()
    assert "Een buurtvrijwilliger gaat wekelijks op bezoek." in await answer.text()
    actions = [e for e in await events_seen_by_the_kern(cast, console.network, case)
               if e["kind"] == "action"]
    assert actions == [{"kind": "action", "description": "Een buurtvrijwilliger gaat wekelijks "
                        "op bezoek.", "help_type": "informal", "relation": "preceding",
                        "by": cast.coordinator.key_id}]


async def test_an_action_is_carried_out_by_the_member_chosen(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    answer = await console.post(page + "/action", {
        "description": "Een buurtvrijwilliger gaat wekelijks op bezoek.",
        "help_type": "informal", "relation": "preceding", "by": cast.informal.key_id},
        page=page)
    assert answer.status == 200, await answer.text()
    action = next(e for e in await events_seen_by_the_kern(cast, console.network, case)
                  if e["kind"] == "action")
    assert action["by"] == cast.informal.key_id
    refused = await console.post(page + "/action", {
        "description": "Iemand gaat op bezoek.", "help_type": "informal",
        "relation": "preceding", "by": "A" * 43}, page=page)
    assert refused.status == 422


async def test_a_formal_action_with_a_placeholder_reason_is_refused_explained_and_not_sent(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    before = await events_seen_by_the_kern(cast, console.network, case)
    answer = await console.post(page + "/action", nursing(informal_not_possible="nvt"),
                                page=page)
    assert answer.status == 422
    text = await answer.text()
    assert "formal-action-reason-says-nothing" in text
    assert "Informal where possible, professional where necessary" in text
    assert "not a placeholder" in text and 'role="alert"' in text
    assert "Wijkverpleging komt twee keer per week." in text      # what was typed is kept
    assert await events_seen_by_the_kern(cast, console.network, case) == before


async def test_a_formal_action_with_its_reason_in_words_is_added(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    answer = await console.post(page + "/action", nursing(informal_not_possible=REASON_IN_WORDS),
                                page=page)
    assert answer.status == 200, await answer.text()
    assert REASON_IN_WORDS in await answer.text()
    await cast.formal.sync(console.network)
    view = cast.formal.cases.get(console.network, case)
    assert [a["informal_not_possible"] for a in view.state["actions"]] == [REASON_IN_WORDS]
    assert not view.breaches


async def test_an_outcome_is_recorded_against_an_action(world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    await console.post(page + "/action", nursing(informal_not_possible=REASON_IN_WORDS),
                       page=page)
    seq = len(await events_seen_by_the_kern(cast, console.network, case))
    answer = await console.post(page + "/outcome", {
        "action": str(seq), "outcome": "improved", "outcome_text": "Het been geneest goed."},
        page=page)
    assert answer.status == 200, await answer.text()
    shown = await answer.text()
    assert f'id="action-{seq}"' in shown
    after_action = shown.split(f'id="action-{seq}"', 1)[1].split("</li>\n</ol>", 1)[0]
    assert "Het been geneest goed." in after_action
    feedback = [e for e in await events_seen_by_the_kern(cast, console.network, case)
                if e["kind"] == "feedback"]
    assert feedback == [{"kind": "feedback", "outcome": "improved",
                         "text": f"#{seq}: Het been geneest goed."}]
    refused = await console.post(page + "/outcome", {
        "action": "999", "outcome": "improved", "outcome_text": "Goed."}, page=page)
    assert refused.status == 422


async def test_analysis_with_identifying_data_is_refused_showing_the_span_and_not_sent(
        world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    before = await events_seen_by_the_kern(cast, console.network, case)
    answer = await console.post(page + "/analysis", {
        "analysis": "Zoon belt vaak vanaf 06-12345678 over de zorgen.", "domains": "self-care"},
        page=page)
    assert answer.status == 422
    text = await answer.text()
    assert "<mark>06-12345678</mark>" in text
    assert 'value="self-care" checked' in text          # what was chosen is kept
    assert await events_seen_by_the_kern(cast, console.network, case) == before


async def test_a_policy_breach_is_shown_on_the_case_page(world: tuple[Any, Console]) -> None:
    cast, console, case, page = await opened_case(world)
    await write_unchecked(cast.coordinator, console.network, case, {
        "kind": "action", "description": "Wijkverpleging komt langs.", "help_type": "formal",
        "relation": "complementary", "by": cast.coordinator.key_id})
    text = await (await console.client.get(page)).text()
    assert "Policy breaches" in text and "formal-action-needs-reason" in text


@pytest.mark.parametrize("form", ["analysis", "action", "outcome"])
async def test_the_casework_forms_require_the_sessions_csrf_token(
        world: tuple[Any, Console], form: str) -> None:
    cast, console, case, page = await opened_case(world)
    before = await events_seen_by_the_kern(cast, console.network, case)
    answer = await console.client.post(page + "/" + form, headers=console.origin, data={
        "analysis": "Eenzaam.", "description": "Bezoek.", "help_type": "informal",
        "relation": "preceding", "action": "1", "outcome": "improved",
        "outcome_text": "Goed."})
    assert answer.status == 403
    assert await events_seen_by_the_kern(cast, console.network, case) == before


async def test_informal_help_on_a_complex_case_names_its_supporting_professional(
        world: tuple[Any, Console]) -> None:
    cast, console = world
    case = await cast.coordinator.cases.create(console.network, {**OLDER_MAN, "complex": True})
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}"
    visit = {"description": "Een buurtvrijwilliger gaat wekelijks op bezoek.",
             "help_type": "informal", "relation": "complementary"}
    refused = await console.post(page + "/action", visit, page=page)
    assert refused.status == 422
    assert "informal-action-needs-professional" in await refused.text()
    answer = await console.post(page + "/action",
                                {**visit, "supporting_professional": cast.formal.key_id}, page=page)
    assert answer.status == 200, await answer.text()
    actions = [e for e in await events_seen_by_the_kern(cast, console.network, case)
               if e["kind"] == "action"]
    assert [a["supporting_professional"] for a in actions] == [cast.formal.key_id]


async def test_the_action_rule_and_its_refusal_are_explained_in_dutch(
        world: tuple[Any, Console], monkeypatch: pytest.MonkeyPatch) -> None:
    _cast, console, _case, page = await opened_case(world)
    monkeypatch.setenv("SCHAKEL_LANG", "nl")
    answer = await console.post(page + "/action", nursing(informal_not_possible="nvt"),
                                page=page)
    assert answer.status == 422
    text = await answer.text()
    assert "Informeel waar mogelijk, professioneel waar nodig" in text
    assert "formal-action-reason-says-nothing" in text and "geen opvulling zoals" in text
