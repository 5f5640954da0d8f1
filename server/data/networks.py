"""Queries for networks and their trust objects: genesis, memberships, revocations,
covenant acceptances and epoch-key distributions (docs/protocol.md §14; protocol.md §N)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from schakel.server.audit import AuditNote
from schakel.server.data import Written, insert, insert_once
from schakel.server.errors import Conflict
from schakel.server.storage import Db
from schakel.server.trustlog import append_trust_txn, trust_size


@dataclass(frozen=True, kw_only=True)
class Stored:
    """A verified signed object ready to store: its canonical JSON and digest, with the
    server's receive time and the acting user of the request that brought it."""

    network: str
    envelope: str
    digest: bytes
    received: str
    acting_user: str

    def row(self) -> dict[str, Any]:
        return {"envelope": self.envelope, "digest": self.digest, "received": self.received,
                "acting_user": self.acting_user}


# --------------------------------------------------------------------------- writes


def register_network_txn(db: Db, obj: Stored, *, coordinator: str, kind: str) -> Written:
    """Register a network from its genesis, which becomes leaf 0 of its trust log
    (§15.8); the same genesis again answers the same."""
    created, _ = insert_once(db, "networks", {"network": obj.network},
                             {"genesis": obj.envelope, "digest": obj.digest,
                              "coordinator": coordinator, "kind": kind,
                              "received": obj.received, "acting_user": obj.acting_user},
                             what="network")
    if created:
        append_trust_txn(db, obj.network, obj.envelope)
    return Written(created, {"network": obj.network})


def add_membership_txn(db: Db, obj: Stored, *, member: str, serial: int,
                       audit: AuditNote) -> Written:
    """Register a membership; a new one is audited (``membership``) and appended to the
    trust log in the same savepoint."""
    created, _ = insert_once(db, "memberships",
                             {"network": obj.network, "member": member, "serial": serial},
                             obj.row(), what="membership with this serial")
    if created:
        append_trust_txn(db, obj.network, obj.envelope)
        audit.append_txn(db)
    return Written(created, {"member": member, "serial": serial})


def add_revocation_txn(db: Db, obj: Stored, *, member: str, serial: int, audit: AuditNote,
                       purge: Callable[[Db], object] | None = None) -> Written:
    """Register a revocation; a new one is audited (``membership-revoke``), appended to
    the trust log and, when it removes the member at once, followed in the same savepoint by
    ``purge`` (the ``membership-removed`` instructions it owes, protocol.md §N.5)."""
    created, _ = insert_once(db, "revocations", {"network": obj.network, "digest": obj.digest},
                             {**obj.row(), "member": member, "serial": serial},
                             what="revocation")
    if created:
        append_trust_txn(db, obj.network, obj.envelope)
        audit.append_txn(db)
        if purge is not None:
            purge(db)
    return Written(created, {"member": member, "serial": serial})


def add_policy_txn(db: Db, obj: Stored, *, version: int, issued: str, audit: AuditNote) -> Written:
    """Register policy ``version``; it must be the next version, not dated before the one
    in force (protocol.md §N.3), else :class:`Conflict`.  A new one is audited (``policy``)
    and appended to the trust log in the same savepoint; the same envelope again answers
    the same."""
    row = db.execute("SELECT version, issued, digest FROM network_policies WHERE network = ?"
                     " ORDER BY version DESC LIMIT 1", (obj.network,)).fetchone()
    last_version, last_issued = (1, None) if row is None else (int(row["version"]), row["issued"])
    if not (row is not None and version <= last_version):
        if version != last_version + 1:
            raise Conflict(f"the next policy version of this network is {last_version + 1}",
                           details={"field": "version", "expected": last_version + 1})
        if last_issued is not None and issued < last_issued:
            raise Conflict(f"policy version {version} is dated before version {last_version}",
                           details={"field": "issued"})
    created, _ = insert_once(db, "network_policies", {"network": obj.network, "version": version},
                             {**obj.row(), "issued": issued}, what=f"policy version {version}")
    if created:
        append_trust_txn(db, obj.network, obj.envelope)
        audit.append_txn(db)
    return Written(created, {"network": obj.network, "version": version})


