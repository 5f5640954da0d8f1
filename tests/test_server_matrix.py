"""The authorization matrix of the HTTP API (docs/protocol.md §14; issue 3, "Done when").

Every route × every kind of caller → the exact status, and the error code of every
denial, as ONE table (:data:`TABLE`) checked by one parametrized test.  The callers:

* actors: core-formal, core-informal, shell (no share), shell-shared (a share of the main
  case), coordinator, auditor (role ``auditor``, shell ring), other-network (a core member
  of network B), unknown-key (a key with no membership anywhere);
* for the disclosure routes' request attacks only, bemoeizorg role-holders and an auditor
  of network B (oggz): b-invoker, b-second, b-auditor;
* request attacks, each made from the route's legitimate request (:attr:`Route.legit`):
  replayed (the same signed request sent twice; the *second* answer is checked), stale
  ``created`` (301 s old, the skew is ±300 s), wrong ``Content-Digest`` (signed over other
  bytes than the body), anonymous (no signature at all).

Unsigned routes ignore signatures ("unsigned routes need no signature"), so every caller
gets 200 there.  A second test fails when the server's OpenAPI document has a route that
the table does not cover, so a new route cannot ship without its matrix rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from schakel.keys import issue_policy
from schakel.keys.rotation import rotate
from schakel.protocol import envelopes
from schakel.protocol.objects.cases import CaseHeader, IdentityPurge
from schakel.protocol.objects.disclosure import Referral, ReferralBasis
from tests import disclosure_harness as dh
from tests.server_harness import (
    MISSING, Actor, FakeClock, InProcessServer, Network, Reply, World, assert_status,
    build_world, create_case, enrol, error_shape_problems, new_id,
)

#: The matrix shares one server and one world (module-scoped loop).
shared_loop = pytest.mark.asyncio(loop_scope="module")

CALLERS = ("core-formal", "core-informal", "shell", "shell-shared", "coordinator", "auditor",
           "other-network", "unknown-key", "replayed", "stale-created", "wrong-digest", "anonymous")
ATTACKS = ("replayed", "stale-created", "wrong-digest", "anonymous")

# ------------------------------------------------------------------ expected outcomes

OK, NEW = 200, 201
F = (403, "forbidden")            # authenticated, not allowed (or a member of another network)
U = (401, "untrusted_key")        # protocol.md §14: unknown key -> 401 untrusted_key
B = (401, "bad_signature")        # no signature on a signed route (protocol.md §10)
R = (401, "replayed_request")
S = (401, "stale_request")
D = (400, "digest_mismatch")
P = (403, "policy_violation")     # an audited policy denial (docs/protocol.md §15 §15.2)
N = (404, "not_found")
SIGNED = (R, S, D, B)             # the four request attacks against a signed route
UNSIGNED = (OK, OK, OK, OK)       # ... against an unsigned route: the signature is not read

Expected = int | tuple[int, str]

#: route -> the expected answer per caller, in the order of CALLERS.
#:                       core-f core-i shell shell+ coord audit other unknown | replay stale digest anon
TABLE: dict[str, tuple[Expected, ...]] = {
    "GET healthz":          (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET metrics":          (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET openapi":          (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET server":           (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "POST networks":        (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET network":          (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "POST members":         (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET members":          (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "POST revocations":     (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST policies":        (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST covenant":        (NEW, NEW, NEW, NEW, NEW, NEW, F,   U,   *SIGNED),
    "POST epochs":          (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET epochs/mine":      (OK,  OK,  F,   F,   OK,  F,   F,   U,   *SIGNED),
    "POST cases":           (NEW, NEW, F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST events":          (NEW, NEW, F,   NEW, NEW, F,   F,   U,   *SIGNED),
    "GET case":             (OK,  OK,  F,   OK,  OK,  F,   F,   U,   *SIGNED),
    "GET sync":             (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "POST shares":          (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    # ADR 0007: a case's owner (core-formal, of a fresh case) or the coordinator rotates
    # its key; only the owner backfills its gated envelopes.
    "POST rekeys":          (NEW, F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST gated":           (NEW, F,   F,   F,   F,   F,   F,   U,   *SIGNED),
    # ADR 0011: only a case's owner replaces its header (a new identity version) and
    # reads who holds a basis for its identity.
    "POST header":          (NEW, F,   F,   F,   F,   F,   F,   U,   *SIGNED),
    "GET holders":          (OK,  F,   F,   F,   F,   F,   F,   U,   *SIGNED),
    # ADR 0034: the owner or the coordinator erases a case's identity (a rectification is
    # the owner's only, tests/test_erasure.py).
    "POST purges":          (NEW, F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    # ADR 0031: only a subset case's owner widens it; a core member outside its audience
    # is answered as for a missing case.
    "POST audience":        (NEW, N,   F,   F,   F,   F,   F,   U,   *SIGNED),
    # optional signature: shell partners sign; anyone may send a bare anonymous signal
    # when the policy allows it (network A's does).
    "POST signals":         (F,   F,   NEW, NEW, F,   NEW, F,   U,   R, S, D, NEW),
    "GET signals/status":   (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET signals":          (F,   F,   F,   F,   OK,  F,   F,   U,   *SIGNED),
    "POST feedback":        (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET hints":            (F,   F,   F,   F,   OK,  F,   F,   U,   *SIGNED),
    # the network card: the coordinator publishes it, anyone reads it
    "POST card":            (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET card":             (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    # the audit log: every member reads heads and proofs, and the entries it may see
    "GET audit/head":       (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET audit/checkpoint": (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET audit/heads":      (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET audit/entries":    (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET audit/inclusion":  (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET audit/consistency": (OK, OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    # the trust log (§15.8): every member reads it whole
    "GET trust":            (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET trust/checkpoint": (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET trust/consistency": (OK, OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    # disclosure (§15.2).  Network A is a neighbourhood network: every bemoeizorg
    # invocation there is an audited denial, and no invocation exists to co-sign (404)
    # or to release under (an audited denial, as for a grant the caller does not hold
    # and a grant signed by a member that is not the coordinator; ADR 0009).  The
    # request attacks start from role-holders of the oggz network B.
    "POST consents":        (NEW, F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST revocation":      (NEW, F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST grants":          (P,   P,   P,   P,   NEW, P,   F,   U,   *SIGNED),
    "POST releases":        (NEW, P,   P,   P,   P,   P,   F,   U,   *SIGNED),
    "POST bemoeizorg":      (P,   P,   P,   P,   P,   P,   F,   U,   *SIGNED),
    "GET bemoeizorg":       (F,   F,   F,   F,   N,   N,   F,   U,   *SIGNED),
    "POST cosign":          (N,   N,   N,   N,   N,   N,   F,   U,   *SIGNED),
    "POST bemoeizorg/release": (P, P,  P,   P,   P,   P,   F,   U,   *SIGNED),
    "GET notifications":    (F,   F,   F,   F,   OK,  F,   F,   U,   *SIGNED),
    # ADR 0046: only the current coordinator key rotates itself (a member with the
    # coordinator role may not).  The last rows of the matrix: a rotation moves the
    # coordinator to a new key.
    "POST rotations":       (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "POST reviews":         (F,   F,   F,   F,   F,   NEW, F,   U,   *SIGNED),
    "GET purge/mine":       (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "GET purge/owned":      (OK,  OK,  OK,  OK,  OK,  OK,  F,   U,   *SIGNED),
    "POST purge-acks":      (NEW, F,   F,   F,   F,   F,   F,   U,   *SIGNED),
    "GET access-report":    (F,   F,   F,   F,   OK,  OK,  F,   U,   *SIGNED),
    # lookups by blind index (§15.7): the coordinator; any other member an audited denial
    "POST lookups":         (P,   P,   P,   P,   NEW, P,   F,   U,   *SIGNED),
    # referrals (§15.5): the coordinator of the sending network only
    "POST referrals":       (F,   F,   F,   F,   NEW, F,   F,   U,   *SIGNED),
    "GET referrals":        (F,   F,   F,   F,   OK,  F,   F,   U,   *SIGNED),
    # the resident's intake page of network A (its policy takes anonymous signals) and
    # its files: static, for anyone
    "GET intake":           (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET intake.css":       (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET intake.js":        (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET libsodium.js":     (OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  *UNSIGNED),
    "GET libsodium-wrappers.js": (OK, OK, OK, OK, OK, OK,  OK,  OK,  *UNSIGNED),
}


# ------------------------------------------------------------------ how each route is called


@dataclass(frozen=True)
class Req:
    """The request one row sends: who signs it (None: unsigned), path, body, headers, and
    what the harness learns when the server accepts it."""

    signer: Actor | None
    path: str
    json: Any = MISSING
    headers: tuple[tuple[str, str], ...] = ()
    on_success: Callable[[], None] | None = None


Builder = Callable[[World, str, Actor], Awaitable[Req]]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    template: str          # the path as in docs/protocol.md §14 / the OpenAPI document
    legit: str             # the caller whose request the four request attacks start from
    build: Builder


_spares = itertools.count(1)


def get(path: Callable[[World], str], headers: Callable[[World], tuple[tuple[str, str], ...]]
        = lambda w: ()) -> Builder:
    async def build(w: World, kind: str, actor: Actor) -> Req:
        return Req(actor, path(w), headers=headers(w))
    return build


async def post_networks(w: World, kind: str, actor: Actor) -> Req:
    net = Network(w.server, w.clock)
    if kind == "coordinator" or kind in ATTACKS:
        # The genesis's own coordinator registers it: the bootstrap of a new network.
        return Req(net.coordinator, "/v1/networks", {"genesis": net.genesis})
    # Everyone else uploads a genesis that names somebody else as coordinator.
    return Req(actor, "/v1/networks", {"genesis": net.genesis})


async def post_members(w: World, kind: str, actor: Actor) -> Req:
    newcomer = w.a.actor(f"newcomer-{next(_spares)}", ring="core", party="informal")
    return Req(actor, w.a.path("/members"), {"membership": w.a.membership(newcomer)})


async def post_revocations(w: World, kind: str, actor: Actor) -> Req:
    spare = await enrol(w.caller, w.a, f"spare-{next(_spares)}", ring="shell")
    return Req(actor, w.a.path("/revocations"), {"revocation": w.a.revocation(spare)})


async def post_policies(w: World, kind: str, actor: Actor) -> Req:
    """The network's next policy version (protocol.md §N.3), its content unchanged."""
    served = assert_status(await w.caller.get(w.a.path(), w.a.coordinator), 200)
    policy = issue_policy(w.a.coordinator.keys, network=w.a.id,
                          version=len(served["policies"]) + 2, issued=w.a.now(),
                          policy=w.a.policy)
    return Req(actor, w.a.path("/policies"), {"policy": policy})


