"""Disclosure objects and checks for the tests (docs/protocol.md §15 §15.2; protocol.md §D).

Builds on :mod:`tests.server_harness`: real keys, real signed objects, a real server.
What a grantee's client does with a release is here too, for real: verify the inclusion
receipt against the tree head signed by the server's log key, open each inner envelope with
its own box key (context checked) and decrypt the owner's identity record with the class
key.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from schakel.protocol import envelopes, merkle
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.objects.audit import AuditEntry, TreeHead, entry_commitment
from schakel.protocol.objects.cases import IdentityRecord
from schakel.protocol.objects.disclosure import (
    BemoeizorgCosign, BemoeizorgInvocation, Consent, ConsentRevocation, Grant, PurgeAck, Review,
    SealedJustification,
)
from tests.server_harness import (
    Actor, Caller, CaseState, Network, Reply, ServerKeys, assert_status, create_case, enrol,
    network_policy, new_id, register, ts,
)

JUSTIFICATION = ("Bewoner weigert al maanden zorg, woning ernstig vervuild; huisarts en "
                 "woningcorporatie bereiken hem niet.")


# --------------------------------------------------------------------------- objects


def person(actor: Actor, user: str) -> Actor:
    """Another employee of the same partner (rate limits and four eyes count persons)."""
    return dataclasses.replace(actor, acting_user=user)


def consent(net: Network, state: CaseState, signer: Actor, *, classes: Iterable[str],
            partners: Iterable[Actor] = (), parties: Iterable[str] = (),
            valid_for: timedelta = timedelta(days=30), starts: timedelta = timedelta(0),
            consent_id: str | None = None) -> dict[str, Any]:
    """A consent for ``state``'s case, signed by ``signer`` (owner or coordinator)."""
    grantees = {"partners": sorted(p.key_id for p in partners), "parties": sorted(parties)}
    start = net.now() + starts
    return Consent(network=net.id, consent=consent_id or new_id(), case=state.case,
                   classes=tuple(sorted(classes)), grantees=grantees,
                   purpose="Afstemming van hulp rond de woning.", valid_from=ts(start),
                   valid_until=ts(start + valid_for),
                   evidence=b64e(hashlib.sha256(b"ondertekend formulier").digest()),
                   acting_user=signer.acting_user, at=net.stamp()).sign(signer.signer)


def revocation(net: Network, state: CaseState, consent_id: str, signer: Actor) -> dict[str, Any]:
    return ConsentRevocation(network=net.id, consent=consent_id, case=state.case,
                             acting_user=signer.acting_user, at=net.stamp(),
                             reason="de persoon trekt de toestemming in").sign(signer.signer)


def grant(net: Network, state: CaseState, grantee: Actor, classes: Iterable[str],
          consent_id: str, *, signer: Actor | None = None) -> dict[str, Any]:
    signer = signer or net.coordinator
    return Grant(network=net.id, grant=new_id(), case=state.case, grantee=grantee.key_id,
                 classes=tuple(sorted(classes)), basis={"kind": "consent", "consent": consent_id},
                 acting_user=signer.acting_user, at=net.stamp(),
                 reason="heeft het adres nodig voor een huisbezoek").sign(signer.signer)


def invocation(net: Network, state: CaseState, invoker: Actor, *, auditors: Sequence[Actor],
               classes: Iterable[str] = ("address", "name"), ground: str = "severe-self-neglect",
               acting_user: str | None = None, text: str = JUSTIFICATION) -> dict[str, Any]:
    """A bemoeizorg invocation with the justification sealed to each of ``auditors``."""
    inv = new_id()
    sealed = [SealedJustification.seal(text, a.box, network=net.id, invocation=inv,
                                       case=state.case, auditor=a.key_id) for a in auditors]
    return BemoeizorgInvocation(network=net.id, invocation=inv, case=state.case,
                                classes=tuple(sorted(classes)), ground=ground,
                                justification=sealed,
                                acting_user=acting_user or invoker.acting_user,
                                at=net.stamp()).sign(invoker.signer)


