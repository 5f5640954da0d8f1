"""Identity keys rotate after a revocation (ADR 0011; protocol.md §C.1 "Header versions",
§C.4, §C.5; docs/protocol.md §14.3 ``POST .../cases/{case}/header``, ``GET
.../cases/{case}/holders``, §16.6; server/routes/cases.py, client/identity.py, client/fold.py).

The case's owner replaces the case header with the next ``identity_version``: new class
keys, the identity sealed again under them, gated envelopes only for the members who hold a
basis now.  A former recipient that kept its old class keys opens nothing sealed after.
The server refuses a replacement by anyone but the owner, one that does not raise the
version by one, one on a consult or a closed case, and one that changes anything but the
version and the classes; releases keep working at the new version for grantees whose
basis holds.  The owner's client rotates as a duty after a purge instruction about its
case (a consent revoked, a member removed); every other client believes a replaced header
only as the owner's next version.

Server tests share one server and world (module-scoped loop; each makes its own case);
client tests run real partners against a real server, or behind the tampering proxy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schakel.client import Partner, ServerMisbehaviour, ServerUnreachable
from schakel.protocol import envelopes
from schakel.protocol.crypto import ClassKey
from schakel.protocol.errors import DecryptionError
from schakel.protocol.objects.cases import CaseHeader, IdentityRecord
from schakel.server.context import CTX
from tests import disclosure_harness as dh
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, admit, make_partner, network_policy, running_server,
    server_fingerprint, standard_network,
)
from tests.server_harness import (
    Actor, CaseState, FakeClock, InProcessServer, World, append, assert_error, assert_status,
    build_world, create_case,
)
from tests.tamper_proxy import TamperedServer, tampered_server

shared_loop = pytest.mark.asyncio(loop_scope="module")

EVIDENCE = b"%PDF- ondertekend toestemmingsformulier"
NOTE = {"kind": "note", "text": "Huisbezoek gepland met de wijkverpleging."}


# =========================================================================== the server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("rotation"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller), server.client.app[CTX]
    finally:
        await server.stop()


async def replace(w: World, state: CaseState, body: dict[str, Any],
                  actor: Actor | None = None) -> Any:
    return await w.caller.post(w.a.path(f"/cases/{state.case}/header"), actor or state.owner,
                               body)


async def rows(ctx: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return await ctx.store.read(lambda db: [tuple(r) for r in db.execute(sql, args)])


@shared_loop
async def test_header_replacement_by_anyone_but_the_owner_is_refused(setup: Any) -> None:
    """The owner alone replaces its case's header: the coordinator, another core member and
    a shell partner are 403 even with the owner's own signed body; a header signed by
    another key than the owner's is 401; nothing changes."""
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    body = w.a.replacement(state)
    for other in ("coordinator", "core-informal", "shell-shared"):
        assert_error(await replace(w, state, body, w[other]), 403, "forbidden")
    forged = w.a.replacement(state, signer=w["core-informal"])
    assert_error(await replace(w, state, forged), 401, "bad_signature")
    case = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"), state.owner), 200)
    assert case["header"] == state.header


@shared_loop
async def test_header_replacement_that_does_not_raise_identity_version_by_one_is_refused(
        setup: Any) -> None:
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    for version in (1, 3):
        reply = await replace(w, state, w.a.replacement(state, version=version))
        assert_error(reply, 409, "conflict")
        assert reply.json["error"]["details"]["identity_version"] == 1
    body = w.a.replacement(state)
    assert_status(await replace(w, state, body), 201)
    state.commit_replacement(body)
    again = await replace(w, state, w.a.replacement(state, version=2))   # other keys, same version
    assert_error(again, 409, "conflict")
    assert again.json["error"]["details"]["identity_version"] == 2


@shared_loop
async def test_header_replacement_on_a_consult_is_refused(setup: Any) -> None:
    """A consult has no identity, so nothing to rotate -- not even by a header that turns it
    into a case."""
    w, _ = setup
    body = w.a.replacement(w.consult, identity={"name": IDENTITY["name"]}, kind="case")
    reply = await replace(w, w.consult, body)
    assert_error(reply, 403, "policy_violation")
    assert reply.json["error"]["details"]["reason"] == "consult-has-no-identity"


@shared_loop
@pytest.mark.parametrize("field", ["created", "wrapped_case_key", "epoch", "acting_user"])
async def test_header_replacement_changing_another_field_than_version_and_classes_is_refused(
        setup: Any, field: str) -> None:
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    other = {"created": "2020-01-01T00:00:00Z", "epoch": 7, "acting_user": "someone-else",
             "wrapped_case_key": w.a.new_case(state.owner)[1].header["signed"][
                 "wrapped_case_key"]}[field]
    reply = await replace(w, state, w.a.replacement(state, **{field: other}))
    assert_error(reply, 400, "context_mismatch")
    assert reply.json["error"]["details"]["field"] == field