_later = itertools.count(1)


async def post_rotations(w: World, kind: str, actor: Actor) -> Req:
    """A rotation of network A's current coordinator key to fresh keys (ADR 0046), dated
    after everything the key signed at the (fake) clock's now; once accepted, the
    coordinator signs with the new key."""
    coordinator = w.a.coordinator
    new_keys, rotation = rotate(coordinator.keys, reason="matrix",
                                at=w.a.now() + timedelta(seconds=next(_later)))

    def adopt() -> None:
        coordinator.keys = new_keys

    return Req(actor, w.a.path("/rotations"), {"rotation": rotation}, on_success=adopt)


async def post_covenant(w: World, kind: str, actor: Actor) -> Req:
    if kind in ATTACKS:
        actor = await enrol(w.caller, w.a, f"spare-{next(_spares)}", ring="shell")
    else:
        # Every member accepted at bootstrap; this is a second employee accepting again.
        actor = dataclasses.replace(actor, acting_user=f"{actor.label[:20]}-user-2")
    return Req(actor, w.a.path("/covenant"), {"acceptance": w.a.acceptance(actor)})


async def post_epochs(w: World, kind: str, actor: Actor) -> Req:
    dist = w.a.distribution()
    return Req(actor, w.a.path("/epochs"), {"distribution": dist},
               on_success=lambda: w.a.commit_epoch(dist))


