"""Grants and bemoeizorg invocations as the verified audit log tells them
(docs/protocol.md §15.1, §15.2): what a partner lists with ``schakel grant list`` and
``schakel bemoeizorg list``.

Pure folds over the entries :meth:`schakel.client.audit.Audit.entries` returns, each
already verified (commitment and inclusion in a signed head).  Nothing here comes from
the server unchecked, and nothing needs a route of its own: the log already names every
grant (``grant``, its id in ``ref``, the grantee in ``subject``), every release under it
(``release``, same ``ref``), and each step of an invocation (``bemoeizorg-invoke``,
``-cosign``, ``-release``, ``review``, and a refusal, ``deny``, all with the invocation
id in ``ref``).  A partner sees what the server serves it: the coordinator and auditors
every entry, any other member the entries that name it (§15.1), so a list can be partial
-- a co-signer of another organisation sees only its own co-sign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schakel.client.views import GrantSummary, InvocationSummary

#: The audit actions of a bemoeizorg invocation's life, in order.
INVOCATION_ACTIONS = ("bemoeizorg-invoke", "bemoeizorg-cosign", "bemoeizorg-release",
                      "review", "deny")


def _entries(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The entry bodies, in log order (an entry erased after retention has none)."""
    return [dict(item["entry"]) for item in items if item.get("entry")]


def _actor(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    actor = entry.get("actor") or {}
    return actor.get("partner"), actor.get("organisation")


def grants(items: Iterable[Mapping[str, Any]], me: str) -> list[GrantSummary]:
    """The grants the entries name, in the order they were given."""
    found: dict[str, GrantSummary] = {}
    for entry in _entries(items):
        ref, action = entry.get("ref"), entry.get("action")
        if not isinstance(ref, str):
            continue
        if action == "grant" and entry.get("outcome") == "allow":
            grantor, name = _actor(entry)
            grantee = entry.get("subject")
            direction = ("to-you" if grantee == me else "by-you" if grantor == me else "other")
            found[ref] = GrantSummary(
                grant=ref, case=entry.get("case"), grantee=grantee, grantor=grantor,
                grantor_name=name, classes=list(entry.get("classes") or []),
                granted=str(entry.get("time")), direction=direction, status="granted")
        elif ref in found and entry.get("basis") == "consent":
            if action == "release":
                found[ref].status, found[ref].released = "released", str(entry.get("time"))
                found[ref].refusal = None
            elif action == "deny":
                found[ref].status, found[ref].refusal = "release-refused", entry.get("reason")
    return list(found.values())


def consents(items: Iterable[Mapping[str, Any]], case: str) -> list[dict[str, Any]]:
    """The consents the entries record for ``case``, in the order they were recorded:
    id (``ref``), classes, when, who recorded it, and whether a ``consent-revoke``
    entry followed.  Who may receive under a consent and until when are in the signed
    consent the server keeps, not in the log: the server judges them (release row R5)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in _entries(items):
        ref, action = entry.get("ref"), entry.get("action")
        if not isinstance(ref, str) or entry.get("case") != case:
            continue
        if action == "consent" and entry.get("outcome") == "allow":
            recorder, name = _actor(entry)
            found[ref] = {"consent": ref, "classes": list(entry.get("classes") or []),
                          "recorded": str(entry.get("time")), "recorder": recorder,
                          "recorder_name": name, "revoked": False}
        elif action == "consent-revoke" and ref in found:
            found[ref]["revoked"] = True
    return list(found.values())


def invocations(items: Iterable[Mapping[str, Any]]) -> list[InvocationSummary]:
    """The bemoeizorg invocations the entries name, in the order they first appear."""
    found: dict[str, InvocationSummary] = {}
    for entry in _entries(items):
        ref, action = entry.get("ref"), entry.get("action")
        if not isinstance(ref, str) or action not in INVOCATION_ACTIONS:
            continue
        if action in ("review", "deny") and ref not in found and entry.get("basis") != "bemoeizorg":
            continue                     # a review of an entry, or a consent refusal
        inv = found.get(ref)
        if inv is None:
            inv = found[ref] = InvocationSummary(
                invocation=ref, case=entry.get("case"), invoker=None, invoker_name=None,
                ground=None, classes=list(entry.get("classes") or []), invoked=None,
                status="waiting-for-cosign")
        partner, name = _actor(entry)
        if action == "bemoeizorg-invoke":
            inv.invoker, inv.invoker_name, inv.ground = partner, name, entry.get("reason")
            inv.invoked, inv.case = str(entry.get("time")), entry.get("case")
            inv.classes = list(entry.get("classes") or [])
        elif action == "bemoeizorg-cosign":
            inv.cosigners.append(name or partner or "?")
            if inv.status == "waiting-for-cosign":
                inv.status = "cosigned"
        elif action == "bemoeizorg-release":
            inv.status, inv.released = "released", str(entry.get("time"))
        elif action == "review":
            inv.reviews.append(str(entry.get("reason", "")).removeprefix("review-"))
            inv.status = "reviewed"
        elif inv.invoked is None and inv.status == "waiting-for-cosign":
            inv.status, inv.refusal = "refused", entry.get("reason")
            inv.invoker, inv.invoker_name = partner, name
        else:
            inv.refusal = entry.get("reason")    # a refused release or co-sign
    return list(found.values())


__all__ = ["grants", "invocations"]
