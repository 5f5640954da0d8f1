"""Erasure and rectification leave nothing decryptable (AVG art. 17 and 16; protocol.md
§C.12; docs/protocol.md §14.3 ``POST .../cases/{case}/purges``; ADR 0034;
server/disclosure/erasure.py, client/erasure.py, client/shred.py, client/fold.py).

Real partners against the real server (behind the tampering proxy, which forwards
unchanged unless a test installs a rewriter), real SQLite files, real keys.  "Nothing
decryptable" is checked on the files themselves: every file of the server's data
directory and of each partner's home is scanned for the identity's plaintext, for the class
keys (raw and base64url), for the identity records' and gated envelopes' ciphertexts and
for the encrypted rows of the secrets the partners held -- a copy left in a free page or a
write-ahead log would be found -- and every class key a partner still holds is tried on
every identity record the case ever had.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.client.errors import ServerRefused
from schakel.client.shred import purged
from schakel.protocol import envelopes
from schakel.protocol.crypto import ClassKey
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import DecryptionError, PolicyViolation
from schakel.protocol.objects.cases import IdentityPurge, IdentityRecord
from tests.client_harness import Cast, standard_network
from tests.server_harness import IDENTITY, INTAKE
from tests.tamper_proxy import TamperedServer, tampered_server

EVIDENCE = b"%PDF- ondertekend toestemmingsformulier"
REASON = "verzoek betrokkene via regie, AVG art. 17"
OTHER = {"name": {"given_names": "Aaltje", "family_name": "Bakker"},
         "address": {"street": "Kampstraat", "house_number": "3", "postcode": "3811 KK",
                     "city": "Amersfoort"}}
#: Strings of IDENTITY that must be found nowhere once it is erased.
PLAINTEXTS = ("de Vries", "Hendrik", "Soesterweg", "3812 AB", "111222333", "1946-05-04")


# --------------------------------------------------------------------------- helpers


async def granted(cast: Cast, case: str, grantee: Partner,
                  classes: tuple[str, ...] = ("name", "address")) -> str:
    """A consent naming ``grantee`` and the coordinator's grant under it: the grant id."""
    coordinator, network = cast.coordinator, cast.network
    await coordinator.sync(network)
    consent = await coordinator.disclosure.record_consent(
        network, case, classes=classes, partners=[grantee.key_id],
        purpose="Afstemming van hulp rond de woning.", evidence=EVIDENCE)
    grant = await coordinator.disclosure.grant(network, case, consent=consent,
                                               grantee=grantee.key_id, classes=classes,
                                               reason="huisbezoek plannen")
    await grantee.sync(network)
    return grant


def db_rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(sql, args)]
    finally:
        db.close()


def records(env: TamperedServer, network: str, case: str) -> list[IdentityRecord]:
    return [IdentityRecord.from_json(json.loads(r[0])["signed"]) for r in db_rows(
        env.db_path, "SELECT envelope FROM identity WHERE network = ? AND [case] = ?",
        network, case)]


def gated_blobs(env: TamperedServer, network: str, case: str) -> list[str]:
    return [r[0] for r in db_rows(env.db_path, "SELECT blob FROM gated WHERE network = ?"
                                  " AND [case] = ?", network, case)]


def class_keys(partner: Partner, network: str, case: str) -> dict[tuple[str, int], bytes]:
    state = partner.session.state
    out = {}
    for ref in state.secret_refs("class-key", (network, case)):
        raw = state.get_secret("class-key", ref)
        assert raw is not None
        out[(ref[2], int(ref[3]))] = raw
    return out


def secret_rows(partner: Partner, network: str, case: str) -> list[bytes]:
    """The encrypted rows of the identity secrets (class keys, plaintext) of ``case`` a
    partner holds, as stored in its ``state.db``."""
    path = partner.session.state.path
    return [bytes(r[0]) for r in db_rows(path, "SELECT value FROM secrets WHERE kind IN"
                                         " ('class-key', 'identity') AND ref LIKE ?",
                                         f"{network}\x1f{case}\x1f%")]


def HOMES(tmp_path: Path) -> list[Path]:
    return [tmp_path / label for label in ("coordinator", "core-formal", "core-informal",
                                           "shell", "auditor")]


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]


def leftovers(roots: Iterable[Path], needles: Iterable[bytes]) -> list[str]:
    """Which needle is found in which file under ``roots`` (none: an empty list)."""
    wanted = [n for n in needles if n]
    found = []
    for path in files_under(*roots):
        data = path.read_bytes()
        found += [f"{path.name}: {n[:12]!r}" for n in wanted if n in data]
    return found