async def post_cases(w: World, kind: str, actor: Actor) -> Req:
    body, state = w.a.new_case(actor)
    return Req(actor, w.a.path("/cases"), body,
               on_success=lambda: w.a.cases.__setitem__(state.case, state))


async def post_events(w: World, kind: str, actor: Actor) -> Req:
    envelope = w.a.event(w.case, actor)
    return Req(actor, w.a.path(f"/cases/{w.case.case}/events"), {"event": envelope},
               on_success=lambda: w.case.commit(envelope))


async def post_lookups(w: World, kind: str, actor: Actor) -> Req:
    return Req(actor, w.a.path("/lookups"), {"tokens": [w.a.token("bsn", "111222333")],
                                             "purpose": "access-request"})


async def post_shares(w: World, kind: str, actor: Actor) -> Req:
    state = await create_case(w.caller, w.a, w["core-formal"])
    return Req(actor, w.a.path("/shares"), {"share": w.a.share(state, w["shell-shared"])})


async def post_rekeys(w: World, kind: str, actor: Actor) -> Req:
    """A rotation of a fresh case owned by core-formal, signed by ``actor``."""
    state = await create_case(w.caller, w.a, w["core-formal"])
    envelope = w.a.rekey(state, signer=actor)
    return Req(actor, w.a.path(f"/cases/{state.case}/rekeys"), {"rekey": envelope},
               on_success=lambda: state.commit_rekey(envelope))


