"""The client library's core against a real server (ADR 0007; design §4 flows 1, 2, 6).

Real server (tests/client_harness.py: the real app on a loopback socket, real clock),
real keys, real partners with their own home directories; nothing is mocked.  One test
per rule, named after it.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schakel.client import Partner, ServerMisbehaviour, ServerRefused, SyncProgress
from schakel.client.errors import NotFound
from schakel.client.fold import case_key, epoch_keys, epochs_held
from schakel.client.transport import Connection
from schakel.protocol import envelopes
from schakel.protocol.crypto import CaseKey, EpochKey
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, MalformedError, PolicyViolation, UntrustedKeyError,
)
from schakel.protocol.objects.cases import Event
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, Cast, make_partner, running_server, server_fingerprint,
    standard_network,
)

NOTE = {"kind": "note", "text": "Huisbezoek gepland met de wijkverpleging."}


async def requests_served(url: str) -> int:
    """Requests the server answered, by its own Prometheus counter (minus /metrics)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics") as resp:
            text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("schakel_http_requests_total{") and 'route="/metrics"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@pytest.fixture
async def world(tmp_path: Path) -> Any:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            yield cast, url, tmp_path
        finally:
            await cast.close()


# =========================================================================== onboarding


async def test_members_are_verified_against_the_coordinator_fingerprint(world: Any) -> None:
    cast, _, _ = world
    members = {m["name"]: m for m in cast.informal.networks.members(cast.network)}
    assert members["Welzijn Amersfoort (regie)"]["roles"] == ["coordinator"]
    assert members["Wijkteam Noord"]["roles"] == ["professional-secrecy"]
    assert {m["ring"] for m in members.values()} == {"core", "shell"}
    assert all(m["current"] for m in members.values())
    # every core member holds the epoch keys; shell partners hold none
    for p in (cast.coordinator, cast.formal, cast.informal):
        assert epochs_held(p.session.state, cast.network), p.name
    assert epochs_held(cast.shell.session.state, cast.network) == []


async def test_network_create_on_an_impostor_server_is_refused(tmp_path: Path) -> None:
    """The coordinator was given the fingerprint of the municipality's server, but its
    home points at another server (a typo in the address, a hijacked name, a host that
    poses as it).  That server's keys do not have the fingerprint: the client refuses
    before it signs or sends a genesis, and trusts no network."""
    async with running_server(tmp_path, data="real") as real, \
            running_server(tmp_path, data="impostor") as impostor:
        coordinator = await make_partner(tmp_path, impostor, "coordinator")
        try:
            served_before = await requests_served(impostor)
            with pytest.raises(UntrustedKeyError) as caught:
                await coordinator.networks.create(name="Buurtnetwerk Soesterkwartier",
                                                 kind="neighbourhood", covenant=COVENANT,
                                                 server_fingerprint=server_fingerprint(real))
            assert impostor in caught.value.message and "nothing was sent" in caught.value.message
            assert coordinator.networks.trusted() == []
            # one unsigned GET /v1/server, and no genesis registered on the impostor
            assert await requests_served(impostor) == served_before + 1
        finally:
            await coordinator.close()


async def test_network_create_refuses_a_misheard_server_fingerprint(tmp_path: Path) -> None:
    """A fingerprint with a digit too few is malformed before anything is asked."""
    async with running_server(tmp_path) as url:
        coordinator = await make_partner(tmp_path, url, "coordinator")
        try:
            served_before = await requests_served(url)
            with pytest.raises(MalformedError):
                await coordinator.networks.create(name="Buurtnetwerk", kind="neighbourhood",
                                                 covenant=COVENANT,
                                                 server_fingerprint=server_fingerprint(url)[:-1])
            assert await requests_served(url) == served_before
        finally:
            await coordinator.close()


async def test_untrusted_genesis_is_refused_and_recorded(world: Any) -> None:
    cast, url, tmp_path = world
    stranger = await make_partner(tmp_path, url, "stranger")
    try:
        # a member whose client was configured with the wrong anchor (another partner's
        # fingerprint): the genesis the server answers does not chain to it
        stranger.trust(cast.network, cast.formal.fingerprint)
        await cast.coordinator.networks.admit(cast.network, stranger.bundle(), ring="shell",
                                     party="formal", fingerprint=stranger.fingerprint)
        with pytest.raises(ServerMisbehaviour) as caught:
            await stranger.session.trusted(cast.network)
        assert caught.value.what == "genesis-untrusted"
        assert [m["what"] for m in stranger.misbehaviours()] == ["genesis-untrusted"]
    finally:
        await stranger.close()