def opens(keys: Iterable[bytes], recs: Iterable[IdentityRecord], network: str,
          case: str) -> list[str]:
    """Which (key, record) pairs still decrypt: none may, after a purge."""
    out = []
    for raw in keys:
        for r in recs:
            try:
                envelopes.decrypt_json(ClassKey(raw), r.ciphertext, envelopes.identity_context(
                    network, case, r.class_, version=r.version))
            except DecryptionError:
                continue
            out.append(f"{r.class_} v{r.version}")
    return out


def audit_bodies(env: TamperedServer, network: str, action: str) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in db_rows(env.db_path, "SELECT body FROM audit_entries"
                                              " WHERE network = ?", network)
            if r[0] is not None and json.loads(r[0])["action"] == action]


def purge_envelope(signer: Partner, network: str, case: str, *, kind: str = "erasure",
                   version: int = 1, purge: str | None = None) -> dict[str, Any]:
    return IdentityPurge(network=network, case=case, purge=purge or b64e(bytes(16)), kind=kind,
                         identity_version=version, classes=("address", "name", "official"),
                         acting_user=signer.acting_user, at=signer.session.stamp(),
                         reason=REASON).sign(signer.session.keys.signer)


async def post_purge(partner: Partner, network: str, case: str,
                     envelope: dict[str, Any]) -> ServerRefused:
    with pytest.raises(ServerRefused) as info:
        await partner.session.conn.post(f"/v1/networks/{network}/cases/{case}/purges",
                                        {"purge": envelope})
    return info.value


# --------------------------------------------------------------------------- erasure


async def test_after_erasure_no_decryptable_identity_is_left_anywhere(tmp_path: Path) -> None:
    """The coordinator erases on the person's request.  Afterwards no file of the server or
    of any partner -- the owner, a grantee that received two classes, the others --
    holds the identity's plaintext, a class key, an identity record's or gated envelope's
    ciphertext, or a copy of an encrypted secret row; no key anyone holds opens any record
    the case had; and the erasure is audited with its reason sealed."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner, grantee = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            grant = await granted(cast, case, grantee)
            await grantee.disclosure.release(network, grant)
            assert grantee.identity.get(network, case)["name"] == IDENTITY["name"]
            # Another person's case stays: its rows share the pages the erased ones leave.
            other = await owner.cases.create(network, INTAKE, identity=OTHER)
            await grantee.disclosure.release(network, await granted(cast, other, grantee))

            recs = records(env, network, case)
            keys = {**class_keys(owner, network, case), **class_keys(grantee, network, case)}
            assert opens(keys.values(), recs, network, case)          # they did open
            rows = [row for p in cast.partners for row in secret_rows(p, network, case)]
            needles = [s.encode() for s in PLAINTEXTS]
            needles += [k for k in keys.values()] + [b64e(k).encode() for k in keys.values()]
            needles += [r.ciphertext.encode() for r in recs]
            needles += [b.encode() for b in gated_blobs(env, network, case)]
            needles += rows
            assert len(rows) >= 8                                      # what there was to find
            assert leftovers([tmp_path / "server", *HOMES(tmp_path)], needles)
            # As in a database that has run a while: what was written is in the main files,
            # not only in their write-ahead logs, when the erasure deletes it.
            for path in files_under(tmp_path / "server", *HOMES(tmp_path)):
                if path.suffix == ".db":
                    with sqlite3.connect(path) as db:
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

            done = await cast.coordinator.erasure.erase(network, case, reason=REASON)
            assert (done.kind, done.identity_version) == ("erasure", 1)
            for p in cast.partners:
                await p.sync(network)

            assert leftovers([tmp_path / "server", *HOMES(tmp_path)], needles) == []
            for p in cast.partners:
                assert p.identity.get(network, case) == {}
                assert class_keys(p, network, case) == {}
                held = [p.session.state.get_secret("class-key", r) or b""
                        for r in p.session.state.secret_refs("class-key", (network,))]
                assert opens(held, recs, network, case) == []
            for table in ("identity", "gated"):
                assert db_rows(env.db_path, f"SELECT 1 FROM {table} WHERE network = ?"
                               " AND [case] = ?", network, case) == []
            assert db_rows(env.db_path, "SELECT 1 FROM tokens WHERE network = ? AND"
                           " subject_kind = 'case' AND subject = ?", network, case) == []
            [entry] = audit_bodies(env, network, "erasure")
            assert (entry["case"], entry["ref"], entry["actor"]["role"]) == (
                case, done.purge, "coordinator")
            assert entry["subject"] == owner.key_id and REASON not in json.dumps(entry)
            assert {p["reader"] for p in entry["purpose"]} >= {cast.coordinator.key_id}
            assert grantee.identity.get(network, other)["name"] == OTHER["name"]
            # The anonymous layer stays until retention (ADR 0034).
            assert owner.cases.get(network, case).state["age_band"] == "75-84"
        finally:
            await cast.close()


async def test_partner_offline_during_erasure_purges_when_it_syncs_later(
        tmp_path: Path) -> None:
    """A grantee that is offline when the case is erased still holds its keys; the purge
    waits in its feed, and its next sync destroys them."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner, away = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await away.disclosure.release(network, await granted(cast, case, away))
            recs = records(env, network, case)
            await owner.erasure.erase(network, case, reason=REASON)

            assert opens(class_keys(away, network, case).values(), recs, network, case)
            assert owner.identity.get(network, case) == {}          # the owner at once
            await cast.shell.sync(network)                            # the others go on
            await cast.coordinator.sync(network)

            await away.sync(network)
            assert class_keys(away, network, case) == {}
            assert away.identity.get(network, case) == {}
            assert purged(away.session.state, network, case) == {"version": 1, "erased": True}
        finally:
            await cast.close()