def cosign(net: Network, invocation_envelope: dict[str, Any], signer: Actor, *,
           acting_user: str | None = None) -> dict[str, Any]:
    signed = invocation_envelope["signed"]
    return BemoeizorgCosign(network=net.id, invocation=signed["invocation"], case=signed["case"],
                            acting_user=acting_user or signer.acting_user,
                            at=net.stamp()).sign(signer.signer)


def review(net: Network, auditor: Actor, *, invocation: str | None = None,
           entry: int | None = None, outcome: str = "approved",
           note: str = "Grond en onderbouwing voldoende.") -> dict[str, Any]:
    fields: dict[str, Any] = dict(network=net.id, outcome=outcome, note=note,
                                  acting_user=auditor.acting_user, at=net.stamp())
    if invocation is not None:
        fields["invocation"] = invocation
    if entry is not None:
        fields["entry"] = entry
    return Review(**fields).sign(auditor.signer)


def purge_ack(net: Network, instruction: dict[str, Any], signer: Actor) -> dict[str, Any]:
    signed = instruction["signed"]
    return PurgeAck(network=net.id, instruction=signed["instruction"], case=signed["case"],
                    acting_user=signer.acting_user, at=net.stamp()).sign(signer.signer)


# --------------------------------------------------------------------------- requests


async def post_ok(caller: Caller, net: Network, suffix: str, actor: Actor,
                  body: dict[str, Any]) -> Any:
    return assert_status(await caller.post(net.path(suffix), actor, body), 201)


async def consent_and_grant(caller: Caller, net: Network, state: CaseState, grantee: Actor,
                            classes: Sequence[str], *, recorder: Actor | None = None,
                            **consent_options: Any) -> tuple[str, str]:
    """Record a consent covering ``grantee`` and grant it ``classes``: (consent, grant)."""
    options = {"partners": [grantee], **consent_options}
    c = consent(net, state, recorder or net.coordinator, classes=classes, **options)
    await post_ok(caller, net, "/consents", recorder or net.coordinator, {"consent": c})
    g = grant(net, state, grantee, classes, c["signed"]["consent"])
    await post_ok(caller, net, "/grants", net.coordinator, {"grant": g})
    return c["signed"]["consent"], g["signed"]["grant"]


async def release(caller: Caller, net: Network, grantee: Actor, grant_id: str, *,
                  release_id: str | None = None) -> Reply:
    return await caller.post(net.path("/releases"), grantee,
                             {"grant": grant_id, "release": release_id or new_id()})


async def audit_log(caller: Caller, net: Network, reader: Actor | None = None) -> list[dict[str, Any]]:
    """Every audit entry ``reader`` (default: the coordinator) may read, in log order."""
    reader = reader or net.coordinator
    entries: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = assert_status(await caller.get(net.path(f"/audit/entries?after={after}&limit=500"),
                                              reader), 200)
        entries += [item["entry"] for item in page["items"]]
        if not page["items"]:
            return entries
        after = page["cursor"]


def assert_denied(reply: Reply, reason: str) -> int:
    """A 403 ``policy_violation`` with ``reason``; returns ``details.audit_index``."""
    assert_status(reply, 403)
    error = reply.json["error"]
    assert error["code"] == "policy_violation", reply
    assert error["details"]["reason"] == reason, reply
    return int(error["details"]["audit_index"])


async def assert_denial_logged(caller: Caller, net: Network, reply: Reply, reason: str, *,
                               case: str | None = None) -> dict[str, Any]:
    """The reply is an audited denial: the log holds a ``deny`` entry with the policy
    reason at the index the answer named."""
    index = assert_denied(reply, reason)
    entries = await audit_log(caller, net)
    entry = entries[index]
    assert entry["index"] == index
    assert (entry["action"], entry["outcome"], entry["reason"]) == ("deny", "deny", reason), entry
    if case is not None:
        assert entry["case"] == case
    return entry