async def post_gated(w: World, kind: str, actor: Actor) -> Req:
    """Gated envelopes of a fresh case owned by core-formal for the auditor, who had none."""
    state = await create_case(w.caller, w.a, w["core-formal"])
    return Req(actor, w.a.path(f"/cases/{state.case}/gated"),
               {"gated": w.a.gated(state, [w["auditor"]])})


async def post_header(w: World, kind: str, actor: Actor) -> Req:
    """The next identity version of a fresh case owned by core-formal, signed by ``actor``
    as its owner."""
    state = await create_case(w.caller, w.a, w["core-formal"])
    body = w.a.replacement(state, signer=actor, owner=actor.key_id)
    return Req(actor, w.a.path(f"/cases/{state.case}/header"), body,
               on_success=lambda: state.commit_replacement(body))


async def post_purges(w: World, kind: str, actor: Actor) -> Req:
    """The erasure of a fresh case owned by core-formal, signed by ``actor``."""
    state = await create_case(w.caller, w.a, w["core-formal"])
    purge = IdentityPurge(network=w.a.id, case=state.case, purge=new_id(), kind="erasure",
                          identity_version=1, classes=("name",), acting_user=actor.acting_user,
                          at=w.a.stamp(), reason="verzoek betrokkene").sign(actor.signer)
    return Req(actor, w.a.path(f"/cases/{state.case}/purges"), {"purge": purge})


async def post_audience(w: World, kind: str, actor: Actor) -> Req:
    """A fresh subset case of core-formal (with the coordinator) widened to core-informal,
    signed by ``actor`` as its owner."""
    state = await create_case(w.caller, w.a, w["core-formal"], audience=())
    signed = dict(state.header["signed"])
    added = w["core-informal"]
    signed["audience"] = [*signed["audience"], added.key_id]
    signed["audience_keys"] = [*signed["audience_keys"], {
        "member": added.key_id, "version": 1, "sealed": envelopes.seal_case_key(
            added.box, state.case_key, network=w.a.id, case=state.case, version=1,
            recipient_id=added.key_id)}]
    header = CaseHeader.from_json(signed).sign(actor.signer)
    return Req(actor, w.a.path(f"/cases/{state.case}/audience"),
               {"header": header, "reason": "De wijkverpleging neemt de zorg over."})


async def post_signals(w: World, kind: str, actor: Actor) -> Req:
    sender = None if kind == "anonymous" else actor
    return Req(sender, w.a.path("/signals"), w.a.signal(sender).body)


async def post_feedback(w: World, kind: str, actor: Actor) -> Req:
    return Req(actor, w.a.path(f"/signals/{w.shell_signal.signal}/feedback"),
               {"feedback": w.a.feedback(w.shell_signal)})


async def post_card(w: World, kind: str, actor: Actor) -> Req:
    return Req(actor, w.a.path("/card"), {"card": w.a.card()})


async def get_card(w: World, kind: str, actor: Actor) -> Req:
    """Network A's card, which its coordinator publishes (anew) first."""
    await dh.post_ok(w.caller, w.a, "/card", w.a.coordinator, {"card": w.a.card()})
    return Req(actor, w.a.path("/card"))


# referrals (docs/protocol.md §15 §15.5) ----------------------------------------


async def post_referrals(w: World, kind: str, actor: Actor) -> Req:
    """A's main case referred to a fresh case of B (created by B's core member) under a
    consent of A naming B's coordinator; signed by ``actor``."""
    c = dh.consent(w.a, w.case, w.a.coordinator, classes=["name"], partners=[w.b.coordinator])
    await dh.post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})
    new = await create_case(w.caller, w.b, w["other-network"])
    referral = Referral(network=w.a.id, to_network=w.b.id, case=w.case.case,
                        new_case=new.case,
                        basis=ReferralBasis(kind="consent", ref=c["signed"]["consent"]),
                        acting_user=actor.acting_user, at=w.a.stamp(),
                        reason="verhuisd").sign(actor.signer)
    return Req(actor, w.a.path("/referrals"), {"referral": referral})


# disclosure (docs/protocol.md §15 §15.2) ---------------------------------------


def b_case(w: World) -> Any:
    """The case of network B's bemoeizorg cast (the world fixture's ``staff_oggz``)."""
    return next(iter(w.b.cases.values()))


async def b_invocation(w: World, *, cosigned: bool = False) -> tuple[Actor, dict[str, Any]]:
    """An accepted invocation in network B by a fresh person of the invoker partner (the
    rate limit counts persons), optionally co-signed."""
    invoker = dataclasses.replace(w["b-invoker"], acting_user=f"b-arts-{next(_spares)}")
    inv = dh.invocation(w.b, b_case(w), invoker, auditors=[w["b-auditor"]])
    await dh.post_ok(w.caller, w.b, "/bemoeizorg", invoker, {"invocation": inv})
    if cosigned:
        await dh.post_ok(w.caller, w.b, f"/bemoeizorg/{inv['signed']['invocation']}/cosign",
                         w["b-second"], {"cosign": dh.cosign(w.b, inv, w["b-second"])})
    return invoker, inv


