"""The protocol-level demo behind ``schakel demo`` (issue 2 scope).

It plays the report's neighbourhood network "Buurtnetwerk 55+ Soesterkwartier"
with real keys and real cryptography in one process, and narrates what each
party can and cannot see.  Every step is a check: the demo exits non-zero if
any of them does not hold.  The server's part (storing ciphertext, removing
gate seals after the audit entry, signing tree heads) is played by the same
protocol functions the server calls; the networked demo against `schakel serve`
arrives with the client library (issue 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from keys import (
    Fingerprint, PartnerKeys, fingerprint, issue_membership, make_genesis, make_key_bundle,
    new_network_id, verify_genesis, verify_key_bundle, verify_membership,
)
from protocol import envelopes, merkle, pii, signing
from protocol.canonical import canonical_json
from protocol.crypto import BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey, Signer, random_bytes
from protocol.encoding import b64e
from protocol.errors import DecryptionError, PolicyViolation, ProofError, ProtocolError
from protocol.objects.audit import AuditActor, AuditEntry, TreeHead, new_salt
from protocol.objects.network import default_policy
from protocol.policy import ConsentFacts, Grantee, Request, Rules, decide

COVENANT = "Convenant Buurtnetwerk 55+ Soesterkwartier: wij delen alleen wat nodig is."


class DemoFailure(Exception):
    """A check of the demo did not hold."""


@dataclass
class Narrator:
    """Prints the story and counts the checks."""

    say: Callable[[str], None]
    checks: int = 0
    failures: list[str] = field(default_factory=list)

    def step(self, title: str) -> None:
        self.say("")
        self.say(f"== {title}")

    def tell(self, who: str, text: str) -> None:
        self.say(f"   [{who}] {text}")

    def check(self, ok: bool, what: str) -> None:
        self.checks += 1
        self.say(f"   {'ok ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)

    def holds(self, action: Callable[[], Any], what: str) -> None:
        """Run ``action``; it must complete without a protocol error."""
        try:
            action()
        except ProtocolError as exc:
            self.check(False, f"{what} ({exc.code}: {exc.message})")
            return
        self.check(True, what)

    def refused(self, action: Callable[[], Any], error: type[ProtocolError], what: str) -> ProtocolError | None:
        """Run ``action``; it must be refused with ``error``."""
        try:
            action()
        except error as exc:
            self.check(True, f"{what} -> refused ({exc.code}: {exc.message})")
            return exc
        self.check(False, f"{what} -> was NOT refused")
        return None


@dataclass
class Party:
    name: str
    keys: PartnerKeys
    ring: str
    party: str
    roles: tuple[str, ...] = ()


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(say: Callable[[str], None], *, now: datetime | None = None) -> Narrator:
    """Play the scenario; returns the narrator with its check results."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    n = Narrator(say)

    # ---------------------------------------------------------------- onboarding
    n.step("1. Onboarding: the coordinator founds the network, partners sign the covenant")
    coordinator = Party("Welzijn Amersfoort (regie)", PartnerKeys.generate(), "core", "formal", ("coordinator",))
    partners = [
        Party("Maatschappelijk werk", PartnerKeys.generate(), "core", "formal", ("professional-secrecy",)),
        Party("Thuiszorg", PartnerKeys.generate(), "core", "formal"),
        Party("MEE", PartnerKeys.generate(), "core", "formal"),
        Party("Kerkelijk bezoekwerk", PartnerKeys.generate(), "core", "informal"),
        Party("Vrijwilligerscentrale", PartnerKeys.generate(), "core", "informal"),
        Party("Woningcorporatie", PartnerKeys.generate(), "shell", "formal"),
    ]
    social, _home, _mee, church, _volunteers, housing = partners
    server_log, server_gate = Signer.generate(), BoxSecretKey.generate()
    network = new_network_id()
    policy = default_policy("neighbourhood")
    genesis = make_genesis(coordinator.keys, network=network, name="Buurtnetwerk 55+ Soesterkwartier",
                           kind="neighbourhood", created=now, server_log=server_log.verify_key,
                           server_gate=server_gate.public_key,
                           covenant=hashlib.sha256(COVENANT.encode()).digest(), policy=policy.to_json())
    anchor = fingerprint(coordinator.keys.signer.verify_key)
    n.tell(coordinator.name, f"reads its fingerprint aloud: {anchor}")
    verified_genesis = verify_genesis(genesis, Fingerprint.parse(str(anchor)))
    n.check(verified_genesis.network == network, "each partner's client verifies the genesis against the spoken fingerprint")
    n.refused(lambda: verify_genesis(genesis, fingerprint(social.keys.signer.verify_key)),
              ProtocolError, "a genesis checked against the wrong fingerprint")

    memberships: dict[str, dict[str, Any]] = {}
    for serial, p in enumerate([coordinator, *partners], start=1):
        bundle = make_key_bundle(p.keys, name=p.name, created=now)
        verify_key_bundle(bundle, expected=fingerprint(p.keys.signer.verify_key))
        memberships[p.name] = issue_membership(
            coordinator.keys, network=network, kind="neighbourhood", member=p.keys.public, name=p.name,
            ring=p.ring, party=p.party, roles=p.roles, serial=serial, valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=365))
    members = {p.name: verify_membership(memberships[p.name], verified_genesis, now=now)
               for p in [coordinator, *partners]}
    n.check(all(m.network == network for m in members.values()),
            f"{len(members)} memberships verified up to the coordinator's key")
    for p in partners:
        n.tell(p.name, f"{p.ring} partner, {p.party}{', roles: ' + ', '.join(p.roles) if p.roles else ''}")

    # ---------------------------------------------------------------- epoch keys
    n.step("2. The coordinator hands the epoch key to the core partners (sealed to each)")
    epoch_key, match_key = EpochKey.generate(), MatchKey.generate()
    core = [p for p in [coordinator, *partners] if p.ring == "core"]
    sealed = {p.name: envelopes.seal_epoch_keys(p.keys.box_secret.public_key, epoch_key, match_key,
                                                network=network, epoch=1, recipient_id=p.keys.key_id)
              for p in core}
    opened = envelopes.open_epoch_keys(church.keys.box_secret, sealed[church.name], network=network,
                                       epoch=1, recipient_id=church.keys.key_id)
    n.check(opened == (epoch_key, match_key), "the church visiting service opens its epoch keys")
    n.refused(lambda: envelopes.open_epoch_keys(housing.keys.box_secret, sealed[church.name],
                                                network=network, epoch=1, recipient_id=housing.keys.key_id),
              DecryptionError, "the housing corporation (shell) opens the church's epoch-key envelope")

    # ---------------------------------------------------------------- a case
    n.step("3. Social work brings in an isolated elderly man (with his consent)")
    case = b64e(random_bytes(16))
    draft = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
             "domains": ["loneliness", "self-care"], "severity": "medium", "care_status": "avoids-care",
             "source": "partner", "complex": False,
             "summary": "Meneer woont alleen sinds zijn vrouw overleed; dochter belt 06-12345678."}
    violation = n.refused(lambda: pii.check_anonymous(draft), PolicyViolation,
                          "the PII guard checks the anonymous layer before it is encrypted")
    if violation is not None:
        n.tell(social.name, "removes the phone number from the anonymous text (it belongs in 'contact')")
    draft["summary"] = "Meneer woont alleen sinds zijn vrouw overleed, komt de deur nauwelijks uit."
    pii.check_anonymous(draft)
    case_key = CaseKey.generate()
    wrapped = envelopes.wrap_case_key(epoch_key, case_key, network=network, case=case, epoch=1, version=1)
    event_id = b64e(random_bytes(16))
    event_ct = envelopes.encrypt_json(case_key, draft, envelopes.event_context(network, case, event_id, version=1))
    identity = {"name": {"given_names": "Hendrik", "family_name": "de Vries"},
                "address": {"street": "Soesterweg", "house_number": "12", "postcode": "3812 AB",
                            "city": "Amersfoort"},
                "official": {"bsn": "111222333", "date_of_birth": "1946-05-04"}}
    class_keys = {cls: ClassKey.generate() for cls in identity}
    sealed_identity = {cls: envelopes.encrypt_json(class_keys[cls], value,
                                                   envelopes.identity_context(network, case, cls, version=1))
                       for cls, value in identity.items()}
    gated = {(p.keys.key_id, cls): envelopes.make_gated(
        server_gate.public_key, p.keys.box_secret.public_key, class_keys[cls],
        envelopes.GateContext(network=network, case=case, cls=cls, version=1, recipient=p.keys.key_id))
        for p in core for cls in identity}
    n.tell("server", f"stores {len(event_ct)} characters of ciphertext, {len(sealed_identity)} sealed "
                     f"identity classes and {len(gated)} gated envelopes; it can read none of them")

    # ---------------------------------------------------------------- what members see
    n.step("4. The core partners read the anonymous layer; nobody but the owner reads identity")
    church_case_key = envelopes.unwrap_case_key(opened[0], wrapped, network=network, case=case, epoch=1, version=1)
    seen = envelopes.decrypt_json(church_case_key, event_ct,
                                  envelopes.event_context(network, case, event_id, version=1))
    n.tell(church.name, f"reads: age {seen['age_band']}, {seen['neighbourhood']}, "
                        f"{', '.join(seen['domains'])}, {seen['care_status']}")
    n.check(seen == draft, "the church visiting service reads the anonymous layer")
    n.refused(lambda: envelopes.open_class_key(church.keys.box_secret, gated[(church.keys.key_id, "name")],
                                               envelopes.GateContext(network=network, case=case, cls="name",
                                                                     version=1, recipient=church.keys.key_id)),
              DecryptionError, "the church opens its 'name' envelope without the server")
    n.check(housing.name not in sealed,
            "the housing corporation (shell, no share) holds no epoch key, so it cannot unwrap the case key")
    moved = envelopes.event_context(network, b64e(random_bytes(16)), event_id, version=1)
    n.refused(lambda: envelopes.decrypt_json(church_case_key, event_ct, moved), DecryptionError,
              "a server that moves the event to another case")

    # ---------------------------------------------------------------- consent and release
    n.step("5. Consent: he agrees that partners may know his name, address and BSN")
    rules = Rules(network_kind="neighbourhood")
    consent = ConsentFacts(consent=b64e(random_bytes(16)), case=case, classes=frozenset({"name", "address", "official"}),
                           partners=frozenset(), parties=frozenset({"formal", "informal"}),
                           valid_from=now - timedelta(minutes=1), valid_until=now + timedelta(days=90))
    church_member = members[church.name]
    grantee = Grantee(partner=church.keys.key_id, network=network, ring=church_member.ring,
                      party=church_member.party, roles=frozenset(church_member.roles))
    log = merkle.MerkleLog()
    entries: list[AuditEntry] = []

    def audit(outcome: str, classes: tuple[str, ...], reason: str) -> AuditEntry:
        entry = AuditEntry(network=network, index=log.size, salt=new_salt(), time=_ts(now),
                           actor=AuditActor(partner=coordinator.keys.key_id, acting_user="coordinator-1",
                                            role="coordinator", organisation=coordinator.name),
                           case=case, action="release" if outcome == "allow" else "deny",
                           classes=classes, basis="consent", ref=consent.consent, outcome=outcome,
                           reason=reason, review_required=False, emergency=False)
        log.append(merkle.leaf_hash(entry.commitment))
        entries.append(entry)
        return entry

    for classes in (("name", "address"), ("official",)):
        decision = decide(Request(network=network, case=case, case_kind="case", classes=frozenset(classes),
                                  grantee=grantee, basis="consent", consent=consent), rules, now=now)
        entry = audit("allow" if decision.allowed else "deny", classes, decision.reason)
        n.tell("server", f"{'/'.join(classes)} for {church.name}: {decision.reason} "
                         f"(audit entry {entry.index} written first)")
        if not decision.allowed:
            n.check(decision.reason == "informal-class-not-allowed",
                    "'official' (BSN, date of birth) is refused to an informal party even with consent, "
                    "and the refusal is audited")
            continue
        for cls in classes:
            ctx = envelopes.GateContext(network=network, case=case, cls=cls, version=1, recipient=church.keys.key_id)
            inner = envelopes.open_gate(server_gate, gated[(church.keys.key_id, cls)], ctx)
            key = envelopes.open_class_key(church.keys.box_secret, inner, ctx)
            value = envelopes.decrypt_json(key, sealed_identity[cls],
                                           envelopes.identity_context(network, case, cls, version=1))
            n.check(value == identity[cls], f"the church now reads '{cls}' (released through the gate)")
        n.tell(church.name, f"knows: {identity['name']['given_names']} {identity['name']['family_name']}, "
                            f"{identity['address']['street']} {identity['address']['house_number']}")
    n.refused(lambda: decide(Request(network=network, case=case, case_kind="case", classes=frozenset({"name"}),
                                     grantee=grantee, basis="bemoeizorg"), rules, now=now).require(),
              PolicyViolation, "bemoeizorg in a neighbourhood network")

    # ---------------------------------------------------------------- audit
    n.step("6. The auditor verifies the log: every release and refusal, provably")
    head = TreeHead(network=network, size=log.size, root=b64e(log.root()), time=_ts(now))
    signed_head = head.sign(server_log)
    leaves = [e.commitment for e in entries]

    def verify_all() -> None:
        TreeHead.from_envelope(signed_head, [server_log.verify_key])
        for i, entry in enumerate(entries):
            merkle.verify_inclusion(entry.commitment, i, log.size, log.inclusion_proof(i), log.root())

    n.holds(verify_all, f"signed tree head of {log.size} entries verifies; every entry has an inclusion proof")
    n.check(all("Hendrik" not in canonical_json(e.to_json()).decode() for e in entries),
            "no audit entry contains identity")
    audit("allow", ("name",), "allowed")
    n.holds(lambda: merkle.verify_consistency(head.size, log.size, merkle.root_hash(leaves), log.root(),
                                              log.consistency_proof(head.size)),
            "the log grew, and the new head is consistent with the old one")
    forged = list(leaves)
    forged[0] = hashlib.sha256(b"rewritten").digest()
    n.refused(lambda: merkle.verify_inclusion(forged[0], 0, head.size, merkle.inclusion_proof(forged, 0),
                                              merkle.root_hash(leaves)),
              ProofError, "a rewritten audit entry")
    n.refused(lambda: signing.verify({**signed_head, "signed": {**signed_head["signed"], "size": 1}},
                                     "tree-head", [server_log.verify_key]),
              ProtocolError, "a tree head whose size was changed after signing")
    return n


__all__ = ["run", "DemoFailure"]