async def test_accept_covenant_refuses_another_text(world: Any) -> None:
    cast, _, _ = world
    with pytest.raises(ContextMismatchError):
        await cast.informal.networks.accept_covenant(cast.network, COVENANT + " (gewijzigd)")
    await cast.informal.networks.accept_covenant(cast.network, COVENANT)      # the real one: fine


async def test_admit_checks_the_fingerprint_read_aloud(world: Any) -> None:
    cast, url, tmp_path = world
    newcomer = await make_partner(tmp_path, url, "newcomer")
    try:
        with pytest.raises(UntrustedKeyError):
            await cast.coordinator.networks.admit(cast.network, newcomer.bundle(), ring="shell",
                                         party="formal", fingerprint=cast.formal.fingerprint)
        assert all(m["key_id"] != newcomer.key_id
                   for m in cast.coordinator.networks.members(cast.network))
    finally:
        await newcomer.close()


# =========================================================================== cases


async def test_create_sync_round_trip_between_two_partners(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE, identity=IDENTITY)
    seq = await cast.formal.cases.add_event(n, case, NOTE)
    assert seq == 2
    result = await cast.informal.sync(n)
    assert case in result.cases and result.items >= 2
    view = cast.informal.cases.get(n, case)
    assert view.readable and view.owner == cast.formal.key_id and view.status == "open"
    assert view.state["neighbourhood"] == "Soesterkwartier"
    assert view.state["domains"] == ["loneliness", "self-care"]
    assert [e.plaintext for e in view.events] == [INTAKE, NOTE]
    assert view.events[1].author_name == "Wijkteam Noord"
    # the other way round
    await cast.informal.cases.add_event(n, case, {"kind": "analysis", "text": "Eenzaamheid speelt.",
                                            "severity": "high"})
    await cast.formal.sync(n)
    again = cast.formal.cases.get(n, case)
    assert again.state["severity"] == "high" and len(again.state["analysis"]) == 1
    # nobody but the owner holds identity
    assert cast.informal.session.state.secret_refs("identity", (n, case)) == []
    assert cast.informal.session.state.secret_refs("class-key", (n, case)) == []
    assert len(cast.formal.session.state.secret_refs("identity", (n, case))) == len(IDENTITY)
    served = await cast.informal.session.conn.get(f"/v1/networks/{n}/cases/{case}")
    assert served["identity"] == []
    # closing and reopening are events too
    await cast.formal.cases.close(n, case, reason="afgerond")
    await cast.informal.sync(n)
    assert cast.informal.cases.get(n, case).status == "closed"
    with pytest.raises(NotFound):
        cast.informal.cases.get(n, "AAAAAAAAAAAAAAAAAAAAAA")


async def test_pii_in_an_intake_is_refused_before_any_request_is_sent(world: Any) -> None:
    cast, url, _ = world
    n = cast.network
    leaky = dict(INTAKE, summary="Bel mevrouw op 06-12345678, BSN 111222333.")
    before = await requests_served(url)
    with pytest.raises(PolicyViolation) as caught:
        await cast.formal.cases.create(n, leaky, identity=IDENTITY)
    assert {f["kind"] for f in caught.value.details["findings"]} >= {"phone", "bsn"}
    assert "06-12345678" not in caught.value.message
    case = await cast.formal.cases.consult(n, INTAKE)
    middle = await requests_served(url)
    with pytest.raises(PolicyViolation):
        await cast.formal.cases.add_event(n, case, {"kind": "note", "text": "mail: jan@example.nl"})
    assert await requests_served(url) == middle
    assert middle > before          # the counter does count: the consult went through
    # nothing of the refused intake reached the server or the local state
    assert len(cast.formal.cases.all(n)) == 1