async def post_consents(w: World, kind: str, actor: Actor) -> Req:
    c = dh.consent(w.a, w.case, actor, classes=["name"], parties=["formal"])
    return Req(actor, w.a.path("/consents"), {"consent": c})


async def post_revocation(w: World, kind: str, actor: Actor) -> Req:
    c = dh.consent(w.a, w.case, w.a.coordinator, classes=["name"], parties=["formal"])
    await dh.post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})
    consent = c["signed"]["consent"]
    return Req(actor, w.a.path(f"/consents/{consent}/revocation"),
               {"revocation": dh.revocation(w.a, w.case, consent, actor)})


async def post_grants(w: World, kind: str, actor: Actor) -> Req:
    c = dh.consent(w.a, w.case, w.a.coordinator, classes=["name"], partners=[w["core-formal"]])
    await dh.post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})
    return Req(actor, w.a.path("/grants"), {"grant": dh.grant(
        w.a, w.case, w["core-formal"], ["name"], c["signed"]["consent"], signer=actor)})


async def core_formal_grant(w: World) -> str:
    """A grant of ``name`` of the main case to core-formal (its gated envelope exists)."""
    _, grant = await dh.consent_and_grant(w.caller, w.a, w.case, w["core-formal"], ["name"])
    return grant


async def post_releases(w: World, kind: str, actor: Actor) -> Req:
    return Req(actor, w.a.path("/releases"), {"grant": await core_formal_grant(w),
                                              "release": new_id()})


async def post_bemoeizorg(w: World, kind: str, actor: Actor) -> Req:
    if kind in ATTACKS:
        invoker = dataclasses.replace(actor, acting_user=f"b-arts-{next(_spares)}")
        inv = dh.invocation(w.b, b_case(w), invoker, auditors=[w["b-auditor"]])
        return Req(invoker, w.b.path("/bemoeizorg"), {"invocation": inv})
    inv = dh.invocation(w.a, w.case, actor, auditors=[w["auditor"]])
    return Req(actor, w.a.path("/bemoeizorg"), {"invocation": inv})


async def get_bemoeizorg(w: World, kind: str, actor: Actor) -> Req:
    if kind in ATTACKS:
        _, inv = await b_invocation(w)
        return Req(actor, w.b.path(f"/bemoeizorg/{inv['signed']['invocation']}"))
    return Req(actor, w.a.path(f"/bemoeizorg/{new_id()}"))


async def post_cosign(w: World, kind: str, actor: Actor) -> Req:
    if kind in ATTACKS:
        _, inv = await b_invocation(w)
        net = w.b
    else:  # an invocation of network A cannot exist (neighbourhood): 404 for every member
        net, inv = w.a, dh.invocation(w.a, w.case, actor, auditors=[w["auditor"]])
    return Req(actor, net.path(f"/bemoeizorg/{inv['signed']['invocation']}/cosign"),
               {"cosign": dh.cosign(net, inv, actor)})


async def post_bemoeizorg_release(w: World, kind: str, actor: Actor) -> Req:
    if kind in ATTACKS:
        invoker, inv = await b_invocation(w, cosigned=True)
        return Req(invoker, w.b.path(f"/bemoeizorg/{inv['signed']['invocation']}/release"),
                   {"release": new_id()})
    return Req(actor, w.a.path(f"/bemoeizorg/{new_id()}/release"), {"release": new_id()})


async def post_reviews(w: World, kind: str, actor: Actor) -> Req:
    await record_a_consent(w)                           # the log has an entry to review
    return Req(actor, w.a.path("/reviews"), {"review": dh.review(
        w.a, actor, entry=0, note=f"steekproef {next(_spares)}")})


async def record_a_consent(w: World) -> None:
    c = dh.consent(w.a, w.case, w.a.coordinator, classes=["name"], parties=["formal"])
    await dh.post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})


