"""What a verified ``identity-purge`` destroys in the local state, and what it refuses
afterwards (protocol.md §C.12; ADR 0034).  Only the local state: used by the feed's
verifier (:meth:`schakel.client.fold.Verifier.purge`), which executes a purge, and by the
release check (:meth:`schakel.client.disclosure.Disclosure.release`), which refuses a
purged version.

Local document: ``identity-purged`` (n, case) = ``{"version", "erased"}``.
"""

from __future__ import annotations

from typing import Any

from schakel.client.state import LocalState


def purged(state: LocalState, network: str, case: str) -> dict[str, Any] | None:
    """``{"version", "erased"}``: the highest identity version of ``case`` a verified
    purge destroyed, and whether the identity was erased; None if none was."""
    doc: dict[str, Any] | None = state.get_doc("identity-purged", (network, case))
    return doc


def destroy(state: LocalState, network: str, case: str, up_to: int, *, erased: bool) -> int:
    """Delete every class key of ``case`` with a version up to ``up_to``, and the plaintext
    of each class that no newer key of this partner's still opens (for an erasure, every
    plaintext); forget the releases and bemoeizorg access of the destroyed classes.
    Records the purge (``identity-purged``).  Returns the number of secrets deleted.  Run
    inside the caller's local transaction."""
    dropped = 0
    kept: set[str] = set()
    for ref in state.secret_refs("class-key", (network, case)):
        if int(ref[3]) <= up_to:
            state.delete_secret("class-key", ref)
            dropped += 1
        else:
            kept.add(ref[2])
    gone: set[str] = set()
    for ref in state.secret_refs("identity", (network, case)):
        if erased or ref[2] not in kept:
            state.delete_secret("identity", ref)
            gone.add(ref[2])
            dropped += 1
    for ref, doc in state.docs("release", (network,)):
        if doc.get("case") != case:
            continue
        left = [c for c in doc.get("classes", ()) if c not in gone and not erased]
        if left:
            state.put_doc("release", ref, {**doc, "classes": left})
        else:
            state.delete_doc("release", ref)
    for ref, doc in state.docs("bemoeizorg-access", (network,)):
        if doc.get("case") == case and (erased or set(doc.get("classes", ())) <= gone):
            state.delete_doc("bemoeizorg-access", ref)
    if erased:
        for kind in ("identity-rotation", "identity-rotation-due"):
            state.delete_doc(kind, (network, case))
    state.shred()
    held = purged(state, network, case) or {"version": 0, "erased": False}
    state.put_doc("identity-purged", (network, case),
                  {"version": max(int(held["version"]), up_to),
                   "erased": bool(held["erased"]) or erased})
    return dropped


def refuse_purged(state: LocalState, network: str, case: str, version: int) -> str | None:
    """Why a release of ``version`` of ``case`` must not be believed, or None: the
    identity was erased, or this version was purged (protocol.md §C.12)."""
    held = purged(state, network, case)
    if held is None:
        return None
    if held["erased"]:
        return "the identity of this case was erased"
    if version <= int(held["version"]):
        return f"identity version {version} of this case was purged"
    return None


__all__ = ["purged", "destroy", "refuse_purged"]
