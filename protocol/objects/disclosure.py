"""Disclosure objects: consent, grants, bemoeizorg, reviews, shares, referrals
and purges (docs/protocol.md §D).

Objects are data plus structural checks.  Whether a release is allowed is
decided by ``protocol/policy.py``; who must have signed each object is listed
in the spec section and checked by whoever verifies the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, CaseKey
from schakel.protocol.envelopes import JUSTIFICATION_MAX_BYTES
from schakel.protocol.errors import ContextMismatchError
from schakel.protocol.objects.base import Part, SignedObject, Timestamp, nested

PARTIES = ("formal", "informal")
PURGE_REASONS = ("consent-revoked", "bemoeizorg-expired", "membership-removed", "retention")


# --------------------------------------------------------------------------- consent


@dataclass(frozen=True, kw_only=True)
class Grantees(Part):
    """Who a consent covers: named partners (key ids) and/or whole party types."""

    TYPE = "consent"
    DEF = "grantees"

    partners: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()

    def check(self) -> None:
        if not self.partners and not self.parties:
            raise self._fail("grantees", "must name at least one partner or party")


@dataclass(frozen=True, kw_only=True)
class Consent(SignedObject):
    """The person's consent to disclose ``classes`` of ``case`` to ``grantees`` for
    ``purpose`` between ``valid_from`` and ``valid_until``.  Signed by the case
    owner or the coordinator.  ``evidence`` is the SHA-256 of the signed consent
    form, which stays with the partner."""

    TYPE = "consent"
    MULTILINE = frozenset({"purpose"})

    network: str
    consent: str
    case: str
    classes: tuple[str, ...]
    grantees: Grantees = nested(Grantees)
    purpose: str
    valid_from: Timestamp
    valid_until: Timestamp
    evidence: str
    acting_user: str
    at: Timestamp

    def check(self) -> None:
        # Canonical timestamps compare chronologically as strings.
        if self.valid_until <= self.valid_from:
            raise self._fail("valid_until", "must be after valid_from")


@dataclass(frozen=True, kw_only=True)
class ConsentRevocation(SignedObject):
    """Withdraws consent ``consent``; signed by the case owner or the coordinator."""

    TYPE = "consent-revocation"

    network: str
    consent: str
    case: str
    acting_user: str
    at: Timestamp
    reason: str


@dataclass(frozen=True, kw_only=True)
class GrantBasis(Part):
    """The basis of a grant: always a consent."""

    TYPE = "grant"
    DEF = "basis"

    kind: str = "consent"
    consent: str


@dataclass(frozen=True, kw_only=True)
class Grant(SignedObject):
    """The coordinator grants ``grantee`` the ``classes`` of ``case`` under a consent."""

    TYPE = "grant"

    network: str
    grant: str
    case: str
    grantee: str
    classes: tuple[str, ...]
    basis: GrantBasis = nested(GrantBasis)
    acting_user: str
    at: Timestamp
    reason: str


# --------------------------------------------------------------------------- bemoeizorg


@dataclass(frozen=True, kw_only=True)
class SealedJustification(Part):
    """The written justification sealed to one auditor's box key
    (``envelopes.seal_justification``: bound to network, invocation, case and auditor)."""

    TYPE = "bemoeizorg-invocation"
    DEF = "sealed_justification"

    auditor: str
    sealed: str

    def check(self) -> None:
        self._binary("sealed")

    @classmethod
    def seal(cls, text: str, auditor_box: BoxPublicKey, *, network: str, invocation: str,
             case: str, auditor: str) -> "SealedJustification":
        """Seal ``text`` (UTF-8, 1..12000 bytes) to ``auditor`` for this invocation."""
        return cls(auditor=auditor, sealed=envelopes.seal_justification(
            auditor_box, text, network=network, invocation=invocation, case=case,
            auditor=auditor))

    def open(self, box_secret: BoxSecretKey, *, network: str, invocation: str,
             case: str) -> str:
        """The text; DecryptionError for anyone but the auditor, ContextMismatchError
        if it was sealed for another network, invocation, case or auditor."""
        return envelopes.open_justification(box_secret, self.sealed, network=network,
                                            invocation=invocation, case=case,
                                            auditor=self.auditor)


@dataclass(frozen=True, kw_only=True)
class BemoeizorgInvocation(SignedObject):
    """A bemoeizorg role-holder invokes the exception on ``case`` (oggz only),
    with a ground from the policy and a justification sealed to the auditors.
    Signed by the invoking role-holder."""

    TYPE = "bemoeizorg-invocation"

    network: str
    invocation: str
    case: str
    classes: tuple[str, ...]
    ground: str
    justification: tuple[SealedJustification, ...] = nested(SealedJustification, many=True)
    acting_user: str
    at: Timestamp

    def check(self) -> None:
        auditors = [j.auditor for j in self.justification]
        if len(set(auditors)) != len(auditors):
            raise self._fail("justification", "names an auditor twice")

    def justification_for(self, auditor: str) -> SealedJustification | None:
        for j in self.justification:
            if j.auditor == auditor:
                return j
        return None

    def open_justification(self, auditor: str, box_secret: BoxSecretKey) -> str:
        """The justification sealed to ``auditor`` in this invocation (checked against
        this invocation's network, id and case); ContextMismatchError if there is none."""
        sealed = self.justification_for(auditor)
        if sealed is None:
            raise ContextMismatchError("the invocation has no justification for this auditor",
                                       details={"field": "justification"})
        return sealed.open(box_secret, network=self.network, invocation=self.invocation,
                           case=self.case)


@dataclass(frozen=True, kw_only=True)
class BemoeizorgCosign(SignedObject):
    """A second role-holder co-signs an invocation (four eyes)."""

    TYPE = "bemoeizorg-cosign"

    network: str
    invocation: str
    case: str
    acting_user: str
    at: Timestamp


@dataclass(frozen=True, kw_only=True)
class Review(SignedObject):
    """An auditor's review of a bemoeizorg invocation **or** of an audit entry."""

    TYPE = "review"
    MULTILINE = frozenset({"note"})

    network: str
    invocation: str | None = None
    entry: int | None = None
    outcome: str
    note: str
    acting_user: str
    at: Timestamp

    def check(self) -> None:
        if (self.invocation is None) == (self.entry is None):
            raise self._fail("invocation", "exactly one of invocation and entry must be given")


# --------------------------------------------------------------------------- shares & referrals


@dataclass(frozen=True, kw_only=True)
class Share(SignedObject):
    """The coordinator shares ``case``'s anonymous layer with ``partner``: the case
    key (version ``case_key_version``) sealed to the partner's box key with
    ``envelopes.seal_case_key`` (recipient: the partner's key id)."""

    TYPE = "share"

    network: str
    case: str
    partner: str
    case_key_version: int
    sealed_case_key: str
    acting_user: str
    at: Timestamp
    reason: str

    def check(self) -> None:
        self._binary("sealed_case_key")

    def open_case_key(self, box_secret: BoxSecretKey) -> CaseKey:
        """The case key; DecryptionError for anyone but the partner,
        ContextMismatchError if it was sealed for another network, case, version or
        partner than this share names."""
        return envelopes.open_case_key(box_secret, self.sealed_case_key, network=self.network,
                                       case=self.case, version=self.case_key_version,
                                       recipient_id=self.partner)


@dataclass(frozen=True, kw_only=True)
class ReferralBasis(Part):
    """The basis of a referral: a consent or a bemoeizorg invocation."""

    TYPE = "referral"
    DEF = "basis"

    kind: str
    ref: str


@dataclass(frozen=True, kw_only=True)
class Referral(SignedObject):
    """Hands ``case`` over to ``to_network`` as ``new_case``; signed by the sending
    coordinator."""

    TYPE = "referral"

    network: str
    to_network: str
    case: str
    new_case: str
    basis: ReferralBasis = nested(ReferralBasis)
    acting_user: str
    at: Timestamp
    reason: str

    def check(self) -> None:
        if self.to_network == self.network:
            raise self._fail("to_network", "must be another network")
        if self.new_case == self.case:
            raise self._fail("new_case", "must be a fresh case id")


# --------------------------------------------------------------------------- purges


@dataclass(frozen=True, kw_only=True)
class PurgeInstruction(SignedObject):
    """Tells ``recipient`` to destroy the released keys of ``classes`` of ``case``;
    signed by the server's log key."""

    TYPE = "purge-instruction"

    network: str
    instruction: str
    case: str
    recipient: str
    classes: tuple[str, ...]
    reason: str
    ref: str | None = None
    at: Timestamp


@dataclass(frozen=True, kw_only=True)
class PurgeAck(SignedObject):
    """The recipient confirms it executed purge instruction ``instruction``."""

    TYPE = "purge-ack"

    network: str
    instruction: str
    case: str
    acting_user: str
    at: Timestamp


__all__ = [
    "PARTIES", "PURGE_REASONS", "JUSTIFICATION_MAX_BYTES",
    "Grantees", "Consent", "ConsentRevocation", "GrantBasis", "Grant",
    "SealedJustification", "BemoeizorgInvocation", "BemoeizorgCosign", "Review",
    "Share", "ReferralBasis", "Referral", "PurgeInstruction", "PurgeAck",
]