async def post_purge_acks(w: World, kind: str, actor: Actor) -> Req:
    """core-formal received ``name`` under a consent that was then revoked: it holds a
    purge instruction, which only it may acknowledge."""
    c, a, grantee = w.caller, w.a, w["core-formal"]
    consent, grant = await dh.consent_and_grant(c, a, w.case, grantee, ["name"])
    assert_status(await dh.release(c, a, grantee, grant), 201)
    revoked = await dh.post_ok(c, a, f"/consents/{consent}/revocation", a.coordinator,
                               {"revocation": dh.revocation(a, w.case, consent, a.coordinator)})
    feed = assert_status(await c.get(a.path("/purge-instructions/mine?after=0&limit=500"),
                                     grantee), 200)
    [instruction] = [i["instruction"] for i in feed["items"]
                     if i["instruction"]["signed"]["instruction"] in revoked["purge_instructions"]]
    return Req(actor, a.path("/purge-acks"), {"ack": dh.purge_ack(a, instruction, actor)})


ROUTES = [
    Route("GET healthz", "GET", "/healthz", "core-formal", get(lambda w: "/healthz")),
    Route("GET metrics", "GET", "/metrics", "core-formal", get(lambda w: "/metrics")),
    Route("GET openapi", "GET", "/v1/openapi.json", "core-formal",
          get(lambda w: "/v1/openapi.json")),
    Route("GET server", "GET", "/v1/server", "core-formal", get(lambda w: "/v1/server")),
    Route("POST networks", "POST", "/v1/networks", "coordinator", post_networks),
    Route("GET network", "GET", "/v1/networks/{network}", "core-formal",
          get(lambda w: w.a.path())),
    Route("POST members", "POST", "/v1/networks/{network}/members", "coordinator", post_members),
    Route("GET members", "GET", "/v1/networks/{network}/members", "core-formal",
          get(lambda w: w.a.path("/members"))),
    Route("POST revocations", "POST", "/v1/networks/{network}/revocations", "coordinator",
          post_revocations),
    Route("POST policies", "POST", "/v1/networks/{network}/policies", "coordinator",
          post_policies),
    Route("POST covenant", "POST", "/v1/networks/{network}/covenant", "core-formal",
          post_covenant),
    Route("POST epochs", "POST", "/v1/networks/{network}/epochs", "coordinator", post_epochs),
    Route("GET epochs/mine", "GET", "/v1/networks/{network}/epochs/mine", "core-formal",
          get(lambda w: w.a.path("/epochs/mine"))),
    Route("POST cases", "POST", "/v1/networks/{network}/cases", "core-formal", post_cases),
    Route("POST events", "POST", "/v1/networks/{network}/cases/{case}/events", "core-formal",
          post_events),
    Route("GET case", "GET", "/v1/networks/{network}/cases/{case}", "core-formal",
          get(lambda w: w.a.path(f"/cases/{w.case.case}"))),
    Route("GET sync", "GET", "/v1/networks/{network}/sync", "core-formal",
          get(lambda w: w.a.path("/sync?after=0&limit=500&wait=0"))),
    Route("POST shares", "POST", "/v1/networks/{network}/shares", "coordinator", post_shares),
    Route("POST rekeys", "POST", "/v1/networks/{network}/cases/{case}/rekeys", "core-formal",
          post_rekeys),
    Route("POST gated", "POST", "/v1/networks/{network}/cases/{case}/gated", "core-formal",
          post_gated),
    Route("POST header", "POST", "/v1/networks/{network}/cases/{case}/header", "core-formal",
          post_header),
    Route("POST purges", "POST", "/v1/networks/{network}/cases/{case}/purges", "core-formal",
          post_purges),
    Route("GET holders", "GET", "/v1/networks/{network}/cases/{case}/holders", "core-formal",
          get(lambda w: w.a.path(f"/cases/{w.case.case}/holders"))),
    Route("POST audience", "POST", "/v1/networks/{network}/cases/{case}/audience",
          "core-formal", post_audience),
    Route("POST signals", "POST", "/v1/networks/{network}/signals", "shell", post_signals),
    Route("GET signals/status", "GET", "/v1/signals/status", "core-formal",
          get(lambda w: "/v1/signals/status",
              lambda w: (("Schakel-Receipt", w.anonymous_signal.receipt or ""),))),
    Route("GET signals", "GET", "/v1/networks/{network}/signals", "coordinator",
          get(lambda w: w.a.path("/signals?after=0&limit=100"))),
    Route("POST feedback", "POST", "/v1/networks/{network}/signals/{signal}/feedback",
          "coordinator", post_feedback),
    Route("GET hints", "GET", "/v1/networks/{network}/hints", "coordinator",
          get(lambda w: w.a.path("/hints?after=0"))),
    Route("POST card", "POST", "/v1/networks/{network}/card", "coordinator", post_card),
    Route("GET card", "GET", "/v1/networks/{network}/card", "core-formal", get_card),
    Route("GET audit/head", "GET", "/v1/networks/{network}/audit/head", "core-formal",
          get(lambda w: w.a.path("/audit/head"))),
    Route("GET audit/checkpoint", "GET", "/v1/networks/{network}/audit/checkpoint",
          "core-formal", get(lambda w: w.a.path("/audit/checkpoint"))),
    Route("GET audit/heads", "GET", "/v1/networks/{network}/audit/heads/{size}", "core-formal",
          get(lambda w: w.a.path("/audit/heads/1"))),
    Route("GET audit/entries", "GET", "/v1/networks/{network}/audit/entries", "core-formal",
          get(lambda w: w.a.path("/audit/entries?after=0&limit=100"))),
    Route("GET audit/inclusion", "GET", "/v1/networks/{network}/audit/proof/inclusion",
          "core-formal", get(lambda w: w.a.path("/audit/proof/inclusion?index=0&size=2"))),
    Route("GET audit/consistency", "GET", "/v1/networks/{network}/audit/proof/consistency",
          "core-formal", get(lambda w: w.a.path("/audit/proof/consistency?old=1&new=2"))),
    Route("GET trust", "GET", "/v1/networks/{network}/trust", "core-formal",
          get(lambda w: w.a.path("/trust?after=0&limit=100"))),
    Route("GET trust/checkpoint", "GET", "/v1/networks/{network}/trust/checkpoint",
          "core-formal", get(lambda w: w.a.path("/trust/checkpoint"))),
    Route("GET trust/consistency", "GET", "/v1/networks/{network}/trust/proof/consistency",
          "core-formal", get(lambda w: w.a.path("/trust/proof/consistency?old=1&new=2"))),
    Route("POST consents", "POST", "/v1/networks/{network}/consents", "core-formal",
          post_consents),
    Route("POST revocation", "POST", "/v1/networks/{network}/consents/{consent}/revocation",
          "core-formal", post_revocation),
    Route("POST grants", "POST", "/v1/networks/{network}/grants", "coordinator", post_grants),
    Route("POST releases", "POST", "/v1/networks/{network}/releases", "core-formal",
          post_releases),
    Route("POST bemoeizorg", "POST", "/v1/networks/{network}/bemoeizorg", "b-invoker",
          post_bemoeizorg),
    Route("GET bemoeizorg", "GET", "/v1/networks/{network}/bemoeizorg/{invocation}",
          "b-auditor", get_bemoeizorg),
    Route("POST cosign", "POST", "/v1/networks/{network}/bemoeizorg/{invocation}/cosign",
          "b-second", post_cosign),
    Route("POST bemoeizorg/release", "POST",
          "/v1/networks/{network}/bemoeizorg/{invocation}/release", "b-invoker",
          post_bemoeizorg_release),
    Route("GET notifications", "GET", "/v1/networks/{network}/notifications", "coordinator",
          get(lambda w: w.a.path("/notifications?after=0"))),
    Route("POST reviews", "POST", "/v1/networks/{network}/reviews", "auditor", post_reviews),
    Route("GET purge/mine", "GET", "/v1/networks/{network}/purge-instructions/mine",
          "core-formal", get(lambda w: w.a.path("/purge-instructions/mine?after=0"))),
    Route("GET purge/owned", "GET", "/v1/networks/{network}/purge-instructions/owned",
          "core-formal", get(lambda w: w.a.path("/purge-instructions/owned?after=0"))),
    Route("POST purge-acks", "POST", "/v1/networks/{network}/purge-acks", "core-formal",
          post_purge_acks),
    Route("POST lookups", "POST", "/v1/networks/{network}/lookups", "coordinator",
          post_lookups),
    Route("GET access-report", "GET", "/v1/networks/{network}/cases/{case}/access-report",
          "coordinator", get(lambda w: w.a.path(f"/cases/{w.case.case}/access-report"))),
    Route("POST referrals", "POST", "/v1/networks/{network}/referrals", "coordinator",
          post_referrals),
    Route("GET referrals", "GET", "/v1/networks/{network}/referrals", "coordinator",
          get(lambda w: w.a.path("/referrals?after=0"))),
    Route("GET intake", "GET", "/intake/{network}", "core-formal",
          get(lambda w: f"/intake/{w.a.id}")),
    Route("GET intake.css", "GET", "/intake/static/intake.css", "core-formal",
          get(lambda w: "/intake/static/intake.css")),
    Route("GET intake.js", "GET", "/intake/static/intake.js", "core-formal",
          get(lambda w: "/intake/static/intake.js")),
    Route("GET libsodium.js", "GET", "/intake/static/vendor/libsodium.js", "core-formal",
          get(lambda w: "/intake/static/vendor/libsodium.js")),
    Route("GET libsodium-wrappers.js", "GET", "/intake/static/vendor/libsodium-wrappers.js",
          "core-formal", get(lambda w: "/intake/static/vendor/libsodium-wrappers.js")),
    # Last: a rotation that is accepted moves the coordinator to its new key.
    Route("POST rotations", "POST", "/v1/networks/{network}/rotations", "coordinator",
          post_rotations),
]
BY_NAME = {r.name: r for r in ROUTES}
ROWS = [(route, kind, TABLE[route.name][i]) for route in ROUTES for i, kind in enumerate(CALLERS)]