@shared_loop
async def test_header_replacement_without_a_record_for_each_class_is_refused(
        setup: Any) -> None:
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    body = w.a.replacement(state)
    reply = await replace(w, state, {**body, "identity": body["identity"][:-1]})
    assert_error(reply, 400, "malformed")


@shared_loop
async def test_header_replacement_on_a_closed_case_is_refused(setup: Any) -> None:
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    await append(w.caller, w.a, state, state.owner, status="closed")
    assert_error(await replace(w, state, w.a.replacement(state)), 409, "conflict")


@shared_loop
async def test_identical_header_replacement_retry_answers_the_first_answer(setup: Any) -> None:
    """A lost answer costs nothing: the same request answers 200 with the first answer, and
    every reader of the case gets the new header, from the case and from the feed."""
    w, _ = setup
    state = await create_case(w.caller, w.a, w["core-formal"])
    body = w.a.replacement(state)
    first = assert_status(await replace(w, state, body), 201)
    assert assert_status(await replace(w, state, body), 200) == first
    assert first["identity_version"] == 2
    case = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"),
                                            w["core-informal"]), 200)
    assert case["header"] == body["header"]
    owner_view = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"),
                                                  state.owner), 200)
    assert owner_view["identity"] == sorted(body["identity"], key=lambda e: e["signed"]["class"])
    feed = assert_status(await w.caller.get(
        w.a.path(f"/sync?after={int(first['cursor']) - 1}&limit=1"), w["core-informal"]), 200)
    assert feed["items"][0]["kind"] == "header"
    assert feed["items"][0]["envelope"] == body["header"]


@shared_loop
async def test_releases_keep_working_at_the_new_version_for_grantees_whose_basis_holds(
        setup: Any) -> None:
    """Two grantees receive ``name``; one's consent is revoked.  The holders are the other
    one only; the owner seals version 2 to it; it releases version 2 and reads the
    identity, while the revoked recipient's version-1 key opens no version-2 record and the
    server keeps no version-1 envelope."""
    w, ctx = setup
    a, c = w.a, w.caller
    state = await create_case(c, a, w["core-formal"])
    stays, leaves = w["core-informal"], w["coordinator"]
    _, kept_grant = await dh.consent_and_grant(c, a, state, stays, ["name"])
    revoked, lost_grant = await dh.consent_and_grant(c, a, state, leaves, ["name"])
    for grantee, grant in ((stays, kept_grant), (leaves, lost_grant)):
        assert_status(await dh.release(c, a, grantee, grant), 201)
    await dh.post_ok(c, a, f"/consents/{revoked}/revocation", a.coordinator,
                     {"revocation": dh.revocation(a, state, revoked, a.coordinator)})

    holders = assert_status(await c.get(a.path(f"/cases/{state.case}/holders"), state.owner), 200)
    assert holders == {"case": state.case,
                       "holders": [{"partner": stays.key_id, "classes": ["name"]}]}
    old_name_key = state.class_keys["name"]
    body = a.replacement(state, recipients=[stays])
    assert_status(await replace(w, state, body), 201)
    state.commit_replacement(body)

    answer = assert_status(await dh.release(c, a, stays, kept_grant), 201)
    assert [e["version"] for e in answer["envelopes"]] == [2]
    assert dh.open_release(answer, stays, a, state, w.server) == {"name": IDENTITY["name"]}
    dh.assert_denied(await dh.release(c, a, leaves, lost_grant), "consent-revoked")

    [record] = [IdentityRecord.from_json(e["signed"]) for e in body["identity"]
                if e["signed"]["class"] == "name"]
    for version in (1, 2):
        with pytest.raises(DecryptionError):
            envelopes.decrypt_json(old_name_key, record.ciphertext, envelopes.identity_context(
                a.id, state.case, "name", version=version))
    assert await rows(ctx, "SELECT DISTINCT version FROM gated WHERE network = ? AND [case] = ?",
                      a.id, state.case) == [(2,)]


@shared_loop
async def test_holders_of_an_oggz_case_include_the_bemoeizorg_role_holders(setup: Any) -> None:
    """The bemoeizorg role is a standing basis (R8, R9): its formal holders stay holders of
    every class, so an emergency release still finds its envelope after a rotation."""
    w, _ = setup
    cast = await dh.staff_oggz(w.caller, w.b, prefix="rot-")
    holders = assert_status(await w.caller.get(w.b.path(f"/cases/{cast.case.case}/holders"),
                                               cast.owner), 200)["holders"]
    classes = sorted(w.b.policy["classes"])
    assert {h["partner"]: h["classes"] for h in holders} == {
        cast.invoker.key_id: classes, cast.second.key_id: classes}


