"""Members on behalf of organisations and per-user parties, on the real server
(docs/protocol.md §N.4 "On behalf of" and "Users", §A.1 actor, §6 R2, R6, R9; ADR 0032).

Two practices of the report: the Signaleringsnetwerk Utrecht, where a professional of the
Vrijwilligerscentrale represents volunteer organisations in the core (a member acting on
behalf of named organisations), and Stichting WIJ Breda, one organisation with paid
professionals and volunteers (formal and informal acting users of one member).  The real
application on a real SQLite file, real keys, real signed objects
(:mod:`tests.server_harness`, :mod:`tests.disclosure_harness`).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol.objects.audit import AuditEntry
from tests.disclosure_harness import (
    assert_denial_logged, audit_log, consent_and_grant, invocation, open_release, person,
    post_ok, release, staff_oggz, consent,
)
from tests.server_harness import (
    Actor, Caller, FakeClock, InProcessServer, Network, ServerKeys, assert_error,
    assert_status, create_case, network_policy, register, server_keys,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop

BEHALF = ("Stichting Present Utrecht", "Handje Helpen", "Zonnebloem Hoograven")
PROFESSIONAL, VOLUNTEER = "wij-beroepskracht-1", "wij-vrijwilliger-7"


class Cast:
    """A neighbourhood network with the Vrijwilligerscentrale (on behalf of three volunteer
    organisations), WIJ (formal, ``professional-secrecy``, one professional and one
    volunteer listed) and a case owned by the maatschappelijk werk."""

    def __init__(self, caller: Caller, server: ServerKeys, clock: FakeClock) -> None:
        self.caller, self.server, self.clock = caller, server, clock
        self.net = Network(server, clock, name="Signaleringsnetwerk Hoograven/Lunetten")
        self.centrale = self.net.actor("vrijwilligerscentrale", ring="core", party="informal")
        self.centrale.on_behalf_of = BEHALF
        self.wij = self.net.actor("wij", ring="core", party="formal",
                                  roles=("professional-secrecy",))
        self.wij.users = {PROFESSIONAL: "formal", VOLUNTEER: "informal"}
        self.wij.acting_user = PROFESSIONAL
        self.owner = self.net.actor("maatschappelijk-werk", ring="core")
        self.plain = self.net.actor("thuiszorg", ring="core")

    def as_user(self, user: str) -> Actor:
        return person(self.wij, user)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cast(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("behalf"), FakeClock())
    caller = await server.start()
    try:
        c = Cast(caller, await server_keys(caller), caller.clock)
        await register(caller, c.net, [c.centrale, c.wij, c.owner, c.plain])
        c.case = await create_case(caller, c.net, c.owner)
        yield c
    finally:
        await server.stop()


def actor_entries(entries: list[dict[str, Any]], actor: Actor) -> list[dict[str, Any]]:
    return [e for e in entries if e["actor"]["partner"] == actor.key_id]


# =========================================================================== on behalf of


async def test_on_behalf_of_is_in_the_membership_and_every_audit_entry_of_the_members_acts(
        cast: Cast) -> None:
    c, net = cast, cast.net
    members = assert_status(await c.caller.get(net.path("/members"), c.owner), 200)
    signed = [m["signed"] for m in members["memberships"] if m["signed"]["member"] ==
              c.centrale.key_id]
    assert signed and signed[0]["on_behalf_of"] == list(BEHALF)
    # Its acts: a read (sync), a case of its own with a consent it records, and a release.
    assert_status(await c.caller.get(net.path("/sync?after=0"), c.centrale), 200)
    own = await create_case(c.caller, net, c.centrale)
    _, grant_id = await consent_and_grant(c.caller, net, own, c.centrale, ["name"],
                                          recorder=c.centrale)
    assert_status(await release(c.caller, net, c.centrale, grant_id), 201)
    entries = actor_entries(await audit_log(c.caller, net), c.centrale)
    assert {"read", "consent", "release"} <= {e["action"] for e in entries}, entries
    for entry in entries:
        assert entry["actor"]["on_behalf_of"] == list(BEHALF), entry
        AuditEntry.from_json(entry)                   # still a valid audit entry


async def test_on_behalf_of_is_not_taken_from_the_request(cast: Cast) -> None:
    """A request cannot name organisations: a header claiming one changes nothing, for a
    member acting on behalf of others (the membership's list) and for one that acts for
    none (no list at all)."""
    c, net = cast, cast.net
    claim = [("Schakel-On-Behalf-Of", "Leger des Heils"), ("Schakel-Party", "formal")]
    for actor in (c.centrale, c.plain):
        assert_status(await c.caller.get(net.path("/sync?after=0"), actor, headers=claim), 200)
    entries = await audit_log(c.caller, net)
    centrale = actor_entries(entries, c.centrale)[-1]
    plain = actor_entries(entries, c.plain)[-1]
    assert centrale["action"] == plain["action"] == "read"
    assert centrale["actor"]["on_behalf_of"] == list(BEHALF)
    assert centrale["actor"]["party"] == "informal"
    assert "on_behalf_of" not in plain["actor"] and plain["actor"]["party"] == "formal"


# =========================================================================== per-user party


async def test_acting_users_party_decides_a_restricted_class(cast: Cast) -> None:
    """WIJ as a whole is formal with ``professional-secrecy``, so the coordinator may grant
    it ``official``; its volunteer is refused that release (R6, audited, the entry
    recording the informal party), its professional gets it."""
    c, net = cast, cast.net
    _, grant_id = await consent_and_grant(c.caller, net, c.case, c.wij, ["name", "official"],
                                          recorder=c.owner)
    volunteer = c.as_user(VOLUNTEER)
    reply = await release(c.caller, net, volunteer, grant_id)
    entry = await assert_denial_logged(c.caller, net, reply, "informal-class-not-allowed",
                                       case=c.case.case)
    assert entry["actor"]["acting_user"] == VOLUNTEER
    assert entry["actor"]["party"] == "informal"
    professional = c.as_user(PROFESSIONAL)
    answer = assert_status(await release(c.caller, net, professional, grant_id), 201)
    opened = open_release(answer, professional, net, c.case, c.server)
    assert set(opened) == {"name", "official"}
    assert answer["receipt"]["entry"]["actor"]["party"] == "formal"


async def test_informal_acting_user_gets_the_informal_classes(cast: Cast) -> None:
    c, net = cast, cast.net
    _, grant_id = await consent_and_grant(c.caller, net, c.case, c.wij, ["name", "address"],
                                          recorder=c.owner)
    volunteer = c.as_user(VOLUNTEER)
    answer = assert_status(await release(c.caller, net, volunteer, grant_id), 201)
    assert set(open_release(answer, volunteer, net, c.case, c.server)) == {"name", "address"}
    assert answer["receipt"]["entry"]["actor"]["party"] == "informal"


async def test_unlisted_acting_user_is_refused(cast: Cast) -> None:
    """An acting user the membership does not list is refused everywhere (403 forbidden,
    ``acting-user-not-listed``); its release attempt is decided and audited."""
    c, net = cast, cast.net
    stranger = c.as_user("wij-onbekend-3")
    reply = await c.caller.get(net.path("/sync?after=0"), stranger)
    assert_error(reply, 403, "forbidden")
    assert reply.json["error"]["details"]["reason"] == "acting-user-not-listed"
    _, grant_id = await consent_and_grant(c.caller, net, c.case, c.wij, ["name"],
                                          recorder=c.owner)
    reply = await release(c.caller, net, stranger, grant_id)
    entry = await assert_denial_logged(c.caller, net, reply, "acting-user-not-listed",
                                       case=c.case.case)
    assert entry["actor"]["acting_user"] == "wij-onbekend-3"
    assert "party" not in entry["actor"]


async def test_consent_by_parties_names_the_acting_users_party(cast: Cast) -> None:
    """A consent for formal parties only covers WIJ's professional, not its volunteer
    (R5 with the acting user's party)."""
    c, net = cast, cast.net
    record = consent(net, c.case, c.owner, classes=["name"], parties=["formal"])
    await post_ok(c.caller, net, "/consents", c.owner, {"consent": record})
    from tests.disclosure_harness import grant
    g = grant(net, c.case, c.wij, ["name"], record["signed"]["consent"])
    await post_ok(c.caller, net, "/grants", net.coordinator, {"grant": g})
    reply = await release(c.caller, net, c.as_user(VOLUNTEER), g["signed"]["grant"])
    await assert_denial_logged(c.caller, net, reply, "consent-does-not-cover-grantee",
                               case=c.case.case)
    assert_status(await release(c.caller, net, c.as_user(PROFESSIONAL), g["signed"]["grant"]),
                  201)


async def test_informal_acting_user_cannot_invoke_bemoeizorg(cast: Cast) -> None:
    """In an oggz network a mixed organisation holding the bemoeizorg role invokes it only
    through a formal acting user (R9 with the acting user's party and roles)."""
    c = cast
    net = Network(c.server, c.clock, kind="oggz", name="OGGZ-netwerk Breda",
                  policy=network_policy("oggz"))
    await register(c.caller, net)
    staff = await staff_oggz(c.caller, net, prefix="breda-")
    wij = net.actor("wij-breda", ring="core", party="formal", roles=("bemoeizorg",))
    wij.users = {PROFESSIONAL: "formal", VOLUNTEER: "informal"}
    wij.acting_user = PROFESSIONAL
    net.members[wij.label] = wij
    assert_status(await c.caller.post(net.path("/members"), net.coordinator,
                                      {"membership": net.membership(wij)}), 201)
    volunteer = person(wij, VOLUNTEER)
    inv = invocation(net, staff.case, volunteer, auditors=[staff.auditor])
    reply = await c.caller.post(net.path("/bemoeizorg"), volunteer, {"invocation": inv})
    entry = await assert_denial_logged(c.caller, net, reply, "bemoeizorg-role-required",
                                       case=staff.case.case)
    assert entry["actor"]["party"] == "informal"
    professional = wij
    inv = invocation(net, staff.case, professional, auditors=[staff.auditor])
    assert_status(await c.caller.post(net.path("/bemoeizorg"), professional,
                                      {"invocation": inv}), 201)