def test_table_is_complete() -> None:
    """Every route has exactly one expectation per caller kind, and no row is orphaned."""
    assert set(TABLE) == set(BY_NAME)
    assert all(len(row) == len(CALLERS) for row in TABLE.values())


# ------------------------------------------------------------------ the world


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("matrix"), FakeClock())
    caller = await server.start()
    try:
        w = await build_world(caller)
        # The bemoeizorg cast of network B (oggz), for the disclosure rows' request attacks.
        cast = await dh.staff_oggz(caller, w.b, prefix="b-")
        w.actors.update({"b-invoker": cast.invoker, "b-second": cast.second,
                         "b-auditor": cast.auditor})
        yield w
    finally:
        await server.stop()


def _check(reply: Reply, expected: Expected, where: str) -> None:
    if isinstance(expected, int):
        assert reply.status == expected, f"{where}: want {expected}, got {reply!r}"
        return
    status, code = expected
    assert reply.status == status and reply.code == code, (
        f"{where}: want {status} {code}, got {reply!r}")
    problems = error_shape_problems(reply)
    assert not problems, f"{where}: {problems}"


@shared_loop
@pytest.mark.parametrize(("route", "kind", "expected"), ROWS,
                         ids=[f"{r.name} | {k}" for r, k, _ in ROWS])
