"""Referral of a case to another network (docs/protocol.md §D.8, §15.5; flow 7).

Networks are walls: a neighbourhood network and an oggz network each hold their own
keys, and a case does not cross unless someone carries it (the seed names these walls as
a cause of people falling through).  The coordinator of the sending network, who is also
a core member of the receiving one, carries it:

1. it creates a new case in the receiving network whose intake is the *folded anonymous
   state* of the source case, encrypted under the receiving network's keys (a new case
   key under its epoch), plus one note summarising the analysis and the actions so far —
   all through :meth:`~schakel.client.cases.Cases.create` and
   :meth:`~schakel.client.cases.Cases.add_event`, so the PII guard runs before anything is
   sent.  No identity crosses here: identity reaches the receiving network only through
   its own basis (consent or bemoeizorg) and release;
2. it posts the signed referral (basis: the consent naming the receiving coordinator,
   or an accepted bemoeizorg invocation), and checks that the two audit entries the
   server says it wrote — ``referral-out`` in the sending log, ``referral-in`` in the
   receiving log — are in the verified logs and say what happened.
"""

from __future__ import annotations

from typing import Any

from schakel.client.audit import Audit
from schakel.client.cases import Cases
from schakel.client.errors import ServerRefused
from schakel.client.session import Session
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, MalformedError, PolicyViolation
from schakel.protocol.objects.base import parse_timestamp
from schakel.protocol.objects.disclosure import Referral, ReferralBasis

INTAKE_FIELDS = ("age_band", "neighbourhood", "domains", "severity", "care_status", "source",
                 "complex", "summary")
NOTE_MAX = 8000


def referral_id(envelope: dict[str, Any]) -> str:
    """The referral's id: the first 16 bytes of the SHA-256 of its canonical envelope
    (§15.5; the object has no id field)."""
    return b64e(sha256(canonical_json(envelope))[:16])


def intake_of(state: dict[str, Any]) -> dict[str, Any]:
    """The intake plaintext of the receiving case from a folded anonymous state."""
    missing = [f for f in INTAKE_FIELDS if state.get(f) is None]
    if missing:
        raise MalformedError(f"the source case's anonymous state lacks {missing}: "
                             "it cannot be re-created in the receiving network",
                             details={"field": missing[0]})
    intake: dict[str, Any] = {"kind": "intake"}
    for name in INTAKE_FIELDS:
        value = state[name]
        intake[name] = list(value) if isinstance(value, (list, tuple)) else value
    return intake


def summary_note(state: dict[str, Any], *, network_name: str, reason: str) -> str:
    """One note that carries the work done so far (analysis, actions) across."""
    lines = [f"Doorverwezen vanuit {network_name}: {reason}"]
    for item in state.get("analysis") or ():
        text = item.get("text") if isinstance(item, dict) else None
        if text:
            lines.append(f"Analyse: {text}")
    for item in state.get("actions") or ():
        if isinstance(item, dict) and item.get("description"):
            lines.append(f"Actie ({item.get('help_type', '?')}): {item['description']}")
    text = "\n".join(lines)
    return text if len(text) <= NOTE_MAX else text[:NOTE_MAX - 1] + "…"