async def test_pii_in_a_cleartext_reason_is_refused_before_any_request_is_sent(
        world: Any) -> None:
    """Share and removal reasons travel in cleartext objects the server stores (threat
    model CS-11): the guard runs on them as on the anonymous layer."""
    cast, url, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE, identity=IDENTITY)
    await cast.coordinator.sync(n)
    before = await requests_served(url)
    with pytest.raises(PolicyViolation):
        await cast.coordinator.cases.share(n, case, cast.shell.key_id,
                                     reason="meneer bereikbaar op 06-12345678")
    with pytest.raises(PolicyViolation):
        await cast.coordinator.networks.remove(n, cast.shell.key_id, reason="BSN 111222333")
    assert await requests_served(url) == before
    assert cast.coordinator.networks.members(n) and all(
        m["current"] for m in cast.coordinator.networks.members(n) if m["key_id"] == cast.shell.key_id)


async def test_consult_has_no_identity(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.informal.cases.consult(n, INTAKE)
    header = cast.informal.session.header(n, case)
    assert header.kind == "consult" and header.identity_version is None and header.classes is None
    served = await cast.informal.session.conn.get(f"/v1/networks/{n}/cases/{case}")
    assert served["identity"] == []
    assert cast.informal.session.state.secret_refs("class-key", (n, case)) == []
    await cast.formal.sync(n)
    view = cast.formal.cases.get(n, case)
    assert view.kind == "consult" and view.events[0].plaintext == INTAKE


async def test_shell_partner_reads_only_shared_cases(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    shared = await cast.formal.cases.create(n, INTAKE, identity=IDENTITY)
    private = await cast.formal.cases.create(n, dict(INTAKE, neighbourhood="Vathorst"))
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, shared, cast.shell.key_id, reason="hulp bij administratie")
    await cast.shell.sync(n)
    assert [v.case for v in cast.shell.cases.all(n)] == [shared]
    view = cast.shell.cases.get(n, shared)
    assert view.readable and view.events[0].plaintext == INTAKE
    with pytest.raises(ServerRefused) as caught:
        await cast.shell.session.conn.get(f"/v1/networks/{n}/cases/{private}")
    assert caught.value.status == 403
    # the shell partner works on the shared case; core members verify its events
    await cast.shell.cases.add_event(n, shared, {"kind": "note", "text": "Administratie besproken."})
    await cast.formal.sync(n)
    assert cast.formal.cases.get(n, shared).events[-1].author == cast.shell.key_id


async def test_shell_partner_fetches_the_history_of_a_case_shared_later(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    first = await cast.formal.cases.create(n, INTAKE)
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, first, cast.shell.key_id, reason="hulp")
    later = await cast.formal.cases.create(n, dict(INTAKE, neighbourhood="Vathorst"))
    await cast.formal.cases.add_event(n, later, NOTE)
    await cast.formal.cases.add_event(n, first, NOTE)       # moves the shell's feed past `later`
    await cast.shell.sync(n)
    assert [v.case for v in cast.shell.cases.all(n)] == [first]
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, later, cast.shell.key_id, reason="hulp")
    await cast.shell.sync(n)
    view = cast.shell.cases.get(n, later)
    assert [e.plaintext for e in view.events] == [dict(INTAKE, neighbourhood="Vathorst"), NOTE]


# =========================================================================== transport


async def test_retries_of_writes_are_idempotent(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    info = cast.formal.session.state.get_doc("case", (n, case))
    event = cast.formal.cases._event(n, case, cast.formal.session.case_key(n, case), 1, seq=2,
                               prev=info["last_hash"], plaintext=NOTE)
    # The first attempt's answer is "lost"; the client retries with a freshly signed
    # request carrying the same body: the server answers the first answer again.
    first = await cast.formal.session.conn.post(f"/v1/networks/{n}/cases/{case}/events", {"event": event})
    second = await cast.formal.session.conn.post(f"/v1/networks/{n}/cases/{case}/events", {"event": event})
    assert first == second and first["seq"] == 2
    served = await cast.formal.session.conn.get(f"/v1/networks/{n}/cases/{case}")
    assert len(served["events"]) == 2
    # and the client's own view stays one chain
    await cast.informal.sync(n)
    assert [e.seq for e in cast.informal.cases.get(n, case).events] == [1, 2]


async def test_transport_retries_until_the_server_answers(tmp_path: Path) -> None:
    import socket
    from aiohttp.test_utils import TestServer
    from tests.server_harness import RealClock, build_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))          # bound, not listening: connections are refused
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = TestServer(build_app(tmp_path / "srv", RealClock(), origin=url), host="127.0.0.1",
                        port=port, socket_factory=lambda *a: sock)

    async def start_later() -> None:
        await asyncio.sleep(0.3)
        await server.start_server()

    conn = Connection(url, None, None, attempts=6, backoff=0.1)
    starter = asyncio.create_task(start_later())
    try:
        answer = await conn.get_unsigned("/v1/server")
        assert set(answer) >= {"log", "gate"}
    finally:
        await starter
        await conn.close()
        await server.close()


