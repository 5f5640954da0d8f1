"""Memberships, revocations and covenant acceptances (flow 1; protocol.md §4.6, §N.4,
§N.5, §N.8)."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from schakel.server.audit import membership_note, revocation_note
from schakel.server.checks import stored
from schakel.server.checks.network import check_acceptance, check_membership, check_revocation
from schakel.server.data.networks import (
    add_acceptance_txn, add_membership_txn, add_revocation_txn, member_documents,
)
from schakel.server.disclosure.data import Log, membership_removed_txn, revocation_ref
from schakel.server.disclosure.facts import server_actor
from schakel.server.registry import KEYID, Body, Call, Field, RouteTable, array, def_ref, envelope_of, obj

routes = RouteTable("members")

SERIAL = {"type": "integer", "minimum": 1, "maximum": 9007199254740991}
MEMBER_ANSWER = obj(["member", "serial"], member=KEYID, serial=SERIAL)


@routes.route("POST", "/v1/networks/{network}/members", auth="signed", who="coordinator",
              status=201, body=Body((Field("membership", envelope_of("membership")),)),
              response=MEMBER_ANSWER, errors=("conflict",))
async def add_member(call: Call) -> web.Response:
    """Register a membership certified by the coordinator key.  It must verify at the
    server's time (schakel.keys.chain.verify_membership: issuer, network, roles, validity) and not
    be revoked.  The first membership may be the coordinator's own.  The same
    ``(member, serial)`` with other content is 409.

    Example::

        POST /v1/networks/{network}/members  {"membership": {"signed": {"type": "membership",
              "member": "<keyid>", "ring": "core", "party": "formal", "serial": 1, ...},
              "signatures": [...]}}
        201 {"member": "<keyid>", "serial": 1}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    member = check_membership(body["membership"], caller.network, call.ctx.now())
    written = await call.ctx.store.write(
        add_membership_txn, stored(network, body["membership"], received=call.ctx.timestamp(),
                                   acting_user=caller.acting_user),
        member=member.member, serial=member.serial,
        audit=membership_note(call.ctx, caller, member))
    call.ctx.directory.add_member(member)
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/members", auth="signed", who="any member",
              response=obj(["memberships", "revocations", "acceptances"],
                           memberships=array(envelope_of("membership"), 1_000_000),
                           revocations=array(envelope_of("membership-revocation"), 1_000_000),
                           acceptances=array(envelope_of("covenant-acceptance"), 1_000_000)))
async def list_members(call: Call) -> web.Response:
    """Every membership, revocation and covenant acceptance of the network, as stored;
    clients verify them against their configured coordinator fingerprint.

    Example::

        GET /v1/networks/{network}/members
        200 {"memberships": [...], "revocations": [...], "acceptances": [...]}
    """
    network = call.id("network")
    call.member(network)
    return call.json(await call.ctx.store.read(member_documents, network))


@routes.route("POST", "/v1/networks/{network}/revocations", auth="signed", who="coordinator",
              status=201, body=Body((Field("revocation", envelope_of("membership-revocation")),)),
              response=MEMBER_ANSWER)
async def revoke_member(call: Call) -> web.Response:
    """Register a membership revocation signed by the coordinator key; from its ``at`` on,
    the member's memberships up to ``serial`` are no longer current.  When that leaves the
    member without a current membership now, every case it received identity of gets a
    ``membership-removed`` purge instruction for it (signed by the log key, audited), in
    the same transaction; the removed member fetches and acknowledges them with its old
    key (``GET .../purge-instructions/mine``, ``POST .../purge-acks``).

    Example::

        POST /v1/networks/{network}/revocations  {"revocation": {"signed": {"type":
              "membership-revocation", "member": "<keyid>", "serial": 1, "at": "...",
              "reason": "..."}, "signatures": [...]}}
        201 {"member": "<keyid>", "serial": 1}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    revocation = check_revocation(body["revocation"], caller.network)
    record = stored(network, body["revocation"], received=call.ctx.timestamp(),
                    acting_user=caller.acting_user)
    now = call.ctx.now()
    purge = None
    if caller.network.removes(revocation, now):
        # §N.5: the identity released to a removed member is purged.  A revocation that
        # takes effect later is left to the retention pass (docs/protocol.md §15.4).
        purge = partial(membership_removed_txn,
                        log=Log(network=network, log_key=call.ctx.keys.log_signer, now=now),
                        server=server_actor(call.ctx.keys), member=revocation.member,
                        ref=revocation_ref(record.digest))
    written = await call.ctx.store.write(
        add_revocation_txn, record, member=revocation.member, serial=revocation.serial,
        audit=revocation_note(call.ctx, caller, revocation), purge=purge)
    call.ctx.directory.add_revocation(revocation)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/covenant", auth="signed",
              who="the member itself (a current membership)", status=201,
              body=Body((Field("acceptance", envelope_of("covenant-acceptance")),)),
              response=obj(["member", "covenant"], member=KEYID,
                           covenant=def_ref("common", "hash32")),
              errors=("context_mismatch",))
async def accept_covenant(call: Call) -> web.Response:
    """Store a member's signed acceptance of the network's covenant (the genesis's
    covenant hash).

    Example::

        POST /v1/networks/{network}/covenant  {"acceptance": {"signed": {"type":
              "covenant-acceptance", "member": "<caller keyid>", "covenant": "<hash32>",
              ...}, "signatures": [...]}}
        201 {"member": "<keyid>", "covenant": "<hash32>"}
    """
    network = call.id("network")
    caller = call.member(network, membership=True)
    body = await call.body()
    acceptance = check_acceptance(body["acceptance"], caller.network, caller)
    written = await call.ctx.store.write(
        add_acceptance_txn, stored(network, body["acceptance"], received=call.ctx.timestamp(),
                                   acting_user=caller.acting_user),
        member=acceptance.member, covenant=acceptance.covenant)
    return call.written(written.created, written.answer)


__all__ = ["routes"]
