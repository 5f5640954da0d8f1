"""Who can act on a refusal, by the caller's role in the network it concerns.

A refusal says what was refused, why, and who can act on it (``schakel.cli.main.fail``
prints them).  "Ask the coördinator" is wrong advice for the coördinator, and an
auditor or a schil (shell) member needs other people than a kern (core) member, so the
last line is chosen by the caller's place in the network: when a command fails,
:func:`note_caller` records that place (read from what this home verified, without a
request) and :func:`who_can_act` picks the sentence.  The roles are those of
:class:`schakel.client.views.NetworkPlace`.

The tables hold English msgids marked with ``N_``; :func:`who_can_act` and
:func:`not_trusted` return them in the language spoken now (:mod:`schakel.cli.i18n`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from schakel.client.partner import Partner

#: Where the failing command's caller role is kept (click's per-invocation meta dict).
CALLER_META = "schakel.caller"

#: The role as the refusal names it to the caller.
YOU_ARE: dict[str, str] = {
    "coordinator": N_("you are this network's coördinator"),
    "auditor": N_("you are an auditor in this network"),
    "core": N_("you are a kern (core) member of this network"),
    "shell": N_("you are a schil (shell) member of this network"),
    "former": N_("your membership of this network expired or was revoked"),
    "not-admitted": N_("your organisation is not (yet) a member of this network"),
}

#: Someone else decides on the membership: roles, ring, party.
_MEMBERSHIP = {
    "coordinator": N_("you decide on memberships: admit the organisation again with the ring, "
                      "party and roles it needs (`schakel member add NETWORK BUNDLE_FILE --ring … "
                      "--party … --role … --fingerprint …`)"),
    "*": N_("the coördinator decides on memberships (ring, party, roles): ask them"),
}
#: The network policy is the coördinator's: version 1 in the genesis, later versions by
#: `schakel network policy`.
_POLICY = {
    "coordinator": N_("you answer for the network's policy: put a new version in force if it "
                      "should allow this (`schakel network policy NETWORK --policy-file …`)"),
    "*": N_("the coördinator answers for the network's policy: ask them if you think it "
            "should allow this"),
}

#: By error code or policy reason (a reason wins over its code): role -> sentence, "*"
#: for every other role.
WHO: dict[str, Mapping[str, str]] = {
    "policy_violation": _POLICY,
    "bemoeizorg-disabled": _POLICY,
    "bemoeizorg-not-in-oggz": _POLICY,
    "anonymous-signals-disabled": _POLICY,
    "forbidden": {
        "coordinator": N_("the one the message names (e.g. the case's owner or an auditor) "
                          "can do this; or you admit an organisation with the role it needs "
                          "(`schakel member add`)"),
        "*": N_("the coördinator can do this, or admit your organisation with the role it "
                "needs if it should do it itself"),
    },
    "bemoeizorg-role-required": _MEMBERSHIP,
    "bemoeizorg-cosigner-without-role": _MEMBERSHIP,
    "class-requires-role": _MEMBERSHIP,
    "informal-class-not-allowed": _MEMBERSHIP,
    "acting-user-not-listed": {
        "coordinator": N_("you list an organisation's users: admit it again with --user "
                          "ID=formal|informal for each (`schakel member add`)"),
        "*": N_("the coördinator lists your organisation's users (beroepskrachten formal, "
                "vrijwilligers informal): ask them to add you"),
    },
    "recipient-not-core": _MEMBERSHIP,
    "untrusted_key": {
        "coordinator": N_("you admit members yourself: if a membership expired or was revoked, "
                          "admit the organisation again (`schakel member add`)"),
        "*": N_("the coördinator admits members: if your membership expired or was revoked, "
                "ask them to admit you again (`schakel member add`)"),
    },
    "grant-not-held": {
        "coordinator": N_("you grant identity yourself (`schakel grant create NETWORK CASE "
                          "--consent CONSENT --to KEY_ID --class CLASS --reason …`); `schakel "
                          "grant list NETWORK` shows the grants there are"),
        "*": N_("`schakel grant list NETWORK` shows the grants you hold; the coördinator grants "
                "new ones"),
    },
    "grant-requires-coordinator": {
        "*": N_("only the coördinator grants identity: ask them, naming the case and the consent"),
    },
    "not-case-owner": {
        "coordinator": N_("the casus's owner (`schakel case show` names it) does this: pass "
                          "the person's request on to them; an erasure you may do yourself "
                          "(`schakel case erase`)"),
        "*": N_("the casus's owner (`schakel case show` names it) does this, and a person's "
                "erasure also the coördinator: pass the request on to them"),
    },
    "shell-without-share": {
        "coordinator": N_("share the case yourself (`schakel case share NETWORK CASE PARTNER`)"),
        "*": N_("the coördinator shares it (`schakel case share`)"),
    },
    "not-an-auditor": {
        "coordinator": N_("the auditors read and review it; `schakel bemoeizorg list NETWORK` "
                          "shows you every invocation and its state"),
        "*": N_("only the network's auditors read it"),
    },
    "notifications-coordinator-only": {
        "*": N_("the coördinator follows the notifications; you see your own grants with "
                "`schakel grant list NETWORK` and invocations with `schakel bemoeizorg list "
                "NETWORK`"),
    },
    "server_misbehaviour": {
        "coordinator": N_("warn the partners and the server's operator (`schakel whoami` lists "
                          "what this home recorded)"),
        "*": N_("tell the coördinator and the server's operator (`schakel whoami` lists what "
                "this home recorded)"),
    },
    "bad_proof": {
        "coordinator": N_("tell the auditors and the server's operator"),
        "auditor": N_("tell the coördinator and the server's operator"),
        "*": N_("tell the coördinator and the auditors"),
    },
}

#: An id this home has no trust anchor for: what the NETWORK argument must be.
NOT_TRUSTED = (N_("`schakel network list` shows the networks this home trusts. If you "
                  "founded {network} it would be there; to join it, trust it with the "
                  "fingerprint its coördinator reads aloud: `schakel network trust {network} "
                  "--fingerprint \"…\"`"))


def not_trusted(error: ProtocolError) -> str | None:
    """The advice for a network id this home holds no anchor for, or None."""
    details = error.details or {}
    if error.code == "untrusted_key" and details.get("anchor") == "missing":
        return _(NOT_TRUSTED).format(network=details.get("network") or "NETWORK")
    return None


def who_can_act(error: ProtocolError, role: str | None) -> str | None:
    """Who can act on ``error``, said to a caller with ``role`` (None: not known), in the
    language spoken now."""
    if not_trusted(error):
        return None
    reason = (error.details or {}).get("reason")
    table = WHO.get(reason) if isinstance(reason, str) and reason in WHO else WHO.get(error.code)
    if table is None:
        return None
    said = table.get(role or "*") or table["*"]
    said = _(said)
    return f"{_(YOU_ARE[role])}: {said}" if role in YOU_ARE else said


def role_in(partner: "Partner", network: str) -> str | None:
    """``partner``'s role in ``network`` as this home verified it, or None if unknown."""
    try:
        role = partner.networks.place(network).role
    except ProtocolError:
        return None
    return None if role == "not-synced" else role


def note_caller(partner: "Partner") -> None:
    """Record the caller's role in the failing command's NETWORK for the refusal."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    network: Any = ctx.params.get("network_id")
    if isinstance(network, str):
        ctx.meta[CALLER_META] = role_in(partner, network)


__all__ = ["CALLER_META", "WHO", "YOU_ARE", "note_caller", "not_trusted", "role_in",
           "who_can_act"]
