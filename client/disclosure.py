"""Disclosure from the partner's side: consent, grants, releases, bemoeizorg and reviews
(docs/protocol.md §D.1–§D.7, §7, §15.2; flows 4 and 5).  What ends a disclosure -- purge
instructions, expired bemoeizorg access -- is :mod:`schakel.client.purge`.

The server is trusted to enforce the policy and to keep the audit log, not to tell the
truth: a release is believed only after its inclusion receipt verified against a tree
head consistent with the one this client holds (ADR 0007: ``receipt-missing`` /
``receipt-invalid``), each class key opened under its own context, and each identity
record verified against the case owner's *verified* membership.  Until every check of a
release passed, nothing of it is stored.

The client also runs :func:`schakel.protocol.policy.decide` before it asks (a grant, an
invocation) so that a request the server would refuse is refused early, with the
policy's explanation, and never becomes an audited denial by mistake.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from schakel.protocol import envelopes, signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import ClassKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, PolicyViolation, ProtocolError, SignatureError,
)
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.objects.cases import IdentityRecord
from schakel.protocol.objects.disclosure import (
    BemoeizorgCosign, BemoeizorgInvocation, Consent, ConsentRevocation, Grant, GrantBasis,
    Grantees, Review, SealedJustification,
)
from schakel.protocol.objects.network import Policy
from schakel.protocol.policy import ConsentFacts, Decision, Grantee, Request, Rules, decide

from schakel.client.errors import NotFound, ServerRefused
from schakel.client.shred import purged, refuse_purged
from schakel.client import ledger
from schakel.client.views import GrantSummary, InvocationSummary, Released
from schakel.client.wire import new_id, refuse

if TYPE_CHECKING:
    # Only for annotations: schakel.client.fold imports ``rules_of`` from here, and the
    # session imports fold.
    from schakel.client.audit import Audit
    from schakel.client.session import Session
    from schakel.client.trust import TrustView

#: How far a consent's ``valid_from`` is dated back from the moment it is recorded, so a
#: server whose clock runs a little behind the client's still finds it in force (R5).
CONSENT_SKEW = timedelta(seconds=60)


def rules_of(policy: Mapping[str, Any], kind: str) -> Rules:
    """The release rules of a verified genesis policy in its JSON form (``Rules.of``, the
    mapping the server uses too)."""
    return Rules.of(Policy.from_json(dict(policy)), kind)


class Disclosure:
    """Consent, grants, releases, bemoeizorg and reviews (module docstring)."""

    def __init__(self, session: Session, audit: Audit) -> None:
        self.session, self.audit = session, audit

    async def _rules(self, network: str) -> tuple[TrustView, Rules]:
        """The verified trust view and the release rules of its genesis policy."""
        tv = await self.session.trusted(network)
        return tv, rules_of(tv.policy, tv.kind)

    # ------------------------------------------------------------------ consent

    async def record_consent(self, network: str, case: str, *, classes: Iterable[str],
                             partners: Iterable[str] = (), parties: Iterable[str] = (),
                             purpose: str, valid_days: int = 365, evidence: bytes) -> str:
        """Record the person's consent (§D.1), signed by this partner (the case owner or
        the coordinator).  ``evidence`` is the signed consent form; only its SHA-256
        leaves this partner.  ``purpose`` is visible to the server: PII-guarded."""
        s = self.session
        if not isinstance(evidence, (bytes, bytearray)) or not evidence:
            raise MalformedError("evidence is the signed consent form (bytes)",
                                 details={"field": "evidence"})
        if valid_days < 1:
            raise MalformedError("a consent is valid for at least one day",
                                 details={"field": "valid_days"})
        s.refuse_pii(network, {"purpose": purpose})
        _, rules = await self._rules(network)
        classes = tuple(sorted(set(classes)))
        unknown = set(classes) - rules.classes
        if unknown:
            raise refuse("unknown-class", f"the network has no disclosure class {sorted(unknown)}")
        now = s.now()
        consent = new_id()
        envelope = Consent(
            network=network, consent=consent, case=case, classes=classes,
            grantees=Grantees(partners=tuple(sorted(set(partners))),
                               parties=tuple(sorted(set(parties)))),
            purpose=purpose, valid_from=format_timestamp(now - CONSENT_SKEW),
            valid_until=format_timestamp(now + timedelta(days=valid_days)),
            evidence=b64e(hashlib.sha256(bytes(evidence)).digest()),
            acting_user=s.acting_user, at=format_timestamp(now)).sign(s.keys.signer)
        answer = await s.conn.post(s.path(network, "/consents"),
                                   {"consent": envelope})
        with s.verifying(network, consent=consent):
            if answer["consent"] != consent:
                raise ContextMismatchError("the server acknowledged another consent")
        s.state.put_doc("consent", (network, consent), {"envelope": envelope,
                                                        "revoked": False})
        return consent

    async def revoke_consent(self, network: str, case: str, consent: str, *,
                             reason: str) -> list[str]:
        """Revoke a consent (§D.2): later releases under it are denied at once, and the
        server sends a purge instruction to every partner that received classes under
        it.  Returns the ids of those instructions, which this home keeps with the consent
        (:meth:`consents`)."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        envelope = ConsentRevocation(network=network, consent=consent, case=case,
                                     acting_user=s.acting_user, at=s.stamp(),
                                     reason=reason).sign(s.keys.signer)
        answer = await s.conn.post(
            s.path(network, f"/consents/{consent}/revocation"),
            {"revocation": envelope})
        with s.verifying(network, consent=consent):
            if answer["consent"] != consent:
                raise ContextMismatchError("the server acknowledged another revocation")
            ids = [str(i) for i in answer["purge_instructions"]]
        doc = s.state.get_doc("consent", (network, consent))
        if doc is not None:
            s.state.put_doc("consent", (network, consent), {**doc, "revoked": True,
                                                            "purge_instructions": ids})
        return ids

    def consents(self, network: str, case: str) -> list[dict[str, Any]]:
        """The consents this home recorded for ``case``, oldest first, as signed: id,
        classes, who may receive them (``partners``, ``parties``), purpose, validity,
        the consent form's SHA-256 (hex), and whether it was revoked here with the purge
        instructions that caused.  A consent recorded elsewhere is not in this home."""
        out = []
        for _ref, doc in self.session.state.docs("consent", (network,)):
            signed = doc["envelope"]["signed"]
            if signed["case"] != case:
                continue
            out.append({"consent": signed["consent"], "classes": list(signed["classes"]),
                        "partners": list(signed["grantees"].get("partners", ())),
                        "parties": list(signed["grantees"].get("parties", ())),
                        "purpose": signed["purpose"], "at": signed["at"],
                        "valid_from": signed["valid_from"], "valid_until": signed["valid_until"],
                        "evidence_sha256": b64d(signed["evidence"]).hex(),
                        "revoked": bool(doc.get("revoked")),
                        "purge_instructions": list(doc.get("purge_instructions") or ())})
        return sorted(out, key=lambda c: (c["at"], c["consent"]))

    # ------------------------------------------------------------------ grants

    @staticmethod
    def _grantee_fact(tv: TrustView, network: str, grantee: str) -> Grantee:
        """Row R2's fact from the *verified* membership (never what the server says)."""
        member = tv.member(grantee)
        if member is not None and member.current:
            return Grantee(partner=grantee, network=network,
                           ring="core" if member.ring == "core" else "shell",
                           party="formal" if member.party == "formal" else "informal",
                           roles=frozenset(member.roles))
        if tv.is_coordinator(grantee):
            return Grantee(partner=grantee, network=network, ring="core", party="formal",
                           roles=frozenset({"coordinator"}))
        return Grantee(partner=grantee, network=network, ring="shell", party="informal",
                       active=False)

    def _consent_fact(self, network: str, consent: str, case: str, classes: frozenset[str],
                      grantee: Grantee) -> ConsentFacts:
        """Row R5's fact: the consent as this client recorded it.  A consent recorded
        elsewhere is unknown here; then R5 is left to the server (a fact that covers the
        request), and the rows the client *can* judge (R1–R4, R6, R7) still run."""
        s = self.session
        doc = s.state.get_doc("consent", (network, consent))
        if doc is None:
            now = s.now()
            return ConsentFacts(consent=consent, case=case, classes=classes,
                                partners=frozenset({grantee.partner}), parties=frozenset(),
                                valid_from=now - timedelta(seconds=1),
                                valid_until=now + timedelta(days=1))
        signed = doc["envelope"]["signed"]
        return ConsentFacts(consent=consent, case=signed["case"],
                            classes=frozenset(signed["classes"]),
                            partners=frozenset(signed["grantees"].get("partners", ())),
                            parties=frozenset(signed["grantees"].get("parties", ())),
                            valid_from=parse_timestamp(signed["valid_from"]),
                            valid_until=parse_timestamp(signed["valid_until"]),
                            revoked=bool(doc.get("revoked")))

    def _case_kind(self, network: str, case: str) -> Literal["case", "consult"]:
        """``case`` or ``consult`` from the verified header; ``case`` when this client
        holds no header (the server checks R1 anyway)."""
        try:
            return "consult" if self.session.header(network, case).is_consult else "case"
        except ProtocolError:
            return "case"

    def _shared_with(self, network: str, case: str, partner: str) -> bool:
        """Row R3's fact: a share of ``case`` with ``partner`` among the verified shares
        this client holds (doc ``share``: a core member's sync carries every share of
        the network, and the coordinator's own shares are stored when made)."""
        return bool(self.session.state.docs("share", (network, case, partner)))

    async def rules(self, network: str) -> Rules:
        """The release rules of the network's verified policy: its disclosure classes,
        the ones an informal party may receive, the restricted ones and their roles."""
        return (await self._rules(network))[1]

    async def judge_grant(self, network: str, case: str, *, consent: str, grantee: str,
                          classes: Iterable[str]) -> Decision:
        """What the network policy decides on granting ``grantee`` the ``classes`` of
        ``case`` under ``consent`` (:func:`schakel.protocol.policy.decide`), judged on
        what this client verified: the grantee's membership, the case kind, the consent
        as this home recorded it, the shares it holds.  Nothing is sent; :meth:`grant`
        sends only what this allows."""
        s = self.session
        tv, rules = await self._rules(network)
        wanted = frozenset(classes)
        if not wanted:
            raise MalformedError("a grant names at least one class", details={"field": "classes"})
        who = self._grantee_fact(tv, network, grantee)
        request = Request(network=network, case=case, case_kind=self._case_kind(network, case),
                          classes=wanted, grantee=who, basis="consent",
                          shared_with_grantee=self._shared_with(network, case, grantee),
                          consent=self._consent_fact(network, consent, case, wanted, who),
                          identity_erased=bool((purged(s.state, network, case) or {})
                                               .get("erased")))
        return decide(request, rules, now=s.now())

    async def grant(self, network: str, case: str, *, consent: str, grantee: str,
                    classes: Iterable[str], reason: str) -> str:
        """Grant ``grantee`` the ``classes`` of ``case`` under ``consent`` (§D.3; the
        coordinator).  :meth:`judge_grant` runs first, and a request the policy would
        deny is refused here (``PolicyViolation``, ``details.reason``, the policy's
        explanation) and never sent."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        wanted = frozenset(classes)
        decision = await self.judge_grant(network, case, consent=consent, grantee=grantee,
                                          classes=wanted)
        if not decision.allowed:
            raise refuse(decision.reason, decision.message, grantee=grantee)
        grant_id = new_id()
        envelope = Grant(network=network, grant=grant_id, case=case, grantee=grantee,
                         classes=tuple(sorted(wanted)),
                         basis=GrantBasis(consent=consent),
                         acting_user=s.acting_user, at=s.stamp(),
                         reason=reason).sign(s.keys.signer)
        answer = await s.conn.post(s.path(network, "/grants"), {"grant": envelope})
        with s.verifying(network, grant=grant_id):
            if answer["grant"] != grant_id:
                raise ContextMismatchError("the server acknowledged another grant")
        s.state.put_doc("grant", (network, grant_id), {"envelope": envelope})
        return grant_id

    # ------------------------------------------------------------------ releases

    async def release(self, network: str, grant: str) -> Released:
        """Ask for what ``grant`` gave this partner (§15.2 ``POST .../releases``) and
        believe it only after :meth:`_accept_release` verified it.

        The release id is chosen here and kept until the answer is verified and stored,
        so a retry after a lost answer (a crash, a timeout) asks again *with the same
        id*: the server decides it again (refused once the basis ended) and re-delivers
        the same envelopes, with the receipt of an audit entry of its own, instead of a
        second release (ADR 0009).  Once stored, the id is forgotten: a later call is a
        new release."""
        s = self.session
        await self._refuse_unlisted(network)
        doc = s.state.get_doc("pending-release", (network, grant))
        release_id = doc["release"] if doc else new_id()
        if doc is None:
            s.state.put_doc("pending-release", (network, grant), {"release": release_id})
        answer = await s.conn.post(s.path(network, "/releases"),
                                   {"grant": grant, "release": release_id})
        released = await self._accept_release(network, answer, action="release", ref=grant,
                                              release_id=release_id)
        s.state.delete_doc("pending-release", (network, grant))
        return released

    async def _refuse_unlisted(self, network: str) -> None:
        """Row R2 for this session's acting user: when this partner's verified membership
        lists its users, the acting user must be one of them (protocol.md §N.4).  Judged
        on what this home verified before -- the server refuses such a user every request,
        the member list too -- or, when it holds nothing yet, on what the server shows."""
        s = self.session
        try:
            tv = s.local_trust(network)
        except NotFound:
            tv = await s.trusted(network)
        me = tv.member(s.key_id)
        if me is not None and me.party_of(s.acting_user) is None:
            raise refuse("acting-user-not-listed",
                         "the acting user is not one of the users this partner's membership "
                         "lists", acting_user=s.acting_user)

    async def _accept_release(self, network: str, answer: Any, *, action: str, ref: str,
                              release_id: str | None = None, basis: str = "consent",
                              extra: Mapping[str, Any] | None = None) -> Released:
        """Verify a release answer and only then store it (flow 4 step 4).

        1. The inclusion receipt verifies (``AuditMonitor.check_receipt``: the tree head
           signed by the genesis log key, consistent with the head held, the entry
           included) — missing: ``receipt-missing``; otherwise ``receipt-invalid``.
        2. The entry is *this* release: ``action``, allowed, ``ref``, this partner as
           actor, and names the case and classes.
        3. Every envelope is a class of that entry, opened with this partner's box key
           under its own context (network, case, class, version, recipient = self).
        4. Every identity record is signed by the case owner — verified against the
           owner's membership that this client verified — names the same case, class and
           version, and decrypts under ``identity_context``.
        5. Exactly the entry's classes were delivered.

        Before all of these, an answer that delivers a version of a case's identity that a
        verified purge destroyed (:meth:`_refuse_purged`) is refused as ``event-replayed``.

        Any failure is recorded server misbehaviour and nothing is stored."""
        s = self.session
        self._refuse_purged(network, answer)
        receipt = answer.get("receipt") if isinstance(answer, Mapping) else None
        entry = await self.audit.monitor(network).check_receipt(receipt)
        with s.verifying(network, malformed="receipt-invalid", index=entry.index):
            if (entry.action, entry.outcome, entry.ref, entry.actor.partner) != (
                    action, "allow", ref, s.key_id) or entry.case is None:
                raise s.misbehaving(network, "receipt-invalid",
                                    "the receipt's audit entry is not this release",
                                    index=entry.index)
            if release_id is not None and answer["release"] != release_id:
                raise ContextMismatchError("the server answered another release")
        tv, rules = await self._rules(network)
        me = tv.member(s.key_id)
        party = me.party_of(s.acting_user) if me is not None else None
        # protocol.md §A.1, §N.4: the entry records this session's acting user in the
        # party its membership gives it, and the policy's rows for that party hold (R6:
        # an informal acting user receives at most the informal classes).
        if me is not None and (entry.actor.acting_user != s.acting_user
                               or entry.actor.party != party
                               or (entry.actor.on_behalf_of or ()) != me.on_behalf_of):
            raise s.misbehaving(network, "receipt-invalid", "the receipt's audit entry states "
                                "another acting user, party or on-behalf-of list",
                                index=entry.index)
        if party == "informal" and basis == "consent" and \
                set(entry.classes or ()) - rules.informal_classes:
            raise s.misbehaving(network, "receipt-invalid", "the server released a class the "
                                "policy refuses to an informal acting user",
                                index=entry.index)
        case = entry.case
        entry_classes = set(entry.classes or ())
        header = s.header(network, case)
        tv = await s.trusted(network)
        owner = tv.member(header.owner)
        if owner is None:
            raise s.misbehaving(network, "bad-signature",
                                "the case owner is not a verified member", case=case)
        opened: dict[str, dict[str, Any]] = {}
        keys: dict[str, tuple[int, ClassKey]] = {}
        with s.verifying(network, case=case):
            items = answer["envelopes"]
            if not isinstance(items, list):
                raise MalformedError("envelopes is not a list")
            for item in items:
                cls, version = item["class"], item["version"]
                if not isinstance(cls, str) or not isinstance(version, int) or isinstance(version, bool):
                    raise MalformedError("a released envelope names no class or version")
                if cls in opened or cls not in entry_classes:
                    raise ContextMismatchError("a released class is not the audited release's")
                context = envelopes.GateContext(network=network, case=case, cls=cls,
                                                version=version, recipient=s.key_id)
                key = envelopes.open_class_key(s.keys.box_secret, item["inner"], context)
                record = IdentityRecord.from_envelope(item["identity"], [owner.sign])
                if (record.network, record.case, record.class_, record.version) != (
                        network, case, cls, version):
                    raise ContextMismatchError("the identity record belongs elsewhere")
                opened[cls] = envelopes.decrypt_json(
                    key, record.ciphertext,
                    envelopes.identity_context(network, case, cls, version=version))
                keys[cls] = (version, key)
            if set(opened) != entry_classes:
                raise ContextMismatchError("the release withheld classes its audit entry names")
        # Everything verified: now, and only now, store.
        for cls, (version, key) in keys.items():
            s.state.put_secret("class-key", (network, case, cls, str(version)), key.export())
            s.state.put_secret("identity", (network, case, cls), canonical_json(opened[cls]))
        s.state.put_doc("release", (network, release_id or str(entry.index)), {
            "case": case, "classes": sorted(opened), "basis": basis, "ref": ref,
            "index": entry.index, "at": s.stamp(), **dict(extra or {})})
        return Released(network=network, case=case, classes=opened, receipt_index=entry.index)

    def _refuse_purged(self, network: str, answer: Any) -> None:
        """protocol.md §C.12: a purged identity version is never believed again, however
        well the answer verifies (an old release answer served again, a server that kept
        what it should have deleted): ``event-replayed``.  Only what the answer names is
        read here; everything else is verified afterwards."""
        s = self.session
        items = answer.get("envelopes") if isinstance(answer, Mapping) else None
        for item in items if isinstance(items, list) else ():
            signed = (item.get("identity") or {}).get("signed") if isinstance(item, Mapping) \
                else None
            if not isinstance(signed, Mapping) or not isinstance(signed.get("case"), str) or \
                    type(item.get("version")) is not int:
                continue
            case, version = signed["case"], item["version"]
            why = refuse_purged(s.state, network, case, version)
            if why is not None:
                raise s.misbehaving(network, "event-replayed", f"the server released purged "
                                    f"identity: {why}", case=case, identity_version=version)

    # ------------------------------------------------------------------ bemoeizorg

    async def invoke_bemoeizorg(self, network: str, case: str, *, ground: str,
                                justification: str, classes: Iterable[str] | None = None) -> str:
        """Invoke the bemoeizorg exception (§D.4; oggz networks, formal holders of the
        ``bemoeizorg`` role).  The justification is sealed to every *current* auditor
        of the verified member list — exactly the set the server checks (R10).  Rows
        the client can judge (R1, R8, R9, R10, the ground) are checked first."""
        s = self.session
        tv, rules = await self._rules(network)
        if rules.network_kind != "oggz":
            raise refuse("bemoeizorg-not-in-oggz",
                         "bemoeizorg exists only in oggz networks; this network needs consent")
        if not rules.bemoeizorg_enabled:
            raise refuse("bemoeizorg-disabled", "this network's policy does not allow bemoeizorg")
        me = tv.member(s.key_id)
        if me is not None and me.party_of(s.acting_user) is None:
            raise refuse("acting-user-not-listed",
                         "the acting user is not one of the users this partner's membership "
                         "lists", acting_user=s.acting_user)
        # R9 for this acting user: its own party and roles (protocol.md §N.4).
        if me is None or not me.current or me.party_of(s.acting_user) != "formal" \
                or "bemoeizorg" not in me.roles_of(s.acting_user):
            raise refuse("bemoeizorg-role-required",
                         "only formal parties holding the bemoeizorg role may invoke it")
        if ground not in rules.bemoeizorg_grounds:
            raise refuse("bemoeizorg-ground-invalid",
                         f"the ground is not one of the network policy's bemoeizorg grounds "
                         f"{sorted(rules.bemoeizorg_grounds)}")
        if not justification or not justification.strip():
            raise refuse("bemoeizorg-justification-missing",
                         "a written justification for the auditors is required")
        auditors = [a for a in tv.auditors() if a.current]
        if not auditors:
            raise refuse("bemoeizorg-justification-missing",
                         "the network has no current auditor to seal the justification to")
        if self._case_kind(network, case) == "consult":
            raise refuse("consult-has-no-identity",
                         "a consult is anonymous: it has no identity to release")
        if classes is None:
            try:
                held = s.header(network, case).classes
            except ProtocolError:
                held = None
            classes = held or sorted(rules.classes)
        wanted = tuple(sorted(set(classes)))
        unknown = set(wanted) - rules.classes
        if unknown:
            raise refuse("unknown-class", f"the network has no disclosure class {sorted(unknown)}")
        invocation = new_id()
        sealed = tuple(SealedJustification.seal(justification, a.box, network=network,
                                                invocation=invocation, case=case,
                                                auditor=a.key_id)
                       for a in sorted(auditors, key=lambda a: a.key_id))
        envelope = BemoeizorgInvocation(network=network, invocation=invocation, case=case,
                                        classes=wanted, ground=ground, justification=sealed,
                                        acting_user=s.acting_user,
                                        at=s.stamp()).sign(s.keys.signer)
        # Kept before sending: the release needs the invocation's time (R13, expiry).
        s.state.put_doc("invocation", (network, invocation), {"envelope": envelope})
        answer = await s.conn.post(s.path(network, "/bemoeizorg"),
                                   {"invocation": envelope})
        with s.verifying(network, invocation=invocation):
            if answer["invocation"] != invocation:
                raise ContextMismatchError("the server acknowledged another invocation")
        return invocation

    async def invocation(self, network: str, invocation: str) -> BemoeizorgInvocation | None:
        """An invocation, verified against its invoker's membership (:meth:`_invocation`):
        its case, ground and classes; None when this partner may not read it."""
        return await self._invocation(network, invocation)

    async def _invocation(self, network: str, invocation: str) -> BemoeizorgInvocation | None:
        """The invocation, verified against its invoker's membership: from local state
        (this client made it) or from the server (coordinator, auditors, the invoker).
        None when this partner may not read it."""
        s = self.session
        doc = s.state.get_doc("invocation", (network, invocation))
        if doc is not None:
            envelope = doc["envelope"]
        else:
            try:
                answer = await s.conn.get(s.path(network, f"/bemoeizorg/{invocation}"))
            except ServerRefused as exc:
                if exc.status in (403, 404):
                    return None
                raise
            envelope = answer.get("invocation") if isinstance(answer, Mapping) else None
        tv = await s.trusted(network)
        with s.verifying(network, invocation=invocation):
            if not isinstance(envelope, Mapping):
                raise MalformedError("the answer holds no invocation")
            invoker = tv.member_of_signer(envelope)
            if invoker is None:
                raise SignatureError("the invocation is not signed by a verified member")
            inv = BemoeizorgInvocation.from_envelope(envelope, [invoker.sign])
            if (inv.network, inv.invocation) != (network, invocation):
                raise ContextMismatchError("the server answered another invocation")
        return inv

    async def cosign(self, network: str, invocation: str, *, case: str | None = None) -> None:
        """Co-sign an invocation as the second person (§D.5, four eyes).  The case
        comes from the invocation when this partner can read it (coordinator, auditor,
        or the invoker's organisation with another acting user); a role-holder of
        another organisation, who may not read it, names it (``case``): without it
        the refusal is a :class:`MalformedError` whose ``details.field`` is ``case``."""
        s = self.session
        inv = await self._invocation(network, invocation)
        if inv is not None:
            if case is not None and case != inv.case:
                raise ContextMismatchError("the invocation is for another case",
                                           details={"field": "case"})
            case = inv.case
        if case is None:
            raise MalformedError("the invocation's case is needed: only the coordinator, "
                                 "auditors and the invoker read an invocation, so this "
                                 "partner cannot look it up", details={"field": "case"})
        tv = await s.trusted(network)
        me = tv.member(s.key_id)
        if me is None or not me.current or "bemoeizorg" not in me.roles_of(s.acting_user):
            raise refuse("bemoeizorg-cosigner-without-role",
                         "the co-signer does not hold the bemoeizorg role")
        own = s.state.get_doc("invocation", (network, invocation))
        if own is not None and inv is not None and inv.acting_user == s.acting_user and (
                s.key_id in signing.signers_of(own["envelope"])):
            raise refuse("bemoeizorg-same-person-cosign",
                         "four eyes means two people: the invoker cannot co-sign")
        envelope = BemoeizorgCosign(network=network, invocation=invocation, case=case,
                                    acting_user=s.acting_user,
                                    at=s.stamp()).sign(s.keys.signer)
        answer = await s.conn.post(
            s.path(network, f"/bemoeizorg/{invocation}/cosign"), {"cosign": envelope})
        with s.verifying(network, invocation=invocation):
            if answer["invocation"] != invocation:
                raise ContextMismatchError("the server acknowledged another co-sign")

    async def bemoeizorg_release(self, network: str, invocation: str) -> Released:
        """Release under this partner's own invocation (§15.2), verified exactly like a
        consent release (:meth:`_accept_release`).  The access ends ``access_hours``
        after the invocation: the purge duty (:class:`schakel.client.purge.Purges`)
        destroys it then, even before the server's purge instruction arrives."""
        s = self.session
        await self._refuse_unlisted(network)
        doc = s.state.get_doc("pending-release", (network, invocation))
        release_id = doc["release"] if doc else new_id()
        if doc is None:
            s.state.put_doc("pending-release", (network, invocation), {"release": release_id})
        answer = await s.conn.post(
            s.path(network, f"/bemoeizorg/{invocation}/release"),
            {"release": release_id})
        inv_doc = s.state.get_doc("invocation", (network, invocation))
        invoked = inv_doc["envelope"]["signed"]["at"] if inv_doc else s.stamp()
        released = await self._accept_release(network, answer, action="bemoeizorg-release",
                                              ref=invocation, release_id=release_id,
                                              basis="bemoeizorg", extra={"invoked": invoked})
        s.state.put_doc("bemoeizorg-access", (network, invocation), {
            "case": released.case, "classes": sorted(released.classes), "invoked": invoked})
        s.state.delete_doc("pending-release", (network, invocation))
        return released

    # ------------------------------------------------------------------ lists

    async def grants(self, network: str) -> list[GrantSummary]:
        """The grants the verified audit log shows this partner, oldest first: the ones
        it holds and the ones it gave (the coordinator and auditors: every grant), each
        with whether it was released (:func:`schakel.client.ledger.grants`)."""
        return ledger.grants(await self.audit.entries(network), self.session.key_id)

    async def logged_consents(self, network: str, case: str) -> list[dict[str, Any]]:
        """The consents the verified audit log shows this partner for ``case``, whoever
        recorded them (:func:`schakel.client.ledger.consents`): how a coordinator learns
        of a consent the case's owner recorded, to grant under it."""
        return ledger.consents(await self.audit.entries(network), case)

    async def invocations(self, network: str) -> list[InvocationSummary]:
        """The bemoeizorg invocations the verified audit log shows this partner, oldest
        first, each with its state (:func:`schakel.client.ledger.invocations`): every
        invocation for the coordinator and auditors, its own for an invoker, its
        co-signs for a co-signer."""
        return ledger.invocations(await self.audit.entries(network))

    async def justification(self, network: str, invocation: str) -> str:
        """The justification of an invocation, opened with this auditor's box key and
        checked against the invocation (network, id, case, auditor = self)."""
        s = self.session
        inv = await self._invocation(network, invocation)
        if inv is None:
            raise PolicyViolation("only the coordinator, auditors and the invoker read an "
                                  "invocation", details={"reason": "not-an-auditor"})
        with s.verifying(network, invocation=invocation):
            return inv.open_justification(s.key_id, s.keys.box_secret)

    async def review(self, network: str, invocation: str, *, approved: bool, note: str) -> None:
        """An auditor's review of an invocation (§D.6): the justification sealed to this
        auditor is opened first — a review of something not read is no review — and the
        note, which the server stores, is PII-guarded."""
        s = self.session
        s.refuse_pii(network, {"note": note})
        await self.justification(network, invocation)
        envelope = Review(network=network, invocation=invocation,
                          outcome="approved" if approved else "questioned", note=note,
                          acting_user=s.acting_user, at=s.stamp()).sign(s.keys.signer)
        answer = await s.conn.post(s.path(network, "/reviews"), {"review": envelope})
        with s.verifying(network, invocation=invocation):
            int(answer["audit_index"])


__all__ = ["Disclosure", "rules_of", "CONSENT_SKEW"]