async def test_authorization_matrix(world: World, route: Route, kind: str,
                                   expected: Expected) -> None:
    caller = world.caller
    actor = world[route.legit if kind in ATTACKS else kind]
    req = await route.build(world, kind, actor)
    signer = None if kind == "anonymous" else req.signer
    options: dict[str, Any] = {"json": req.json, "headers": req.headers}
    if kind == "stale-created":
        prepared = caller.stale(route.method, req.path, signer, **options)  # type: ignore[arg-type]
    elif kind == "wrong-digest":
        prepared = caller.wrong_digest(route.method, req.path, signer, **options)  # type: ignore[arg-type]
    else:
        prepared = caller.prepare(route.method, req.path, signer, **options)
    reply = await caller.send(prepared)
    if kind == "replayed":
        # The original must be accepted, or the replay proves nothing.
        assert reply.ok, f"{route.name}: the original of the replay was refused: {reply!r}"
        if req.on_success:
            req.on_success()
        reply = await caller.send(prepared)
    elif reply.ok and req.on_success:
        req.on_success()
    _check(reply, expected, f"{route.name} | {kind}")


@shared_loop
async def test_denied_writes_left_no_trace(world: World) -> None:
    """After the whole matrix, the main case holds exactly the events the harness saw
    acknowledged: no refused append was stored, no accepted one was lost."""
    case = assert_status(await world.caller.get(world.a.path(f"/cases/{world.case.case}"),
                                                world["core-formal"]), 200)
    assert case["events"] == world.case.events
    assert case["header"] == world.case.header


# ------------------------------------------------------------------ the table covers the API


def _normalise(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


async def _documented(world: World) -> set[tuple[str, str]]:
    doc = assert_status(await world.caller.get("/v1/openapi.json"), 200)
    assert str(doc.get("openapi", "")).startswith("3.1"), "not an OpenAPI 3.1 document"
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {(method.upper(), _normalise(path)) for path, item in doc["paths"].items()
            for method in item if method in methods}


@shared_loop
async def test_matrix_covers_every_openapi_route(world: World) -> None:
    """A route in the OpenAPI document without rows in TABLE fails here."""
    covered = {(r.method, _normalise(r.template)) for r in ROUTES}
    missing = sorted(await _documented(world) - covered)
    assert not missing, f"routes without authorization-matrix rows: {missing}"


@shared_loop
async def test_openapi_documents_every_route_of_the_contract(world: World) -> None:
    """And the other way round: the OpenAPI document lists every route of protocol.md §14."""
    documented = await _documented(world)
    missing = sorted((r.method, r.template) for r in ROUTES
                     if (r.method, _normalise(r.template)) not in documented)
    assert not missing, f"contract routes missing from /v1/openapi.json: {missing}"