async def test_refusals_carry_the_servers_error(world: Any) -> None:
    cast, _, _ = world
    with pytest.raises(ServerRefused) as caught:
        await cast.shell.session.conn.get(f"/v1/networks/{cast.network}/epochs/mine")
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert isinstance(caught.value.message, str) and caught.value.message


# =========================================================================== rotation


async def test_removed_member_cannot_decrypt_events_written_after_its_removal(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.informal.sync(n)
    assert cast.informal.cases.get(n, case).readable
    leaver = cast.informal.session.state          # everything the removed member ever held
    await cast.coordinator.networks.remove(n, cast.informal.key_id, reason="verlaat het netwerk")
    await cast.formal.sync(n)
    assert cast.formal.cases.get(n, case).case_key_version == 2
    await cast.formal.cases.add_event(n, case, NOTE)
    await cast.coordinator.sync(n)
    # the ciphertext as the coordinator synced it from the server
    envelope = cast.coordinator.session.state.get_doc("event", (n, case, "0000000002"))
    after = Event.from_json(envelope["signed"])
    assert after.case_key_version == 2
    old_case_keys = [CaseKey(leaver.get_secret("case-key", ref) or b"")
                     for ref in leaver.secret_refs("case-key", (n, case))]
    old_epoch_keys = [EpochKey(leaver.get_secret("epoch", ref) or b"")
                      for ref in leaver.secret_refs("epoch", (n,))]
    assert old_case_keys and old_epoch_keys
    for key in old_case_keys:
        with pytest.raises(DecryptionError):
            envelopes.decrypt_json(key, after.ciphertext, envelopes.event_context(
                n, case, after.event, version=after.case_key_version))
    for _, rekey in cast.coordinator.session.state.docs("rekey", (n, case)):
        for key in old_epoch_keys:
            with pytest.raises(DecryptionError):
                envelopes.unwrap_case_key(key, rekey["signed"]["wrapped_case_key"], network=n,
                                          case=case, epoch=rekey["signed"]["epoch"],
                                          version=rekey["signed"]["case_key_version"])
    # control: the event written before the removal does open with the old key
    before = Event.from_json(cast.coordinator.session.state.get_doc("event", (n, case, "0000000001"))["signed"])
    assert envelopes.decrypt_json(old_case_keys[0], before.ciphertext, envelopes.event_context(
        n, case, before.event, version=1)) == INTAKE
    with pytest.raises(ServerRefused) as caught:
        await cast.informal.sync(n)
    assert caught.value.status == 403
    assert all(m["key_id"] != cast.informal.key_id or not m["current"]
               for m in cast.coordinator.networks.members(n))


async def test_late_core_member_reads_new_events_but_not_history_until_reshare(world: Any) -> None:
    cast, url, tmp_path = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.formal.cases.add_event(n, case, NOTE)
    late = await cast.join(tmp_path, url, "late", ring="core", party="formal")
    later_note = {"kind": "note", "text": "Nieuwe afspraak na de aansluiting."}
    await cast.formal.sync(n)
    await cast.formal.cases.add_event(n, case, later_note)
    await late.sync(n)
    view = late.cases.get(n, case)
    assert view.readable and view.case_key_version == 2
    assert [e.plaintext for e in view.events] == [None, None, later_note]
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.reshare_history(n, case, late.key_id, reason="dossieroverdracht")
    await late.sync(n)
    assert [e.plaintext for e in late.cases.get(n, case).events] == [INTAKE, NOTE, later_note]
    assert late.session.state.secret_refs("identity", (n, case)) == []


async def test_backfill_lets_a_late_member_receive_a_release(world: Any) -> None:
    cast, url, tmp_path = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE, identity=IDENTITY)
    late = await cast.join(tmp_path, url, "late", ring="core", party="formal")
    await cast.coordinator.sync(n)
    consent = await cast.coordinator.disclosure.record_consent(
        n, case, classes=["name", "address"], partners=[late.key_id],
        purpose="Afstemming van hulp rond de woning.", evidence=b"ondertekend formulier")
    grant = await cast.coordinator.disclosure.grant(n, case, consent=consent, grantee=late.key_id,
                                         classes=["name", "address"], reason="huisbezoek")
    await late.sync(n)
    with pytest.raises(ServerRefused) as caught:     # no gated envelope for it yet
        await late.disclosure.release(n, grant)
    assert caught.value.code == "conflict"
    result = await cast.formal.sync(n)                # the owner's duties backfill
    assert result.duties is not None and result.duties.backfilled == [case]
    again = await cast.formal.duties(n)
    assert again.backfilled == []                      # once
    released = await late.disclosure.release(n, grant)
    assert released.classes == {"name": IDENTITY["name"], "address": IDENTITY["address"]}