# --------------------------------------------------------------------------- the grantee's side


def verify_receipt(receipt: dict[str, Any], server: ServerKeys, network: str) -> AuditEntry:
    """What a client does before it opens anything (flow 4 step 4): the tree head is
    signed by the server's log key, and the entry is leaf ``index`` of that tree."""
    head = TreeHead.from_envelope(receipt["tree_head"], [server.log])
    assert head.network == network
    entry = AuditEntry.from_json(receipt["entry"])
    assert entry.index == receipt["index"]
    merkle.verify_inclusion(entry_commitment(entry), receipt["index"], head.size,
                            [b64d(p, length=32) for p in receipt["proof"]],
                            b64d(head.root, length=32))
    return entry


def open_release(answer: dict[str, Any], grantee: Actor, net: Network, state: CaseState,
                 server: ServerKeys) -> dict[str, Any]:
    """Verify the receipt, then open every released class key with the grantee's own box
    key and decrypt the owner's identity record: class -> plaintext."""
    verify_receipt(answer["receipt"], server, net.id)
    out: dict[str, Any] = {}
    for item in answer["envelopes"]:
        context = envelopes.GateContext(network=net.id, case=state.case, cls=item["class"],
                                        version=item["version"], recipient=grantee.key_id)
        key = envelopes.open_class_key(grantee.keys.box_secret, item["inner"], context)
        record = IdentityRecord.from_envelope(item["identity"], [state.owner.signer.verify_key])
        assert (record.case, record.class_, record.version) == (state.case, item["class"],
                                                                item["version"])
        out[item["class"]] = envelopes.decrypt_json(
            key, record.ciphertext,
            envelopes.identity_context(net.id, state.case, item["class"], version=item["version"]))
    return out


# --------------------------------------------------------------------------- an oggz cast


@dataclass
class Oggz:
    """An oggz network's bemoeizorg cast: two role-holders, a formal member without the
    role, an auditor, and a case whose gated envelopes cover the core."""

    net: Network
    invoker: Actor
    second: Actor
    no_role: Actor
    auditor: Actor
    owner: Actor
    case: CaseState


async def staff_oggz(caller: Caller, net: Network, *, prefix: str = "") -> Oggz:
    """Enrol the bemoeizorg cast into a registered oggz network and create its case."""
    invoker = await enrol(caller, net, f"{prefix}ggd-arts", roles=("bemoeizorg",))
    second = await enrol(caller, net, f"{prefix}ggd-vpk", roles=("bemoeizorg",))
    no_role = await enrol(caller, net, f"{prefix}ggz-team", roles=("professional-secrecy",))
    auditor = await enrol(caller, net, f"{prefix}auditor", ring="shell", roles=("auditor",))
    owner = await enrol(caller, net, f"{prefix}wijkteam")
    case = await create_case(caller, net, owner)
    return Oggz(net=net, invoker=invoker, second=second, no_role=no_role, auditor=auditor,
                owner=owner, case=case)


async def oggz_network(caller: Caller, server: ServerKeys, clock: Any, **policy: Any) -> Oggz:
    """A fresh oggz network (default policy, cheap blind index) with its cast."""
    net = Network(server, clock, kind="oggz", name="OGGZ-netwerk Eemland",
                  policy=network_policy("oggz", **policy))
    await register(caller, net)
    return await staff_oggz(caller, net)


__all__ = ["JUSTIFICATION", "person", "consent", "revocation", "grant", "invocation", "cosign",
           "review", "purge_ack", "post_ok", "consent_and_grant", "release", "audit_log",
           "assert_denied", "assert_denial_logged", "verify_receipt", "open_release", "Oggz",
           "staff_oggz", "oggz_network"]