def add_rotation_txn(db: Db, obj: Stored, *, position: int, old: str, new: str, at: str,
                     audit: AuditNote) -> Written:
    """Register coordinator key rotation ``position`` (1 for the first after the genesis).
    The same envelope again answers the same; a rotation at a position already taken, or
    not the next one (another rotation was registered meanwhile), is :class:`Conflict`.  A
    new one is appended to the trust log and audited (``key-rotation``) in the same
    savepoint."""
    answer = {"network": obj.network, "position": position}
    found = db.execute("SELECT position FROM coordinator_rotations WHERE network = ? AND digest = ?",
                       (obj.network, obj.digest)).fetchone()
    if found is not None:
        return Written(False, {"network": obj.network, "position": int(found["position"])})
    row = db.execute("SELECT MAX(position) AS last FROM coordinator_rotations WHERE network = ?",
                     (obj.network,)).fetchone()
    last = int(row["last"]) if row is not None and row["last"] is not None else 0
    if position != last + 1:
        raise Conflict("the coordinator key was rotated meanwhile; fetch the network again",
                       details={"field": "old", "expected": last + 1})
    insert(db, "coordinator_rotations", {"network": obj.network, "position": position,
                                         "old": old, "new": new, "at": at, **obj.row()})
    append_trust_txn(db, obj.network, obj.envelope)
    audit.append_txn(db)
    return Written(True, answer)


def add_acceptance_txn(db: Db, obj: Stored, *, member: str, covenant: str) -> Written:
    """Store a covenant acceptance; a new one is appended to the trust log."""
    created, _ = insert_once(db, "acceptances", {"network": obj.network, "digest": obj.digest},
                             {**obj.row(), "member": member, "covenant": covenant},
                             what="covenant acceptance")
    if created:
        append_trust_txn(db, obj.network, obj.envelope)
    return Written(created, {"member": member, "covenant": covenant})


def add_epoch_txn(db: Db, obj: Stored, *, epoch: int,
                  entries: Sequence[tuple[str, str]]) -> Written:
    """Store an epoch-key distribution and index its entries by recipient."""
    created, rowid = insert_once(db, "epochs", {"network": obj.network, "epoch": epoch},
                                 obj.row(), what=f"epoch {epoch}")
    if created:
        for recipient, sealed in entries:
            insert(db, "epoch_keys", {"network": obj.network, "recipient": recipient,
                                      "epoch": epoch, "sealed": sealed, "distribution": rowid})
    return Written(created, {"epoch": epoch})


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class NetworkRecord:
    """What the member directory is built from at start-up."""

    network: str
    genesis: dict[str, Any]
    memberships: list[dict[str, Any]]
    revocations: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    #: The coordinator's key rotations in chain order (protocol.md §4.6.2).
    rotations: list[dict[str, Any]]
    #: The size of the network's trust log when the record was read: every chain object
    #: above is logged below it (docs/protocol.md §15.8).
    trust_size: int = 0


def _envelopes(db: Db, table: str, network: str) -> list[dict[str, Any]]:
    return [json.loads(r["envelope"]) for r in
            db.execute(f"SELECT envelope FROM {table} WHERE network = ? ORDER BY id", (network,))]


def network_policies(db: Db, network: str) -> list[dict[str, Any]]:
    """The network's accepted ``network-policy`` envelopes, by version (the genesis, version
    1, is not among them)."""
    return _envelopes(db, "network_policies", network)


def network_rotations(db: Db, network: str) -> list[dict[str, Any]]:
    """The network's accepted coordinator ``key-rotation`` envelopes, in chain order."""
    return [json.loads(r["envelope"]) for r in db.execute(
        "SELECT envelope FROM coordinator_rotations WHERE network = ? ORDER BY position",
        (network,))]


def all_networks(db: Db, only: list[str] | None = None) -> list[NetworkRecord]:
    """Every network's record (``only``: these networks'), in registration order."""
    rows = db.execute("SELECT network, genesis FROM networks ORDER BY rowid").fetchall()
    return [NetworkRecord(network=r["network"], genesis=json.loads(r["genesis"]),
                          memberships=_envelopes(db, "memberships", r["network"]),
                          revocations=_envelopes(db, "revocations", r["network"]),
                          policies=network_policies(db, r["network"]),
                          rotations=network_rotations(db, r["network"]),
                          trust_size=trust_size(db, r["network"]))
            for r in rows if only is None or r["network"] in only]


def member_documents(db: Db, network: str) -> dict[str, list[dict[str, Any]]]:
    return {name: _envelopes(db, name, network)
            for name in ("memberships", "revocations", "acceptances")}


def epoch_entries(db: Db, network: str, recipient: str) -> list[dict[str, Any]]:
    """The caller's sealed epoch keys, each with the signed distribution it came from."""
    return [{"epoch": r["epoch"], "sealed": r["sealed"], "distribution": json.loads(r["envelope"])}
            for r in db.execute(
                "SELECT k.epoch, k.sealed, e.envelope FROM epoch_keys k"
                " JOIN epochs e ON e.id = k.distribution"
                " WHERE k.network = ? AND k.recipient = ? ORDER BY k.epoch", (network, recipient))]


__all__ = ["Stored", "NetworkRecord", "register_network_txn", "add_membership_txn",
           "add_revocation_txn", "add_policy_txn", "add_rotation_txn", "add_acceptance_txn",
           "add_epoch_txn", "all_networks", "network_policies", "network_rotations", "member_documents", "epoch_entries"]