async def test_coordinator_rekeys_cases_still_under_an_older_epoch(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.coordinator.sync(n)
    epoch = await cast.coordinator._case_keys.distribute_epoch(n, await cast.coordinator.session.trusted(n))
    report = await cast.coordinator.duties(n)
    assert report.rekeyed == [case]
    await cast.formal.sync(n)
    view = cast.formal.cases.get(n, case)
    assert (view.case_key_version, view.epoch) == (2, epoch)
    assert case_key(cast.formal.session.state, n, case, 2) is not None
    assert epoch_keys(cast.formal.session.state, n, epoch) is not None
    await cast.formal.cases.add_event(n, case, NOTE)        # writes under the new version
    await cast.informal.sync(n)
    assert cast.informal.cases.get(n, case).events[-1].plaintext == NOTE


async def test_shell_partner_keeps_reading_after_a_rotation(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, case, cast.shell.key_id, reason="hulp")
    await cast.coordinator.networks.remove(n, cast.informal.key_id, reason="verlaat het netwerk")
    await cast.formal.sync(n)
    await cast.formal.cases.add_event(n, case, NOTE)
    await cast.shell.sync(n)
    view = cast.shell.cases.get(n, case)
    assert view.case_key_version == 2 and view.events[-1].plaintext == NOTE


# =========================================================================== sync


async def test_sync_long_polls_and_reports_progress(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.informal.sync(n)
    pages: list[SyncProgress] = []
    started = time.monotonic()
    waiting = asyncio.create_task(cast.informal.sync(n, wait=20, progress=pages.append))
    await asyncio.sleep(0.3)
    await cast.formal.cases.add_event(n, case, NOTE)
    result = await waiting
    assert time.monotonic() - started < 15
    assert result.items >= 1 and pages and pages[-1].items == result.items and pages[-1].done
    assert cast.informal.cases.get(n, case).events[-1].plaintext == NOTE


async def test_cases_are_listed_in_order_with_their_state(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    a = await cast.formal.cases.create(n, INTAKE)
    b = await cast.informal.cases.consult(n, dict(INTAKE, neighbourhood="Vathorst"))
    await cast.coordinator.sync(n)
    listed = cast.coordinator.cases.all(n)
    assert {v.case for v in listed} == {a, b}
    assert {v.case: v.kind for v in listed} == {a: "case", b: "consult"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v.created) for v in listed)


# =========================================================================== a lying server
#
# The server's SQLite file is edited directly, as an intruder on the disk (or a
# dishonest operator) would: the client must catch it, record it and refuse.


def server_db(tmp_path: Path) -> Any:
    import sqlite3
    conn = sqlite3.connect(tmp_path / "server" / "schakel.db", isolation_level=None, timeout=10)
    return conn


async def test_a_dropped_event_is_event_missing(world: Any) -> None:
    cast, _, tmp_path = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.formal.cases.add_event(n, case, NOTE)
    await cast.formal.cases.add_event(n, case, {"kind": "note", "text": "Derde notitie."})
    await cast.informal.sync(n)
    reader = await make_partner(tmp_path, cast.formal.server, "reader")
    try:
        await admit_core(cast, reader)
        db = server_db(tmp_path)
        envelope = cast.formal.session.state.get_doc("event", (n, case, "0000000002"))
        import json as _json
        from schakel.protocol.canonical import canonical_json
        text = canonical_json(envelope).decode()
        deleted = db.execute("DELETE FROM feed WHERE network = ? AND kind = 'event' AND "
                             "envelope = ?", (n, text)).rowcount
        if deleted == 0:          # stored in another serialisation: match on the event id
            rows = db.execute("SELECT id, envelope FROM feed WHERE network = ? AND kind = 'event'",
                              (n,)).fetchall()
            target = [i for i, e in rows
                      if _json.loads(e)["signed"]["event"] == envelope["signed"]["event"]]
            db.execute("DELETE FROM feed WHERE id = ?", (target[0],))
        db.close()
        with pytest.raises(ServerMisbehaviour) as caught:
            await reader.sync(n)
        assert caught.value.what == "event-missing"
        assert [m["what"] for m in reader.misbehaviours()] == ["event-missing"]
        # nothing of the broken page was kept: the case stops before the gap
        assert reader.session.state.get_doc("event", (n, case, "0000000003")) is None
    finally:
        await reader.close()


async def admit_core(cast: Cast, partner: Partner) -> None:
    from tests.client_harness import admit
    await admit(cast.coordinator, cast.network, partner, ring="core", party="formal")


async def test_an_event_moved_to_another_case_is_context_mismatch(world: Any) -> None:
    cast, _, tmp_path = world
    n = cast.network
    a = await cast.formal.cases.create(n, INTAKE)
    b = await cast.formal.cases.create(n, dict(INTAKE, neighbourhood="Vathorst"))
    await cast.formal.cases.add_event(n, a, NOTE)
    db = server_db(tmp_path)
    import json as _json
    rows = db.execute("SELECT id, envelope FROM feed WHERE network = ? AND kind = 'event'",
                      (n,)).fetchall()
    [(row_id, _)] = [(i, e) for i, e in rows if _json.loads(e)["signed"]["seq"] == 2]
    db.execute("UPDATE feed SET [case] = ? WHERE id = ?", (b, row_id))
    db.close()
    with pytest.raises(ServerMisbehaviour) as caught:
        await cast.informal.sync(n)
    assert caught.value.what == "context-mismatch"


async def test_an_altered_event_is_bad_signature(world: Any) -> None:
    cast, _, tmp_path = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    db = server_db(tmp_path)
    import json as _json
    from schakel.protocol.canonical import canonical_json
    (row_id, text), = db.execute("SELECT id, envelope FROM feed WHERE network = ? AND "
                                 "kind = 'event'", (n,)).fetchall()
    envelope = _json.loads(text)
    envelope["signed"]["created"] = "2020-01-01T00:00:00Z"
    db.execute("UPDATE feed SET envelope = ? WHERE id = ?",
               (canonical_json(envelope).decode(), row_id))
    db.close()
    with pytest.raises(ServerMisbehaviour) as caught:
        await cast.informal.sync(n)
    assert caught.value.what == "bad-signature"
    assert cast.informal.session.state.get_doc("event", (n, case, "0000000001")) is None


async def test_a_substituted_member_key_is_refused(world: Any) -> None:
    cast, url, tmp_path = world
    n = cast.network
    db = server_db(tmp_path)
    import json as _json
    from schakel.protocol.canonical import canonical_json
    rows = db.execute("SELECT id, envelope FROM memberships WHERE network = ? AND member = ?",
                      (n, cast.shell.key_id)).fetchall()
    row_id, text = rows[0]
    envelope = _json.loads(text)
    # the server offers its own box key for the shell partner: sealing to it would leak
    envelope["signed"]["box"] = cast.formal.session.keys.public.box.b64()
    db.execute("UPDATE memberships SET envelope = ? WHERE id = ?",
               (canonical_json(envelope).decode(), row_id))
    db.close()
    newcomer = await make_partner(tmp_path, url, "newcomer")
    try:
        newcomer.trust(n, cast.coordinator.fingerprint)
        # a partner that never saw the honest membership: the signature does not verify
        with pytest.raises(ServerMisbehaviour) as caught:
            await cast.coordinator.networks.admit(n, newcomer.bundle(), ring="shell", party="formal")
        assert caught.value.what == "member-key-substituted"
        # a partner that saw it before: the server answers another object for it
        with pytest.raises(ServerMisbehaviour) as again:
            await cast.informal.sync(n)
        assert again.value.what == "member-key-substituted"
        assert "member-key-substituted" in {m["what"] for m in cast.informal.misbehaviours()}
    finally:
        await newcomer.close()


# =========================================================================== audit log


async def test_audit_monitor_verifies_the_log_for_whole_and_partial_readers(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE)
    await cast.coordinator.sync(n)
    await cast.coordinator.cases.share(n, case, cast.shell.key_id, reason="hulp")
    whole = await cast.coordinator.audit.monitor(n).verify_all()
    assert whole.size >= 6 and whole.checked == whole.size and whole.erased == 0
    seen: list[int] = []
    partial = await cast.shell.audit.monitor(n).verify_all(progress=seen.append)
    assert partial.size == whole.size and 0 < partial.checked < whole.size
    assert seen and seen[-1] == partial.checked
    entries = await cast.shell.audit.monitor(n).entries()
    assert all(cast.shell.key_id in (e["entry"]["actor"]["partner"], e["entry"].get("subject"))
               for e in entries)


async def test_audit_monitor_catches_a_rollback_and_a_fork(tmp_path: Path) -> None:
    from schakel.protocol.objects.audit import TreeHead
    from schakel.server.serverkeys import ServerKeys
    keys = ServerKeys.generate()
    async with running_server(tmp_path, keys=keys) as url:
        cast = await standard_network(tmp_path, url)
        try:
            n = cast.network
            monitor = cast.auditor.audit.monitor(n)
            head = await monitor.refresh()
            assert head is not None
            # the client once held a bigger head (signed with the real log key): the
            # server's smaller latest head is a rollback
            bigger = TreeHead(network=n, size=head.size + 5, root=head.root,
                              time=head.time).sign(keys.log_signer)
            cast.auditor.session.state.put_doc("tree-head", (n, f"{head.size + 5:016d}"), bigger)
            with pytest.raises(ServerMisbehaviour) as caught:
                await monitor.refresh()
            assert caught.value.what == "audit-rollback"
            cast.auditor.session.state.delete_doc("tree-head", (n, f"{head.size + 5:016d}"))
            # another head of the same size with another root: a fork
            other = TreeHead(network=n, size=head.size, root=b64_root(b"\x01" * 32),
                             time=head.time).sign(keys.log_signer)
            cast.auditor.session.state.put_doc("tree-head", (n, f"{head.size:016d}"), other)
            with pytest.raises(ServerMisbehaviour) as forked:
                await monitor.refresh()
            assert forked.value.what == "audit-fork"
            assert {m["what"] for m in cast.auditor.misbehaviours()} == {"audit-rollback",
                                                                         "audit-fork"}
            # a receipt that is missing or does not verify
            with pytest.raises(ServerMisbehaviour) as missing:
                await monitor.check_receipt(None)
            assert missing.value.what == "receipt-missing"
        finally:
            await cast.close()


def b64_root(raw: bytes) -> str:
    from schakel.protocol.encoding import b64e
    return b64e(raw)


# =========================================================================== sessions


async def test_a_session_may_name_another_acting_user_without_changing_the_home(
        world: Any) -> None:
    """NEN 7513 wants the person: a partner's system opens a session per employee.  The
    events that session writes carry that person; the home's configured person stays."""
    from tests.client_harness import PASSPHRASE
    cast, _, _ = world
    n = cast.network
    case = await cast.formal.cases.create(n, INTAKE, identity=IDENTITY)
    configured = cast.formal.acting_user
    async with await Partner.open(cast.formal.session.home.path, PASSPHRASE,
                                  acting_user="wijk-collega-2") as colleague:
        await colleague.sync(n)
        await colleague.cases.add_event(n, case, NOTE)
    await cast.informal.sync(n)
    written = cast.informal.session.state.get_doc("event", (n, case, f"{2:010d}"))
    assert written["signed"]["acting_user"] == "wijk-collega-2"
    async with await Partner.open(cast.formal.session.home.path, PASSPHRASE) as again:
        assert again.acting_user == configured


async def test_notifications_are_the_coordinators_only(world: Any) -> None:
    cast, _, _ = world
    n = cast.network
    assert await cast.coordinator.networks.notifications(n) == []
    with pytest.raises(ServerRefused) as refused:
        await cast.informal.networks.notifications(n)
    assert refused.value.status == 403