# =========================================================================== the clients


async def consented_grant(cast: Any, case: str, grantee: Partner,
                          classes: tuple[str, ...] = ("name",)) -> tuple[str, str]:
    coordinator, network = cast.coordinator, cast.network
    await coordinator.sync(network)
    consent = await coordinator.disclosure.record_consent(
        network, case, classes=classes, partners=[grantee.key_id],
        purpose="Afstemming van hulp rond de woning.", evidence=EVIDENCE)
    grant = await coordinator.disclosure.grant(network, case, consent=consent, grantee=grantee.key_id,
                                    classes=classes, reason="huisbezoek plannen")
    await grantee.sync(network)
    await grantee.disclosure.release(network, grant)
    return consent, grant


def server_rows(tmp_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{tmp_path / 'server' / 'schakel.db'}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(sql, args)]
    finally:
        db.close()


def class_key(partner: Partner, network: str, case: str, cls: str, version: int) -> ClassKey:
    raw = partner.session.state.get_secret("class-key", (network, case, cls, str(version)))
    assert raw is not None
    return ClassKey(raw)


async def test_owner_rotates_identity_after_a_consent_revocation(tmp_path: Path) -> None:
    """The former recipient kept its class key (a non-compliant client: it never runs its
    duties).  The owner's duty after the revocation publishes identity version 2 -- a new
    header, new records, gated envelopes only for the grantee whose basis holds -- which
    the kept key does not open; the remaining grantee releases version 2; another member
    believes the new header; and the duty rotates once."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, owner = cast.network, cast.formal
            former, stays = cast.informal, await cast.join(tmp_path, url, "wijkteam-zuid")
            await owner.sync(network)
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            revoked, _ = await consented_grant(cast, case, former)
            _, grant = await consented_grant(cast, case, stays)
            kept = class_key(former, network, case, "name", 1)

            await cast.coordinator.disclosure.revoke_consent(network, case, revoked, reason="ingetrokken")
            report = (await owner.sync(network)).duties
            assert report is not None and report.rotated == [case]
            header = owner.session.header(network, case)
            assert (header.identity_version, header.classes) == (2, ("address", "name",
                                                                     "official"))
            assert owner.identity.get(network, case) == IDENTITY

            table = "SELECT {} FROM {} WHERE network = ? AND [case] = ?"
            assert server_rows(tmp_path, table.format("DISTINCT version", "identity"),
                               network, case) == [(2,)]
            assert server_rows(tmp_path, table.format("version, recipient, class", "gated"),
                               network, case) == [(2, stays.key_id, "name")]
            [record] = [IdentityRecord.from_json(json.loads(r[0])["signed"])
                        for r in server_rows(tmp_path, table.format("envelope", "identity")
                                             + " AND class = 'name'", network, case)]
            for version in (1, 2):
                with pytest.raises(DecryptionError):
                    envelopes.decrypt_json(kept, record.ciphertext, envelopes.identity_context(
                        network, case, "name", version=version))

            released = await stays.disclosure.release(network, grant)
            assert released.classes == {"name": IDENTITY["name"]}
            assert class_key(stays, network, case, "name", 2) is not None

            await cast.coordinator.sync(network)
            assert cast.coordinator.session.header(network, case).identity_version == 2
            assert (await owner.duties(network)).rotated == []
        finally:
            await cast.close()


async def test_owner_rotates_identity_after_removing_a_member_that_held_identity(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, owner, leaver = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await consented_grant(cast, case, leaver)
            await cast.coordinator.networks.remove(network, leaver.key_id, reason="verlaat het netwerk")
            report = (await owner.sync(network)).duties
            assert report is not None and report.rotated == [case]
            assert owner.session.header(network, case).identity_version == 2
            assert server_rows(tmp_path, "SELECT recipient FROM gated WHERE network = ?"
                               " AND [case] = ?", network, case) == []
        finally:
            await cast.close()


async def test_rotation_whose_answer_was_lost_is_sent_again_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stored the replacement but its answer never arrived.  The owner kept the
    request and its new keys, so the next duty sends the same bytes: the server answers
    its first answer, the case has version 2 (not 3), and the owner's keys open the
    records the server holds."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, owner, former = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            revoked, _ = await consented_grant(cast, case, former)
            await cast.coordinator.disclosure.revoke_consent(network, case, revoked, reason="ingetrokken")
            post = owner.session.conn.post

            async def answer_lost(path: str, body: Any, **kwargs: Any) -> Any:
                answer = await post(path, body, **kwargs)
                if path.endswith("/header"):
                    raise ServerUnreachable("the answer was lost")
                return answer

            monkeypatch.setattr(owner.session.conn, "post", answer_lost)
            with pytest.raises(ServerUnreachable):
                await owner.duties(network)
            monkeypatch.setattr(owner.session.conn, "post", post)
            assert (await owner.duties(network)).rotated == [case]

            assert owner.session.header(network, case).identity_version == 2
            assert server_rows(tmp_path, "SELECT identity_version FROM header_versions"
                               " WHERE network = ? AND [case] = ?", network, case) == [(2,)]
            for envelope, cls in server_rows(tmp_path, "SELECT envelope, class FROM identity"
                                             " WHERE network = ? AND [case] = ?", network, case):
                record = IdentityRecord.from_json(json.loads(envelope)["signed"])
                assert envelopes.decrypt_json(
                    class_key(owner, network, case, cls, 2), record.ciphertext,
                    envelopes.identity_context(network, case, cls, version=2)) == IDENTITY[cls]
        finally:
            await cast.close()


# =========================================================================== a lying server


@dataclass
class Lied:
    env: TamperedServer
    owner: Partner
    reader: Partner
    network: str
    case: str


@pytest.fixture
async def rotated(tmp_path: Path) -> AsyncIterator[Lied]:
    """An owner (the coordinator) that rotated its case once, and a core member that
    synced the new header, behind the tampering proxy."""
    async with tampered_server(tmp_path) as env:
        owner = await make_partner(tmp_path, env.url, "coordinator")
        reader = await make_partner(tmp_path, env.url, "reader")
        try:
            network = await owner.networks.create(
                name="Buurtnetwerk Test", kind="neighbourhood", covenant=COVENANT,
                policy=network_policy("neighbourhood"),
                server_fingerprint=server_fingerprint(env.url))
            await admit(owner, network, reader, ring="core", party="formal")
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            assert await owner.identity.rotate(network, case) == 2
            await reader.sync(network)
            assert reader.session.header(network, case).identity_version == 2
            yield Lied(env, owner, reader, network, case)
        finally:
            await owner.close()
            await reader.close()


def header_of(lied: Lied, *, version: int, signer: Partner | None = None,
              **changes: Any) -> dict[str, Any]:
    signed = dict(lied.reader.session.state.get_doc("header", (lied.network, lied.case))["signed"])
    signed.update(identity_version=version, **changes)
    return CaseHeader.from_json(signed).sign((signer or lied.owner).session.keys.signer)


@pytest.mark.parametrize(("lie", "what"), [
    ("version 1 again", "event-replayed"),
    ("version 4, skipping 3", "event-missing"),
    ("version 3 by another member", "bad-signature"),
    ("another header of version 2", "context-mismatch"),
    ("version 3 under another case key", "context-mismatch"),
])
async def test_ls8_replaced_header_is_believed_only_as_the_owners_next_version(
        rotated: Lied, lie: str, what: str) -> None:
    """LS-8 for ``identity_version``: a header served after the reader holds version 2 is
    believed only if the owner signed version 3 with nothing but the version and classes
    changed.  A rollback to version 1, a gap, a header signed by another member, a second
    version 2, or a change of the case-key fields is caught, recorded, and not believed."""
    lied, net = rotated, rotated.network
    held = lied.reader.session.state.get_doc("header", (net, lied.case))
    first = lied.owner.session.state.get_doc("header", (net, lied.case))
    forged = {
        "version 1 again": lambda: server_headers(lied)[0],
        "version 4, skipping 3": lambda: header_of(lied, version=4),
        "version 3 by another member": lambda: header_of(lied, version=3, signer=lied.reader),
        "another header of version 2": lambda: header_of(lied, version=2, classes=["name"]),
        "version 3 under another case key": lambda: header_of(
            lied, version=3, wrapped_case_key=first["signed"]["wrapped_case_key"][:-4] + "AAAA"),
    }[lie]()
    await lied.owner.cases.add_event(net, lied.case, NOTE)          # a page for the lie to ride on
    lied.env.proxy.on_sync(net, lambda items: [*items, {
        "cursor": str(int(items[-1]["cursor"]) + 1), "kind": "header", "case": lied.case,
        "envelope": forged}], times=1)
    with pytest.raises(ServerMisbehaviour) as caught:
        await lied.reader.sync(net)
    assert lied.env.proxy.hits() > 0
    assert caught.value.what == what, caught.value.message
    assert what in [m["what"] for m in lied.reader.misbehaviours()]
    assert lied.reader.session.state.get_doc("header", (net, lied.case)) == held


def server_headers(lied: Lied) -> list[dict[str, Any]]:
    """Every header the server's feed holds for the case, oldest first."""
    db = sqlite3.connect(f"file:{lied.env.db_path}?mode=ro", uri=True)
    try:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT envelope FROM feed WHERE network = ? AND [case] = ? AND kind = 'header'"
            " ORDER BY id", (lied.network, lied.case))]
    finally:
        db.close()
