"""Design §5 "informal where possible, professional where necessary", checked by every
reader (docs/protocol.md §7; ADR 0012).

The rules are about the anonymous layer, which the server cannot read: the writer's
client refuses an action that breaks them before it is sent, and every client that folds
a case judges each action again with the same pure function
(``schakel.protocol.policy.check_action``).  An action written by a client that skipped the check
(:func:`tests.client_harness.write_unchecked`) is still shown to every reader -- the
anonymous layer is the network's shared record -- but marked on its event and listed in
the case's ``breaches``.  Real server, real partners; one test per rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner
from schakel.client.views import PolicyBreach
from schakel.protocol.errors import PolicyViolation
from tests.client_harness import (
    INTAKE, Cast, running_server, standard_network, write_unchecked,
)

REASON = "Wondzorg vraagt een verpleegkundige."


def formal(by: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "action", "description": "Inzet wijkverpleging voor de wondzorg.",
            "help_type": "formal", "relation": "complementary", "by": by, **extra}


def informal(by: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "action", "description": "Buurtvrijwilliger gaat wekelijks op bezoek.",
            "help_type": "informal", "relation": "preceding", "by": by, **extra}


async def opened(tmp_path: Path, **policy: Any) -> AsyncIterator[tuple[Cast, str]]:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url, **policy)
        try:
            yield cast, url
        finally:
            await cast.close()


@pytest.fixture
async def cast(tmp_path: Path) -> AsyncIterator[Cast]:
    async for c, _ in opened(tmp_path):
        yield c


async def new_case(cast: Cast, *, complex_case: bool = False) -> str:
    """A case of the formal core member, shared with the shell partner, so that every
    member of the cast folds it: coordinator, both core members, the shell partner."""
    n = cast.network
    case = await cast.formal.cases.create(n, {**INTAKE, "complex": complex_case})
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, case, cast.shell.key_id, reason="vraag aan de huisarts")
    return case


def readers(cast: Cast) -> list[Partner]:
    return [cast.coordinator, cast.formal, cast.informal, cast.shell]


async def breaches_seen(cast: Cast, case: str) -> dict[str, list[PolicyBreach]]:
    """What each reader's client flags in ``case`` after a sync (the events all shown)."""
    seen = {}
    for p in readers(cast):
        await p.sync(cast.network)
        view = p.cases.get(cast.network, case)
        assert view.readable, p.name
        seen[p.name] = view.breaches
    return seen


async def assert_flagged_by_every_reader(cast: Cast, case: str, seq: int, reason: str) -> None:
    for p in readers(cast):
        await p.sync(cast.network)
        view = p.cases.get(cast.network, case)
        event = next(e for e in view.events if e.seq == seq)
        assert event.plaintext is not None and event.plaintext["kind"] == "action", \
            f"{p.name} no longer shows the action"
        assert event.breach == reason, f"{p.name} did not mark the action"
        assert [a["seq"] for a in view.state["actions"]] == [seq], p.name
        assert [(b.seq, b.reason, b.author) for b in view.breaches] == \
            [(seq, reason, event.author)], f"{p.name} did not list the breach"
        assert view.breaches[0].message and view.breaches[0].author_name == event.author_name


# --------------------------------------------------------------------------- formal: a reason


async def test_formal_action_without_reason_is_flagged_by_every_reader(cast: Cast) -> None:
    case = await new_case(cast)
    seq = await write_unchecked(cast.formal, cast.network, case, formal(cast.formal.key_id))
    await assert_flagged_by_every_reader(cast, case, seq, "formal-action-needs-reason")


async def test_formal_action_with_a_reason_that_says_nothing_is_refused_before_sending(
        cast: Cast) -> None:
    n = cast.network
    case = await new_case(cast)
    for placeholder in ("x", "n.v.t.", "-", "zie"):
        with pytest.raises(PolicyViolation) as refused:
            await cast.formal.cases.add_event(n, case, formal(cast.formal.key_id,
                                                        informal_not_possible=placeholder))
        details = refused.value.details
        assert details["reason"] == "formal-action-reason-says-nothing" and details["early"]
        assert "10 letters" in refused.value.message
    await cast.coordinator.sync(n)
    assert [e.seq for e in cast.coordinator.cases.get(n, case).events] == [1], "something was sent"


async def test_formal_action_with_a_reason_that_says_nothing_is_flagged_by_every_reader(
        cast: Cast) -> None:
    case = await new_case(cast)
    seq = await write_unchecked(cast.formal, cast.network, case,
                                formal(cast.formal.key_id, informal_not_possible="x"))
    await assert_flagged_by_every_reader(cast, case, seq, "formal-action-reason-says-nothing")


async def test_readers_respect_the_policy_without_formal_action_reason(tmp_path: Path) -> None:
    """A network whose signed policy switches ``formal_action_reason`` off: neither the
    writer nor any reader asks a formal action for a reason."""
    async for cast, _ in opened(tmp_path, formal_action_reason=False):
        n = cast.network
        case = await new_case(cast)
        await cast.formal.cases.add_event(n, case, formal(cast.formal.key_id))
        await write_unchecked(cast.formal, n, case, formal(cast.formal.key_id,
                                                           informal_not_possible="x"))
        seen = await breaches_seen(cast, case)
        assert seen == {p.name: [] for p in readers(cast)}


# --------------------------------------------------------------------------- informal, complex case


async def test_informal_action_on_a_complex_case_without_professional_is_refused_before_sending(
        cast: Cast) -> None:
    n = cast.network
    case = await new_case(cast, complex_case=True)
    with pytest.raises(PolicyViolation) as refused:
        await cast.informal.cases.add_event(n, case, informal(cast.informal.key_id))
    assert refused.value.details["reason"] == "informal-action-needs-professional"


async def test_informal_action_on_a_complex_case_without_professional_is_flagged_by_every_reader(
        cast: Cast) -> None:
    case = await new_case(cast, complex_case=True)
    seq = await write_unchecked(cast.informal, cast.network, case, informal(cast.informal.key_id))
    await assert_flagged_by_every_reader(cast, case, seq, "informal-action-needs-professional")


# --------------------------------------------------------------------------- control


async def test_actions_that_fit_the_policy_are_not_flagged(cast: Cast) -> None:
    """The same readers flag nothing when every action keeps the rules: a formal action
    with a reason, a combined one, an informal one on a simple case, and on a complex case
    one that names the supporting professional."""
    n = cast.network
    simple, complex_case = await new_case(cast), await new_case(cast, complex_case=True)
    await cast.formal.cases.add_event(n, simple, formal(cast.formal.key_id, informal_not_possible=REASON))
    await cast.formal.cases.add_event(n, simple, formal(cast.formal.key_id, help_type="combined"))
    await cast.informal.cases.add_event(n, simple, informal(cast.informal.key_id))
    await cast.informal.cases.add_event(n, complex_case, informal(
        cast.informal.key_id, supporting_professional=cast.formal.key_id))
    for case, actions in ((simple, 3), (complex_case, 1)):
        for p in readers(cast):
            await p.sync(n)
            view = p.cases.get(n, case)
            assert len(view.state["actions"]) == actions, p.name
            assert view.breaches == [] and all(e.breach is None for e in view.events), p.name
