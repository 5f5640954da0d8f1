"""Disclosure from the partner's side: consent, grants, releases, bemoeizorg, reviews
and the purge duties (docs/protocol.md §D.1–§D.10, §7, §15.2; flows 4 and 5).

The server is trusted to enforce the policy and to keep the audit log, not to tell the
truth: a release is believed only after its inclusion receipt verified against a tree
head consistent with the one this client holds (ADR 0007: ``receipt-missing`` /
``receipt-invalid``), each class key opened under its own context, and each identity
record verified against the case owner's *verified* membership.  Until every check of a
release passed, nothing of it is stored.

The client also runs :func:`schakel.protocol.policy.decide` before it asks (a grant, an
invocation) so that a request the server would refuse is refused early, with the
policy's explanation, and never becomes an audited denial by mistake.

:class:`FlowBase` holds the helpers the four flow mixins share (mapping a failed check
to the recorded :class:`~schakel.client.errors.ServerMisbehaviour`, the network's release rules,
the coordinator's keys from the verified genesis).  The mixins use only the hooks of
the issue-5 contract (``self.conn``, ``self.state``, ``self.keys``, ``self._trusted``,
``self._header``, ``self._case_key``, ``self._audit``, ``self._misbehaving``,
``self._refuse_pii``, ``self._now``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from schakel.protocol import envelopes, signing
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import BoxPublicKey, ClassKey, VerifyKey, random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, MalformedError, PolicyViolation, ProofError,
    ProtocolError, SignatureError,
)
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.objects.cases import IdentityRecord
from schakel.protocol.objects.disclosure import (
    BemoeizorgCosign, BemoeizorgInvocation, Consent, ConsentRevocation, Grant, PurgeAck,
    PurgeInstruction, Review, SealedJustification,
)
from schakel.protocol.objects.network import Policy
from schakel.protocol.policy import ConsentFacts, Grantee, Request, Rules, decide

#: How far a consent's ``valid_from`` is dated back from the moment it is recorded, so a
#: server whose clock runs a little behind the client's still finds it in force (R5).
CONSENT_SKEW = timedelta(seconds=60)
#: Most items asked per page of a feed.
PAGE = 500


def new_id() -> str:
    """A fresh object id chosen by the client: 16 random bytes, base64url."""
    return b64e(random_bytes(16))


def rules_of(policy: Mapping[str, Any], kind: str) -> Rules:
    """The release rules of a verified genesis policy in its JSON form (``Rules.of``, the
    mapping the server uses too)."""
    return Rules.of(Policy.from_json(dict(policy)), kind)


def refuse(reason: str, message: str, **details: Any) -> PolicyViolation:
    """A local, early refusal: the request was never sent (``details.early``)."""
    return PolicyViolation(f"refused before sending: {message}",
                           details={"reason": reason, "early": True, **details})


class FlowBase:
    """Helpers shared by the flow mixins (no state of their own)."""

    # ------------------------------------------------------------------ believing

    @contextmanager
    def _verifying(self, network: str, *, malformed: str = "context-mismatch",
                   **details: Any) -> Iterator[None]:
        """Run checks of what the server sent; a failure is server misbehaviour,
        recorded (``self._misbehaving``) and raised.  ``malformed`` names what an
        answer that does not even parse is (the ADR 0007 name closest to the check)."""
        from schakel.client.errors import ServerMisbehaviour
        try:
            yield
        except ServerMisbehaviour:
            raise
        except SignatureError as exc:
            raise self._misbehaving(network, "bad-signature", exc.message, **details) from None
        except DecryptionError as exc:
            raise self._misbehaving(network, "ciphertext-swapped", exc.message, **details) from None
        except ContextMismatchError as exc:
            raise self._misbehaving(network, "context-mismatch", exc.message, **details) from None
        except ProofError as exc:
            raise self._misbehaving(network, "audit-entry-rewritten", exc.message,
                                    **details) from None
        except (MalformedError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, ProtocolError) else (
                f"the server's answer is malformed ({type(exc).__name__})")
            raise self._misbehaving(network, malformed, message, **details) from None

    async def _rules(self, network: str) -> tuple[Any, Rules]:
        """The verified trust view and the release rules of its genesis policy."""
        tv = await self._trusted(network)
        return tv, rules_of(tv.policy, tv.kind)

    @staticmethod
    def _coordinator_keys(tv: Any) -> tuple[list[VerifyKey], BoxPublicKey]:
        """The network coordinator's keys from the *verified* genesis and its verified
        rotations: every signing key of the chain (feedback signed before a rotation
        stays valid) and the current box key (what signals are sealed to).  Never a
        key the server names on its own."""
        chain = tv.verified.coordinator_keys
        return [link.keys.sign for link in chain], tv.verified.coordinator.box

    def _member_of_signer(self, tv: Any, envelope: Mapping[str, Any]) -> Any:
        """The verified membership of the (first known) signer of ``envelope``; None
        when no signer is a member this client verified."""
        for keyid in signing.signers_of(envelope):
            member = tv.member(keyid)
            if member is not None:
                return member
        return None

    def _stamp(self) -> str:
        return format_timestamp(self._now())

    def _network_path(self, network: str, suffix: str = "") -> str:
        return f"/v1/networks/{network}{suffix}"

    # ------------------------------------------------------------------ local secrets

    def _drop_identity(self, network: str, case: str, classes: Iterable[str]) -> int:
        """Destroy the class keys (every version) and decrypted identity of ``classes``
        of ``case``; the number of secrets destroyed.  The case's *owner* keeps its own:
        its class keys are the source of every gated envelope and identity record of the
        case, not a copy it received (a purge concerns released copies, §D.9)."""
        dropped = 0
        try:
            if self._header(network, case).owner == self.key_id:
                return 0
        except ProtocolError:
            pass
        for cls in classes:
            for ref in self.state.secret_refs("class-key", (network, case, cls)):
                self.state.delete_secret("class-key", ref)
                dropped += 1
            if self.state.get_secret("identity", (network, case, cls)) is not None:
                self.state.delete_secret("identity", (network, case, cls))
                dropped += 1
        return dropped


class DisclosureOps(FlowBase):
    """Consent, grants, releases, bemoeizorg and reviews (a mixin of ``Partner``)."""

    # ------------------------------------------------------------------ consent

    async def record_consent(self, network: str, case: str, *, classes: Iterable[str],
                             partners: Iterable[str] = (), parties: Iterable[str] = (),
                             purpose: str, valid_days: int = 365, evidence: bytes) -> str:
        """Record the person's consent (§D.1), signed by this partner (the case owner or
        the coordinator).  ``evidence`` is the signed consent form; only its SHA-256
        leaves this partner.  ``purpose`` is visible to the server: PII-guarded."""
        if not isinstance(evidence, (bytes, bytearray)) or not evidence:
            raise MalformedError("evidence is the signed consent form (bytes)",
                                 details={"field": "evidence"})
        if valid_days < 1:
            raise MalformedError("a consent is valid for at least one day",
                                 details={"field": "valid_days"})
        self._refuse_pii(network, {"purpose": purpose})
        _, rules = await self._rules(network)
        classes = tuple(sorted(set(classes)))
        unknown = set(classes) - rules.classes
        if unknown:
            raise refuse("unknown-class", f"the network has no disclosure class {sorted(unknown)}")
        now = self._now()
        consent = new_id()
        envelope = Consent(
            network=network, consent=consent, case=case, classes=classes,
            grantees={"partners": sorted(set(partners)), "parties": sorted(set(parties))},
            purpose=purpose, valid_from=format_timestamp(now - CONSENT_SKEW),
            valid_until=format_timestamp(now + timedelta(days=valid_days)),
            evidence=b64e(hashlib.sha256(bytes(evidence)).digest()),
            acting_user=self.acting_user, at=format_timestamp(now)).sign(self.keys.signer)
        answer = await self.conn.post(self._network_path(network, "/consents"),
                                      {"consent": envelope})
        with self._verifying(network, consent=consent):
            if answer["consent"] != consent:
                raise ContextMismatchError("the server acknowledged another consent")
        self.state.put_doc("consent", (network, consent), {"envelope": envelope,
                                                           "revoked": False})
        return consent

    async def revoke_consent(self, network: str, case: str, consent: str, *,
                             reason: str) -> list[str]:
        """Revoke a consent (§D.2): later releases under it are denied at once, and the
        server sends a purge instruction to every partner that received classes under
        it.  Returns the ids of those instructions."""
        self._refuse_pii(network, {"reason": reason})
        envelope = ConsentRevocation(network=network, consent=consent, case=case,
                                     acting_user=self.acting_user, at=self._stamp(),
                                     reason=reason).sign(self.keys.signer)
        answer = await self.conn.post(
            self._network_path(network, f"/consents/{consent}/revocation"),
            {"revocation": envelope})
        with self._verifying(network, consent=consent):
            if answer["consent"] != consent:
                raise ContextMismatchError("the server acknowledged another revocation")
            ids = [str(i) for i in answer["purge_instructions"]]
        doc = self.state.get_doc("consent", (network, consent))
        if doc is not None:
            self.state.put_doc("consent", (network, consent), {**doc, "revoked": True})
        return ids

    # ------------------------------------------------------------------ grants

    def _grantee_fact(self, tv: Any, network: str, grantee: str) -> Grantee:
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
        doc = self.state.get_doc("consent", (network, consent))
        if doc is None:
            now = self._now()
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

    def _case_kind(self, network: str, case: str) -> str:
        """``case`` or ``consult`` from the verified header; ``case`` when this client
        holds no header (the server checks R1 anyway)."""
        try:
            return str(self._header(network, case).kind)
        except ProtocolError:
            return "case"

    def _shared_with(self, network: str, case: str, partner: str) -> bool:
        """Row R3's fact: a share of ``case`` with ``partner`` among the verified shares
        this client holds (doc ``share``: a core member's sync carries every share of
        the network, and the coordinator's own shares are stored when made)."""
        return bool(self.state.docs("share", (network, case, partner)))

    async def grant(self, network: str, case: str, *, consent: str, grantee: str,
                    classes: Iterable[str], reason: str) -> str:
        """Grant ``grantee`` the ``classes`` of ``case`` under ``consent`` (§D.3; the
        coordinator).  :func:`schakel.protocol.policy.decide` runs first with what this client
        verified — the grantee's membership, the case kind, the consent — and a request
        it would deny is refused here (``PolicyViolation``, ``details.reason``, the
        policy's explanation) and never sent."""
        self._refuse_pii(network, {"reason": reason})
        tv, rules = await self._rules(network)
        wanted = frozenset(classes)
        if not wanted:
            raise MalformedError("a grant names at least one class", details={"field": "classes"})
        who = self._grantee_fact(tv, network, grantee)
        request = Request(network=network, case=case, case_kind=self._case_kind(network, case),  # type: ignore[arg-type]
                          classes=wanted, grantee=who, basis="consent",
                          shared_with_grantee=self._shared_with(network, case, grantee),
                          consent=self._consent_fact(network, consent, case, wanted, who))
        decision = decide(request, rules, now=self._now())
        if not decision.allowed:
            raise refuse(decision.reason, decision.message, grantee=grantee)
        grant_id = new_id()
        envelope = Grant(network=network, grant=grant_id, case=case, grantee=grantee,
                         classes=tuple(sorted(wanted)),
                         basis={"kind": "consent", "consent": consent},
                         acting_user=self.acting_user, at=self._stamp(),
                         reason=reason).sign(self.keys.signer)
        answer = await self.conn.post(self._network_path(network, "/grants"), {"grant": envelope})
        with self._verifying(network, grant=grant_id):
            if answer["grant"] != grant_id:
                raise ContextMismatchError("the server acknowledged another grant")
        self.state.put_doc("grant", (network, grant_id), {"envelope": envelope})
        return grant_id

    # ------------------------------------------------------------------ releases

    async def release(self, network: str, grant: str) -> Any:
        """Ask for what ``grant`` gave this partner (§15.2 ``POST .../releases``) and
        believe it only after :meth:`_accept_release` verified it.

        The release id is chosen here and kept until the answer is verified and stored,
        so a retry after a lost answer (a crash, a timeout) asks again *with the same
        id*: the server decides it again (refused once the basis ended) and re-delivers
        the same envelopes, with the receipt of an audit entry of its own, instead of a
        second release (ADR 0009).  Once stored, the id is forgotten: a later call is a
        new release."""
        doc = self.state.get_doc("pending-release", (network, grant))
        release_id = doc["release"] if doc else new_id()
        if doc is None:
            self.state.put_doc("pending-release", (network, grant), {"release": release_id})
        answer = await self.conn.post(self._network_path(network, "/releases"),
                                      {"grant": grant, "release": release_id})
        released = await self._accept_release(network, answer, action="release", ref=grant,
                                              release_id=release_id)
        self.state.delete_doc("pending-release", (network, grant))
        return released

    async def _accept_release(self, network: str, answer: Any, *, action: str, ref: str,
                              release_id: str | None = None, basis: str = "consent",
                              extra: Mapping[str, Any] | None = None) -> Any:
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

        Any failure is recorded server misbehaviour and nothing is stored."""
        from schakel.client.views import Released
        receipt = answer.get("receipt") if isinstance(answer, Mapping) else None
        entry = await self._audit(network).check_receipt(receipt)
        with self._verifying(network, malformed="receipt-invalid", index=entry.index):
            if (entry.action, entry.outcome, entry.ref, entry.actor.partner) != (
                    action, "allow", ref, self.key_id) or entry.case is None:
                raise self._misbehaving(network, "receipt-invalid",
                                        "the receipt's audit entry is not this release",
                                        index=entry.index)
            if release_id is not None and answer["release"] != release_id:
                raise ContextMismatchError("the server answered another release")
        case = entry.case
        entry_classes = set(entry.classes or ())
        header = self._header(network, case)
        tv = await self._trusted(network)
        owner = tv.member(header.owner)
        if owner is None:
            raise self._misbehaving(network, "bad-signature",
                                    "the case owner is not a verified member", case=case)
        opened: dict[str, dict[str, Any]] = {}
        keys: dict[str, tuple[int, ClassKey]] = {}
        with self._verifying(network, case=case):
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
                                                version=version, recipient=self.key_id)
                key = envelopes.open_class_key(self.keys.box_secret, item["inner"], context)
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
            self.state.put_secret("class-key", (network, case, cls, str(version)), key.export())
            self.state.put_secret("identity", (network, case, cls), canonical_json(opened[cls]))
        self.state.put_doc("release", (network, release_id or str(entry.index)), {
            "case": case, "classes": sorted(opened), "basis": basis, "ref": ref,
            "index": entry.index, "at": self._stamp(), **dict(extra or {})})
        return Released(network=network, case=case, classes=opened, receipt_index=entry.index)

    def identity(self, network: str, case: str) -> dict[str, dict[str, Any]]:
        """The identity this partner holds for ``case`` (as owner or through a
        release): class -> plaintext.  Purged or expired classes are gone."""
        out: dict[str, dict[str, Any]] = {}
        for ref in self.state.secret_refs("identity", (network, case)):
            value = self.state.get_secret("identity", ref)
            if value is not None:
                out[ref[2]] = parse_json(value)
        return out

    # ------------------------------------------------------------------ bemoeizorg

    async def invoke_bemoeizorg(self, network: str, case: str, *, ground: str,
                                justification: str, classes: Iterable[str] | None = None) -> str:
        """Invoke the bemoeizorg exception (§D.4; oggz networks, formal holders of the
        ``bemoeizorg`` role).  The justification is sealed to every *current* auditor
        of the verified member list — exactly the set the server checks (R10).  Rows
        the client can judge (R1, R8, R9, R10, the ground) are checked first."""
        tv, rules = await self._rules(network)
        if rules.network_kind != "oggz":
            raise refuse("bemoeizorg-not-in-oggz",
                         "bemoeizorg exists only in oggz networks; this network needs consent")
        if not rules.bemoeizorg_enabled:
            raise refuse("bemoeizorg-disabled", "this network's policy does not allow bemoeizorg")
        me = tv.member(self.key_id)
        if me is None or not me.current or me.party != "formal" or "bemoeizorg" not in me.roles:
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
                held = self._header(network, case).classes
            except ProtocolError:
                held = None
            classes = held or sorted(rules.classes)
        wanted = tuple(sorted(set(classes)))
        unknown = set(wanted) - rules.classes
        if unknown:
            raise refuse("unknown-class", f"the network has no disclosure class {sorted(unknown)}")
        invocation = new_id()
        sealed = [SealedJustification.seal(justification, a.box, network=network,
                                           invocation=invocation, case=case, auditor=a.key_id)
                  for a in sorted(auditors, key=lambda a: a.key_id)]
        envelope = BemoeizorgInvocation(network=network, invocation=invocation, case=case,
                                        classes=wanted, ground=ground, justification=sealed,
                                        acting_user=self.acting_user,
                                        at=self._stamp()).sign(self.keys.signer)
        # Kept before sending: the release needs the invocation's time (R13, expiry).
        self.state.put_doc("invocation", (network, invocation), {"envelope": envelope})
        answer = await self.conn.post(self._network_path(network, "/bemoeizorg"),
                                      {"invocation": envelope})
        with self._verifying(network, invocation=invocation):
            if answer["invocation"] != invocation:
                raise ContextMismatchError("the server acknowledged another invocation")
        return invocation

    async def _invocation(self, network: str, invocation: str) -> BemoeizorgInvocation | None:
        """The invocation, verified against its invoker's membership: from local state
        (this client made it) or from the server (coordinator, auditors, the invoker).
        None when this partner may not read it."""
        from schakel.client.errors import ServerRefused
        doc = self.state.get_doc("invocation", (network, invocation))
        if doc is not None:
            envelope = doc["envelope"]
        else:
            try:
                answer = await self.conn.get(self._network_path(network, f"/bemoeizorg/{invocation}"))
            except ServerRefused as exc:
                if exc.status in (403, 404):
                    return None
                raise
            envelope = answer.get("invocation") if isinstance(answer, Mapping) else None
        tv = await self._trusted(network)
        with self._verifying(network, invocation=invocation):
            if not isinstance(envelope, Mapping):
                raise MalformedError("the answer holds no invocation")
            invoker = self._member_of_signer(tv, envelope)
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
        another organisation, who may not read it, names it with ``case=``."""
        inv = await self._invocation(network, invocation)
        if inv is not None:
            if case is not None and case != inv.case:
                raise ContextMismatchError("the invocation is for another case",
                                           details={"field": "case"})
            case = inv.case
        if case is None:
            raise MalformedError("this partner cannot read the invocation: pass case=",
                                 details={"field": "case"})
        tv = await self._trusted(network)
        me = tv.member(self.key_id)
        if me is None or not me.current or "bemoeizorg" not in me.roles:
            raise refuse("bemoeizorg-cosigner-without-role",
                         "the co-signer does not hold the bemoeizorg role")
        own = self.state.get_doc("invocation", (network, invocation))
        if own is not None and inv is not None and inv.acting_user == self.acting_user and (
                self.key_id in signing.signers_of(own["envelope"])):
            raise refuse("bemoeizorg-same-person-cosign",
                         "four eyes means two people: the invoker cannot co-sign")
        envelope = BemoeizorgCosign(network=network, invocation=invocation, case=case,
                                    acting_user=self.acting_user,
                                    at=self._stamp()).sign(self.keys.signer)
        answer = await self.conn.post(
            self._network_path(network, f"/bemoeizorg/{invocation}/cosign"), {"cosign": envelope})
        with self._verifying(network, invocation=invocation):
            if answer["invocation"] != invocation:
                raise ContextMismatchError("the server acknowledged another co-sign")

    async def bemoeizorg_release(self, network: str, invocation: str) -> Any:
        """Release under this partner's own invocation (§15.2), verified exactly like a
        consent release (:meth:`_accept_release`).  The access ends ``access_hours``
        after the invocation: :meth:`_flow_duties` destroys it then, even before the
        server's purge instruction arrives."""
        doc = self.state.get_doc("pending-release", (network, invocation))
        release_id = doc["release"] if doc else new_id()
        if doc is None:
            self.state.put_doc("pending-release", (network, invocation), {"release": release_id})
        answer = await self.conn.post(
            self._network_path(network, f"/bemoeizorg/{invocation}/release"),
            {"release": release_id})
        inv_doc = self.state.get_doc("invocation", (network, invocation))
        invoked = inv_doc["envelope"]["signed"]["at"] if inv_doc else self._stamp()
        released = await self._accept_release(network, answer, action="bemoeizorg-release",
                                              ref=invocation, release_id=release_id,
                                              basis="bemoeizorg", extra={"invoked": invoked})
        self.state.put_doc("bemoeizorg-access", (network, invocation), {
            "case": released.case, "classes": sorted(released.classes), "invoked": invoked})
        self.state.delete_doc("pending-release", (network, invocation))
        return released

    async def justification(self, network: str, invocation: str) -> str:
        """The justification of an invocation, opened with this auditor's box key and
        checked against the invocation (network, id, case, auditor = self)."""
        inv = await self._invocation(network, invocation)
        if inv is None:
            raise PolicyViolation("only the coordinator, auditors and the invoker read an "
                                  "invocation", details={"reason": "not-an-auditor"})
        with self._verifying(network, invocation=invocation):
            return inv.open_justification(self.key_id, self.keys.box_secret)

    async def review(self, network: str, invocation: str, *, approved: bool, note: str) -> None:
        """An auditor's review of an invocation (§D.6): the justification sealed to this
        auditor is opened first — a review of something not read is no review — and the
        note, which the server stores, is PII-guarded."""
        self._refuse_pii(network, {"note": note})
        await self.justification(network, invocation)
        envelope = Review(network=network, invocation=invocation,
                          outcome="approved" if approved else "questioned", note=note,
                          acting_user=self.acting_user, at=self._stamp()).sign(self.keys.signer)
        answer = await self.conn.post(self._network_path(network, "/reviews"), {"review": envelope})
        with self._verifying(network, invocation=invocation):
            int(answer["audit_index"])

    # ------------------------------------------------------------------ duties

    async def _flow_duties(self, network: str, report: Any, *, tv: Any = None) -> None:
        """Purge duties (§D.9, §D.10; flow 4 step 5, flow 5 step 4), run by
        ``Partner.duties`` after its own:

        * every purge instruction for this partner, verified with the genesis log key
          and addressed to this partner, is executed — the class keys (every version)
          and the decrypted identity of its classes for its case are destroyed — and
          then acknowledged (``report.purged``);
        * identity released under a bemoeizorg invocation whose ``access_hours`` (from
          the policy) have passed is destroyed even before the server's instruction
          arrives (``report.expired``).

        The feed cursor moves past an instruction once it was executed and acknowledged
        (a transport failure is retried on the next run).  An instruction that does not
        verify is never executed: it is recorded as server misbehaviour, skipped so it
        cannot block the genuine ones behind it, and the first such is raised at the end.

        ``tv``: the network as this partner verified it before (a removed partner, whom
        the server no longer answers ``GET .../{network}``); else it is fetched."""
        from schakel.client.errors import ServerMisbehaviour
        if tv is None:
            tv, rules = await self._rules(network)
        else:
            rules = rules_of(tv.policy, tv.kind)
        await self._expire_bemoeizorg(network, rules, report)
        caught: ServerMisbehaviour | None = None
        async for items in self._purge_feed(network, "mine", "purge-instructions"):
            for cursor, envelope in items:
                try:
                    await self._execute_purge(network, tv, envelope, report)
                except ServerMisbehaviour as exc:
                    caught = caught or exc
                self.state.set_cursor(network, "purge-instructions", cursor)
        if caught is not None:
            raise caught

    async def _purge_feed(self, network: str, which: str,
                          feed: str) -> AsyncIterator[list[tuple[str, Any]]]:
        """The pages of ``GET .../purge-instructions/{which}`` after the local cursor
        ``feed``, as (cursor, envelope) pairs, until an empty page.  The caller moves the
        cursor once it has dealt with an item (the envelopes are not verified yet)."""
        after = self.state.cursor(network, feed)
        while True:
            page = await self.conn.get(self._network_path(network, f"/purge-instructions/{which}"),
                                       params={"after": after, "limit": PAGE})
            with self._verifying(network):
                items = [(str(i["cursor"]), i["instruction"]) for i in page["items"]]
            if not items:
                return
            yield items
            after = items[-1][0]

    async def _execute_purge(self, network: str, tv: Any, envelope: Any, report: Any) -> None:
        from schakel.client.errors import ServerRefused
        with self._verifying(network):
            instruction = PurgeInstruction.from_envelope(envelope, [tv.server_log])
            if instruction.network != network or instruction.recipient != self.key_id:
                raise ContextMismatchError("a purge instruction for another network or partner")
        done = self.state.get_doc("purge", (network, instruction.instruction))
        if done is None or not done.get("acked"):
            self._drop_identity(network, instruction.case, instruction.classes)
            self._forget_releases(network, instruction.case, instruction.classes)
            self.state.put_doc("purge", (network, instruction.instruction), {
                "case": instruction.case, "classes": list(instruction.classes),
                "reason": instruction.reason, "acked": False})
            ack = PurgeAck(network=network, instruction=instruction.instruction,
                           case=instruction.case, acting_user=self.acting_user,
                           at=self._stamp()).sign(self.keys.signer)
            try:
                answer = await self.conn.post(self._network_path(network, "/purge-acks"),
                                              {"ack": ack})
                with self._verifying(network):
                    if answer["instruction"] != instruction.instruction:
                        raise ContextMismatchError("the server acknowledged another instruction")
            except ServerRefused as exc:
                # One ack per instruction, and only the recipient may send it: a conflict
                # means this partner's earlier ack was stored and its answer lost.
                if exc.code != "conflict":
                    raise
            self.state.put_doc("purge", (network, instruction.instruction), {
                "case": instruction.case, "classes": list(instruction.classes),
                "reason": instruction.reason, "acked": True})
            report.purged.append(instruction.instruction)

    async def _expire_bemoeizorg(self, network: str, rules: Rules, report: Any) -> None:
        """Destroy identity released under an invocation whose access ended (R13).
        Classes this partner also holds on another basis — as the case's owner or
        through a consent release — are kept."""
        now = self._now()
        for ref, doc in self.state.docs("bemoeizorg-access", (network,)):
            invoked = parse_timestamp(doc["invoked"])
            if now < invoked + timedelta(hours=rules.access_hours):
                continue
            case = doc["case"]
            keep = self._held_otherwise(network, case, ref[-1])
            self._drop_identity(network, case, [c for c in doc["classes"] if c not in keep])
            self.state.delete_doc("bemoeizorg-access", ref)
            report.expired.append(ref[-1])

    def _forget_releases(self, network: str, case: str, classes: Iterable[str]) -> None:
        """Purged classes no longer count as held through their earlier releases (so a
        later bemoeizorg expiry does not keep them on that account)."""
        gone = set(classes)
        for ref, doc in self.state.docs("release", (network,)):
            if doc.get("case") != case:
                continue
            left = [c for c in doc.get("classes", ()) if c not in gone]
            if left:
                self.state.put_doc("release", ref, {**doc, "classes": left})
            else:
                self.state.delete_doc("release", ref)

    def _held_otherwise(self, network: str, case: str, invocation: str) -> set[str]:
        keep: set[str] = set()
        for _, doc in self.state.docs("release", (network,)):
            if doc.get("case") == case and not (doc.get("basis") == "bemoeizorg"
                                                and doc.get("ref") == invocation):
                if doc.get("basis") == "consent":
                    keep |= set(doc.get("classes", ()))
        return keep


def _share_partner(value: Mapping[str, Any]) -> str | None:
    signed = value.get("signed") or (value.get("envelope") or {}).get("signed") or {}
    partner = signed.get("partner") if isinstance(signed, Mapping) else None
    return partner if isinstance(partner, str) else None


__all__ = ["DisclosureOps", "FlowBase", "rules_of", "refuse", "new_id", "CONSENT_SKEW"]