class Referrals:
    """Referral between networks (module docstring)."""

    def __init__(self, session: Session, cases: Cases, audit: Audit) -> None:
        self.session, self.cases, self.audit = session, cases, audit

    async def refer(self, network: str, case: str, to_network: str, *,
                    consent: str | None = None, invocation: str | None = None,
                    reason: str) -> str:
        """Refer ``case`` of ``network`` to ``to_network`` (module docstring); the id of
        the new case in ``to_network``.  The caller is the coordinator of ``network``
        and a core member of ``to_network``."""
        s = self.session
        if consent is not None and invocation is None:
            basis = ReferralBasis(kind="consent", ref=consent)
        elif invocation is not None and consent is None:
            basis = ReferralBasis(kind="bemoeizorg", ref=invocation)
        else:
            raise MalformedError("a referral rests on exactly one basis: consent or invocation",
                                 details={"field": "basis"})
        if to_network == network:
            raise MalformedError("a referral goes to another network",
                                 details={"field": "to_network"})
        s.refuse_pii(network, {"reason": reason})
        source = await s.trusted(network)
        if not source.is_coordinator(s.key_id):
            raise MalformedError("only the sending network's coordinator refers a case",
                                 details={"field": "network"})
        view = self.cases.get(network, case)
        if view.kind != "case":
            raise MalformedError("a consult is not referred: it has no person behind it",
                                 details={"field": "case"})
        intake = intake_of(view.state)
        note = summary_note(view.state, network_name=source.name, reason=reason)
        # The PII guard runs on both before anything reaches the receiving network.
        s.refuse_pii(to_network, intake)
        s.refuse_pii(to_network, {"kind": "note", "text": note})
        if consent is not None:
            self._refuse_referral_early(network, case, consent,
                                        (await s.trusted(to_network)).coordinator_key_id)
        new_case = await self.cases.create(to_network, intake)
        await self.cases.add_event(to_network, new_case, {"kind": "note", "text": note})
        envelope = Referral(network=network, to_network=to_network, case=case,
                            new_case=new_case, basis=basis, acting_user=s.acting_user,
                            at=s.stamp(), reason=reason).sign(s.keys.signer)
        expected = referral_id(envelope)
        try:
            answer = await s.conn.post(s.path(network, "/referrals"),
                                       {"referral": envelope})
        except ServerRefused:
            # The receiving case exists already (it must, for the server to check the
            # referral).  A refused referral closes it, so no open case without a
            # referral behind it is left in the receiving network.
            await self.cases.close(to_network, new_case, reason="verwijzing geweigerd")
            raise
        with s.verifying(network, referral=expected):
            if answer["referral"] != expected:
                raise ContextMismatchError("the server acknowledged another referral")
            out_index, in_index = int(answer["audit_index"]), int(answer["receiving_audit_index"])
        await self._check_referral_entry(network, out_index, action="referral-out", case=case,
                                         referral=expected)
        await self._check_referral_entry(to_network, in_index, action="referral-in",
                                         case=new_case, referral=expected)
        s.state.put_doc("referral", (network, expected), {
            "envelope": envelope, "new_case": new_case, "to_network": to_network,
            "audit_index": out_index, "receiving_audit_index": in_index})
        return new_case

    def _refuse_referral_early(self, network: str, case: str, consent: str,
                               receiver: str) -> None:
        """What the server checks of a consent basis (docs/protocol.md §15.5), judged on
        the consent this client recorded, before a case is made in the receiving
        network.  A consent recorded elsewhere is left to the server."""
        s = self.session
        doc = s.state.get_doc("consent", (network, consent))
        if doc is None:
            return
        signed = doc["envelope"]["signed"]
        now = s.now()
        if signed["case"] != case:
            raise ContextMismatchError("the consent is for another case",
                                       details={"field": "consent"})
        if doc.get("revoked"):
            raise PolicyViolation("the consent was revoked", details={"reason": "consent-revoked"})
        if not parse_timestamp(signed["valid_from"]) <= now < parse_timestamp(signed["valid_until"]):
            raise PolicyViolation("the consent is not in force now",
                                  details={"reason": "consent-not-in-force"})
        if receiver not in signed["grantees"].get("partners", ()):
            raise PolicyViolation("the person's consent does not name the receiving "
                                  "network's coordinator", details={"reason": "consent-not-for-receiver"})

    async def _check_referral_entry(self, network: str, index: int, *, action: str,
                                    case: str, referral: str) -> None:
        """The entry the server named is in the signed log and records this referral.
        The index works as a receipt: the latest head, then the entry with its inclusion
        proof in the tree of that head's size (one page of the entries, §15.1), are
        fetched and checked like a release receipt (head signed by the log key and
        consistent with the heads held, entry included), so a missing or different entry
        is ``receipt-invalid``."""
        s = self.session
        path = s.path(network, "/audit")
        with s.verifying(network, malformed="receipt-invalid", index=index):
            head = (await s.conn.get(f"{path}/head"))["tree_head"]
            size = int(head["signed"]["size"])
            page = await s.conn.get(f"{path}/entries",
                                    params={"after": index, "limit": 1, "size": size})
            items = [i for i in page["items"] if int(i["index"]) == index]
        entry = await self.audit.monitor(network).check_receipt({
            "entry": items[0]["entry"] if items else None, "index": index,
            "proof": items[0].get("proof") if items else None, "tree_head": head})
        if (entry.action, entry.case, entry.ref, entry.outcome, entry.actor.partner) != (
                action, case, referral, "allow", s.key_id):
            raise s.misbehaving(network, "receipt-invalid",
                                f"audit entry {index} is not this referral's {action}",
                                index=index)


__all__ = ["Referrals", "referral_id", "intake_of", "summary_note"]