async def test_release_of_erased_identity_is_refused_and_audited(tmp_path: Path) -> None:
    """After the erasure a release under a grant made before it is denied (R14) and the
    denial audited; the grantee's client refuses early to grant on it; and an answer that
    hands out the erased version again -- the first release's answer served once more --
    is refused by the client as server misbehaviour and stores nothing."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner, grantee = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            grant = await granted(cast, case, grantee)
            await grantee.disclosure.release(network, grant)
            [first] = [e.body for e in env.proxy.seen("POST", rf"/v1/networks/{network}/releases")
                       if e.status == 201]
            later = await granted(cast, case, cast.formal)              # not released yet
            await cast.coordinator.erasure.erase(network, case, reason=REASON)
            await grantee.sync(network)
            await cast.formal.sync(network)

            with pytest.raises(ServerRefused) as info:
                await cast.formal.disclosure.release(network, later)
            assert (info.value.status, info.value.details["reason"]) == (403, "identity-erased")
            [denial] = [e for e in audit_bodies(env, network, "deny")
                        if e["reason"] == "identity-erased"]
            assert (denial["case"], denial["ref"]) == (case, later)

            with pytest.raises(PolicyViolation) as early:
                await cast.coordinator.disclosure.grant(
                    network, case, consent=b64e(bytes(16)), grantee=grantee.key_id,
                    classes=("name",), reason="huisbezoek plannen")
            assert early.value.details["reason"] == "identity-erased"

            with pytest.raises(ServerMisbehaviour) as replayed:
                await grantee.disclosure._accept_release(network, first, action="release",
                                                         ref=grant, release_id=first["release"])
            assert replayed.value.what == "event-replayed"
            assert grantee.identity.get(network, case) == {}
            assert class_keys(grantee, network, case) == {}
        finally:
            await cast.close()


# --------------------------------------------------------------------------- rectification


async def test_rectification_gives_holders_the_new_fields_and_purges_the_old(
        tmp_path: Path) -> None:
    """The owner corrects the address.  Every holder of version 1 destroys it when it
    syncs (no key anyone holds opens a version-1 record); the grantee releases again under
    the same grant and reads the corrected address at version 2; the server holds only
    version 2; and the rectification is audited."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner, grantee = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            grant = await granted(cast, case, grantee)
            await grantee.disclosure.release(network, grant)
            old = records(env, network, case)
            fixed = {"street": "Soesterweg", "house_number": "14", "postcode": "3812 AB",
                     "city": "Amersfoort"}

            done = await owner.erasure.rectify(network, case, {"address": fixed},
                                               reason="verzoek betrokkene, AVG art. 16")
            assert (done.kind, done.identity_version) == ("rectification", 1)
            assert owner.identity.get(network, case) == {**IDENTITY, "address": fixed}
            await grantee.sync(network)
            assert grantee.identity.get(network, case) == {}
            for p in cast.partners:
                held = class_keys(p, network, case)
                assert all(version == 2 for _, version in held)
                assert opens(held.values(), old, network, case) == []

            released = await grantee.disclosure.release(network, grant)
            assert released.classes == {"name": IDENTITY["name"], "address": fixed}
            assert {v for _, v in class_keys(grantee, network, case)} == {2}
            assert {r.version for r in records(env, network, case)} == {2}
            assert db_rows(env.db_path, "SELECT DISTINCT version FROM gated WHERE network = ?"
                           " AND [case] = ?", network, case) == [(2,)]
            [entry] = audit_bodies(env, network, "rectification")
            assert (entry["case"], entry["ref"], entry["actor"]["partner"]) == (
                case, done.purge, owner.key_id)
        finally:
            await cast.close()


