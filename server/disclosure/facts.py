"""The facts ``schakel.protocol.policy.decide`` needs that the server holds in memory: the
network's rules (its verified policy in force), the would-be grantee's current membership
(the member directory) and the network's auditors, plus the server itself as the actor of
the audit entries it writes on its own (``schakel.server.audit.actor_of`` makes a caller's).  The
facts that live in the database (consent, revocation, share, invocations, co-signs) are
read inside the write transaction by ``server/disclosure/data.py`` and ``bemoeizorg.py``,
so a decision and the change it allows see one state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schakel.keys import Member
from schakel.protocol.errors import UntrustedKeyError
from schakel.protocol.objects.audit import AuditActor
from schakel.protocol.objects.network import PARTIES, acting_roles
from schakel.protocol.policy import Grantee, Request, Rules, decide
from schakel.server.directory import NetworkState
from schakel.server.disclosure.data import GrantFacts
from schakel.server.serverkeys import ServerKeys

SERVER_USER = "schakel-server"
SERVER_ORGANISATION = "Schakel server"


def rules_of(state: NetworkState) -> Rules:
    """The release rules of the network's policy in force (``Rules.of``; protocol.md §N.3)."""
    return Rules.of(state.policy, state.genesis.kind)


def current_member(state: NetworkState, keyid: str, now: datetime) -> Member | None:
    """The partner's membership in force now, or None (none, expired or revoked)."""
    try:
        return state.current(keyid, now)
    except UntrustedKeyError:
        return None


def grantee_of(state: NetworkState, keyid: str, now: datetime,
               acting_users: Iterable[str] = ()) -> Grantee:
    """Row R2's facts: the partner's current membership.  The coordinator key without a
    membership counts as a formal core member; anyone else without a current membership
    is not active (``not-a-member``).

    ``acting_users``: the persons the act names (the request's acting user, and the one an
    invocation or co-sign carries).  The grantee then has the lowest of their parties and
    the roles that party holds (``Member.party_of``, ``acting_roles``; protocol.md §N.4),
    and is not ``listed`` when the membership lists its users and one of them is not."""
    member = current_member(state, keyid, now)
    if member is not None:
        party: str | None = member.party
        for user in acting_users:
            own = member.party_of(user)
            party = None if own is None or party is None else min(own, party,
                                                                  key=PARTIES.index)
        return Grantee(partner=keyid, network=state.network,
                       ring="core" if member.ring == "core" else "shell",
                       party="formal" if party == "formal" else "informal",
                       roles=acting_roles(member.roles, party), listed=party is not None)
    if state.is_coordinator_key(keyid):
        return Grantee(partner=keyid, network=state.network, ring="core", party="formal",
                       roles=frozenset({"coordinator"}))
    return Grantee(partner=keyid, network=state.network, ring="shell", party="informal",
                   active=False)


def auditors(state: NetworkState, now: datetime) -> frozenset[str]:
    """Key ids of the current members holding the ``auditor`` role (a bemoeizorg
    justification is sealed to each of them: protocol.md §D.4)."""
    return frozenset(k for k, m in state.current_members(now).items() if m.has_role("auditor"))


def basis_holders(state: NetworkState, rules: Rules, case: str, grants: Iterable[GrantFacts],
                  now: datetime) -> dict[str, frozenset[str]]:
    """Who holds a basis for which classes of ``case`` now (ADR 0011): each grantee whose
    grant ``policy.decide`` still allows (its consent in force and not revoked, the
    grantee a current member, ...), and -- in an oggz network whose policy enables
    bemoeizorg -- each current formal member holding the ``bemoeizorg`` role, for every
    class: that role is a standing basis (rows R8, R9; each use is decided, audited and
    reviewed at release).  The owner seals a rotated identity version to these only."""
    out: dict[str, set[str]] = {}
    for g in grants:
        request = Request(network=state.network, case=case, case_kind="case",
                          classes=frozenset(g.classes),
                          grantee=grantee_of(state, g.grantee, now), basis="consent",
                          shared_with_grantee=g.shared, consent=g.consent)
        if decide(request, rules, now=now).allowed:
            out.setdefault(g.grantee, set()).update(g.classes)
    if rules.network_kind == "oggz" and rules.bemoeizorg_enabled:
        for keyid, member in state.current_members(now).items():
            if member.party == "formal" and member.has_role("bemoeizorg"):
                out.setdefault(keyid, set()).update(rules.classes)
    return {k: frozenset(v) for k, v in sorted(out.items())}


def server_actor(keys: ServerKeys) -> AuditActor:
    """The server itself (purge instructions, alerts): its log key id (protocol.md §A.1)."""
    return AuditActor(partner=keys.log.key_id, acting_user=SERVER_USER, role="server",
                      organisation=SERVER_ORGANISATION)


__all__ = ["SERVER_USER", "SERVER_ORGANISATION", "rules_of", "current_member", "grantee_of",
           "auditors", "basis_holders", "server_actor"]