# --------------------------------------------------------------------------- who may purge


async def test_forged_purge_instruction_is_refused_by_the_client(tmp_path: Path) -> None:
    """A purge the server slips into the feed signed by another member than the owner or
    the coordinator -- or a rectification signed by the coordinator, which only the owner
    makes -- is ``bad-signature``: nothing is destroyed, and the genuine erasure after it
    is still executed."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner, grantee = cast.network, cast.formal, cast.informal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await grantee.disclosure.release(network, await granted(cast, case, grantee))
            held = class_keys(grantee, network, case)
            forgeries = [purge_envelope(cast.informal, network, case),
                         purge_envelope(cast.coordinator, network, case, kind="rectification",
                                        version=1)]
            for forged in forgeries:
                def inject(items: list[dict[str, Any]], forged: Any = forged) -> list[dict[str, Any]]:
                    last = items[-1]
                    return [*items, {"cursor": str(int(last["cursor"]) + 1), "kind": "purge",
                                     "case": case, "envelope": forged}]
                rule = env.proxy.on_sync(network, inject, times=1)
                await owner.cases.add_event(network, case, {"kind": "note",
                                                             "text": "Huisbezoek gepland."})
                with pytest.raises(ServerMisbehaviour) as info:
                    await grantee.sync(network)
                assert info.value.what == "bad-signature" and rule.hits == 1
                assert class_keys(grantee, network, case) == held
                assert grantee.identity.get(network, case) != {}
            await cast.coordinator.erasure.erase(network, case, reason=REASON)
            await grantee.sync(network)
            assert class_keys(grantee, network, case) == {}
        finally:
            await cast.close()


async def test_purge_by_anyone_but_the_owner_or_for_an_erasure_the_coordinator_is_refused(
        tmp_path: Path) -> None:
    """The server takes an erasure from the owner or the coordinator and a rectification
    from the owner only (403 otherwise, also for the coordinator); a purge signed by
    another key than the caller's is 401; a version that does not fit is 409, a second
    erasure 409, a header replacement after it 409, and a consult 403; nothing was
    deleted by the refused ones."""
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            network, owner = cast.network, cast.formal
            case = await owner.cases.create(network, INTAKE, identity=IDENTITY)
            await cast.coordinator.sync(network)
            refused = await post_purge(cast.informal, network, case,
                                       purge_envelope(cast.informal, network, case))
            assert (refused.status, refused.code) == (403, "forbidden")
            refused = await post_purge(cast.coordinator, network, case, purge_envelope(
                cast.coordinator, network, case, kind="rectification"))
            assert (refused.status, refused.code) == (403, "forbidden")
            refused = await post_purge(cast.coordinator, network, case,
                                       purge_envelope(owner, network, case))
            assert (refused.status, refused.code) == (401, "bad_signature")
            refused = await post_purge(owner, network, case,
                                       purge_envelope(owner, network, case, version=2))
            assert (refused.status, refused.details["identity_version"]) == (409, 1)
            refused = await post_purge(owner, network, case, purge_envelope(
                owner, network, case, kind="rectification", version=1))
            assert (refused.status, refused.details["identity_version"]) == (409, 1)
            assert len(records(env, network, case)) == 3
            tv = await owner.session.trusted(network)
            replacement = await owner.identity._prepare_rotation(network, tv, case, None)

            await owner.erasure.erase(network, case, reason=REASON)
            refused = await post_purge(cast.coordinator, network, case, purge_envelope(
                cast.coordinator, network, case, purge=b64e(b"x" * 16)))
            assert (refused.status, refused.code) == (409, "conflict")
            with pytest.raises(ServerRefused) as info:
                await owner.session.conn.post(f"/v1/networks/{network}/cases/{case}/header",
                                              replacement["body"])
            assert (info.value.status, info.value.code) == (409, "conflict")
            assert records(env, network, case) == []
            with pytest.raises(PolicyViolation) as early:
                await owner.identity.rotate(network, case, identity={"name": IDENTITY["name"]})
            assert early.value.details["reason"] == "identity-erased"

            consult = await owner.cases.consult(network, INTAKE)
            refused = await post_purge(owner, network, consult,
                                       purge_envelope(owner, network, consult))
            assert (refused.status, refused.details["reason"]) == (403,
                                                                    "consult-has-no-identity")
        finally:
            await cast.close()
