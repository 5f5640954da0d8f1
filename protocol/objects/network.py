"""Network objects: trust anchor, policy, membership and key distribution
(docs/protocol.md §N).

Every class here is a frozen, keyword-only dataclass built on
:class:`~schakel.protocol.objects.base.WireObject` (or :class:`~schakel.protocol.objects.base.Part`
for nested parts): it validates against ``protocol/schemas/<type>.json`` when built
(style.md: an invalid object cannot exist).  ``keys/`` builds and parses the
identity objects (genesis, membership, revocation, rotation, key bundle) with these
classes and adds only what is about trust (fingerprints, key chains, validity at
``now``).

Release decisions are not made here: objects are data plus structural checks;
``protocol/policy.py`` decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schakel.protocol import envelopes, signing
from schakel.protocol.crypto import (
    KEY_BYTES, BoxPublicKey, BoxSecretKey, EpochKey, MatchKey, VerifyKey,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import ContextMismatchError, MalformedError, SignatureError
from schakel.protocol.note import COSIGNATURE_V1, NoteVerifier, parse_vkey
from schakel.protocol.objects.base import (
    FrozenMap, Part, SignedObject, Timestamp, WireObject, alias, invalid, nested, thaw,
)

KINDS = ("oggz", "neighbourhood")


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, kw_only=True)
class PublicKeys(Part):
    """``{sign, box}``: an Ed25519 signing key and an X25519 box key (common.json)."""

    TYPE = "common"
    DEF = "public_keys"

    sign: str
    box: str

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey.from_b64(self.sign, "sign")

    @property
    def box_public_key(self) -> BoxPublicKey:
        return BoxPublicKey.from_b64(self.box, "box")

    @property
    def key_id(self) -> str:
        """The key id of ``sign``: how the holder is named on the wire."""
        return self.verify_key.key_id

    @classmethod
    def of(cls, sign: VerifyKey, box: BoxPublicKey) -> "PublicKeys":
        return cls(sign=sign.b64(), box=box.b64())


@dataclass(frozen=True, kw_only=True)
class ServerKeys(Part):
    """``{log, gate}``: the server's Ed25519 log key and X25519 gate key."""

    TYPE = "network-genesis"
    DEF = "server_keys"

    log: str
    gate: str

    @property
    def log_key(self) -> VerifyKey:
        return VerifyKey.from_b64(self.log, "log")

    @property
    def gate_key(self) -> BoxPublicKey:
        return BoxPublicKey.from_b64(self.gate, "gate")


# --------------------------------------------------------------------------- policy

DEFAULT_CLASSES: Mapping[str, tuple[str, ...]] = FrozenMap({
    "name": ("given_names", "family_name"),
    "address": ("street", "house_number", "postcode", "city"),
    "contact": ("phone", "email"),
    "official": ("bsn", "date_of_birth"),
    "care": ("gp", "carers", "contacts"),
})
DEFAULT_INFORMAL_CLASSES = ("name", "address", "contact")
DEFAULT_RESTRICTED: Mapping[str, str] = FrozenMap({"official": "professional-secrecy"})
#: The default grounds of the bemoeizorg exception (protocol.md §N.2), in the report's
#: words (§4.2.1: "vervuiling, ernstige zelfverwaarlozing, overlast, huiselijk geweld") and,
#: for the last two, the meldcode's ("Meldcode huiselijk geweld en kindermishandeling"):
#: ernstige zelfverwaarlozing, woningvervuiling, gevaar voor zichzelf, gevaar voor anderen,
#: overlast, huiselijk geweld, kindermishandeling.
DEFAULT_BEMOEIZORG_GROUNDS = ("severe-self-neglect", "housing-pollution", "danger-to-self",
                              "danger-to-others", "nuisance", "domestic-violence", "child-abuse")


@dataclass(frozen=True, kw_only=True)
class ClassFields(Part):
    """The identity fields one disclosure class seals."""

    TYPE = "policy"
    DEF = "class_fields"

    fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class BemoeizorgSettings(Part):
    """The bemoeizorg exception's settings (design §4.5); only oggz networks enable it."""

    TYPE = "policy"
    DEF = "bemoeizorg"

    enabled: bool
    grounds: tuple[str, ...]
    four_eyes: bool
    max_per_user_per_day: int
    access_hours: int

    def check(self) -> None:
        if self.enabled and not self.grounds:
            raise self._fail("grounds", "an enabled bemoeizorg exception needs at least one ground")


@dataclass(frozen=True, kw_only=True)
class RetentionSettings(Part):
    """Retention periods in days: identity and anonymous layer after a case closes,
    audit entries after they were written."""

    TYPE = "policy"
    DEF = "retention"

    identity_days: int
    anonymous_days: int
    audit_days: int

    def check(self) -> None:
        if self.anonymous_days < self.identity_days:
            raise self._fail("anonymous_days", "must not be shorter than identity_days "
                             "(identity is shredded first)")


@dataclass(frozen=True, kw_only=True)
class BlindIndexSettings(Part):
    """Argon2id cost and token length of blind-index tokens (design §4.8)."""

    TYPE = "policy"
    DEF = "blind_index"

    opslimit: int
    memlimit: int
    token_bytes: int


@dataclass(frozen=True, kw_only=True)
class WitnessRef(Part):
    """One witness of the network's logs: its C2SP verifier key and where the server
    submits checkpoints to it (protocol.md §17.5)."""

    TYPE = "policy"
    DEF = "witness"

    vkey: str
    url: str

    def check(self) -> None:
        try:
            verifier = parse_vkey(self.vkey)
        except MalformedError:
            raise self._fail("vkey", "is not a C2SP verifier key") from None
        if verifier.sig_type != COSIGNATURE_V1:
            raise self._fail("vkey", "is not a v1 cosignature key (signature type 0x04)")

    @property
    def verifier(self) -> NoteVerifier:
        return parse_vkey(self.vkey)


@dataclass(frozen=True, kw_only=True)
class WitnessSettings(Part):
    """The witnesses that cosign the network's checkpoints and the quorum a client requires,
    each cosignature at most ``max_age_hours`` old (protocol.md §17.5)."""

    TYPE = "policy"
    DEF = "witnesses"

    quorum: int
    max_age_hours: int
    witnesses: tuple[WitnessRef, ...] = nested(WitnessRef, many=True)

    def check(self) -> None:
        if not self.witnesses:
            raise self._fail("witnesses", "names no witness")
        if self.quorum > len(self.witnesses):
            raise self._fail("quorum", "is more than the witnesses named")
        names = [parse_vkey(w.vkey).name for w in self.witnesses]
        keys = [parse_vkey(w.vkey).key for w in self.witnesses]
        if len(set(names)) != len(names) or len(set(keys)) != len(keys):
            raise self._fail("witnesses", "names a witness, or a witness key, twice")

    @property
    def verifiers(self) -> tuple[NoteVerifier, ...]:
        return tuple(w.verifier for w in self.witnesses)


@dataclass(frozen=True, kw_only=True)
class Policy(WireObject):
    """A network's policy (not signed on its own: embedded in genesis and network-policy)."""

    TYPE = "policy"

    classes: Mapping[str, ClassFields]
    informal_classes: tuple[str, ...]
    restricted: Mapping[str, str]
    bemoeizorg: BemoeizorgSettings = nested(BemoeizorgSettings)
    anonymous_signals: bool
    intake_rate_per_hour: int
    retention: RetentionSettings = nested(RetentionSettings)
    formal_action_reason: bool
    blind_index: BlindIndexSettings = nested(BlindIndexSettings)
    #: Words and phrases the PII guard never reports as a name or street address
    #: (protocol.md §N.2, §8.2); None (absent on the wire) means none.
    pii_allow: tuple[str, ...] | None = None
    #: The witnesses whose cosignatures a client requires on the network's checkpoints
    #: (protocol.md §17.5); None (absent on the wire) means none are required.
    witnesses: WitnessSettings | None = nested(WitnessSettings, default=None)

    def _normalise(self) -> None:
        classes = FrozenMap(
            (name, v if isinstance(v, ClassFields) else ClassFields.from_json(thaw(v)))
            for name, v in self.classes.items())
        object.__setattr__(self, "classes", classes)

    def check(self) -> None:
        names = set(self.classes)
        if not set(self.informal_classes) <= names:
            raise self._fail("informal_classes", "names a class the policy does not define")
        if not set(self.restricted) <= names:
            raise self._fail("restricted", "names a class the policy does not define")
        seen: set[str] = set()
        for name, spec in self.classes.items():
            if seen & set(spec.fields):
                raise self._fail(f"classes.{name}.fields", "a field belongs to one class only")
            seen |= set(spec.fields)
        folded: set[str] = set()
        for i, entry in enumerate(self.pii_allow or ()):
            problem = allow_entry_problem(entry)
            if problem is None and entry.casefold() in folded:
                problem = "repeats an earlier entry (compared ignoring case)"
            if problem is not None:
                raise self._fail(f"pii_allow[{i}]", problem)
            folded.add(entry.casefold())

    @property
    def allow_list(self) -> tuple[str, ...]:
        """``pii_allow``, or ``()`` when the policy has none."""
        return self.pii_allow or ()

    def fields_of(self, class_name: str) -> tuple[str, ...]:
        """The identity fields of ``class_name``; KeyError for an unknown class."""
        return self.classes[class_name].fields

    def class_of_field(self, field_name: str) -> str | None:
        """The class that seals ``field_name``, or None if no class does."""
        for name, spec in self.classes.items():
            if field_name in spec.fields:
                return name
        return None


#: Bounds of a policy's ``pii_allow`` (protocol.md §N.2).
MAX_ALLOW_ENTRIES, MAX_ALLOW_CHARS = 500, 80


def allow_entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be on a ``pii_allow`` list (protocol.md §N.2), or None: at
    most 80 printable characters (no control, format or separator character but the
    space), no space at either end or two in a row, and at least one letter."""
    if not 1 <= len(entry) <= MAX_ALLOW_CHARS:
        return f"must be 1..{MAX_ALLOW_CHARS} characters"
    if not entry.isprintable():
        return "may hold only printable characters and plain spaces"
    if entry != entry.strip(" ") or "  " in entry:
        return "no space at either end and no two spaces in a row"
    if not any(c.isalpha() for c in entry):
        return "needs at least one letter"
    return None


def default_policy(kind: str) -> Policy:
    """The default policy of a network of ``kind`` (design §3 and §5).

    oggz: bemoeizorg enabled with the default grounds and four eyes;
    neighbourhood: bemoeizorg disabled (consent is decisive).  Both accept
    anonymous signals.  Retention: identity 365 days and anonymous layer 730
    days after a case closes; audit entries 1826 days (≈ 5 years, the Dutch
    norm for access logs).
    """
    if kind not in KINDS:
        raise MalformedError(f"unknown network kind; expected one of {list(KINDS)}",
                             details={"field": "kind"})
    oggz = kind == "oggz"
    return Policy(
        classes={name: ClassFields(fields=fields) for name, fields in DEFAULT_CLASSES.items()},
        informal_classes=DEFAULT_INFORMAL_CLASSES,
        restricted=DEFAULT_RESTRICTED,
        bemoeizorg=BemoeizorgSettings(
            enabled=oggz, grounds=DEFAULT_BEMOEIZORG_GROUNDS if oggz else (), four_eyes=True,
            max_per_user_per_day=3, access_hours=72),
        anonymous_signals=True,
        intake_rate_per_hour=60,
        retention=RetentionSettings(identity_days=365, anonymous_days=730, audit_days=1826),
        formal_action_reason=True,
        blind_index=BlindIndexSettings(opslimit=3, memlimit=64 * 1024 * 1024, token_bytes=4),
    )


def check_policy_for_kind(kind: str, policy: Policy, *, where: str = "network-genesis") -> None:
    """A policy may enable bemoeizorg only in an oggz network (design §1, §5)."""
    if policy.bemoeizorg.enabled and kind != "oggz":
        raise invalid(where, "policy.bemoeizorg.enabled",
                      "the bemoeizorg exception exists only in oggz networks")


# --------------------------------------------------------------------------- genesis & policy


@dataclass(frozen=True, kw_only=True)
class NetworkGenesis(SignedObject):
    """The trust anchor of a network, signed by the coordinator's signing key."""

    TYPE = "network-genesis"

    network: str
    name: str
    kind: str
    created: Timestamp
    coordinator: PublicKeys = nested(PublicKeys)
    server: ServerKeys = nested(ServerKeys)
    covenant: str
    policy: Policy = nested(Policy)

    def check(self) -> None:
        check_policy_for_kind(self.kind, self.policy)


class PolicyAnchor(Protocol):
    """What a policy update is checked against: a genesis, verified or not."""

    @property
    def network(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def policy(self) -> Policy: ...


#: The parts of a policy that stay as the genesis set them (protocol.md §N.3): every case's
#: sealed identity, gated envelopes and blind-index tokens were made under them.
FIXED_POLICY_PARTS = ("classes", "blind_index")


@dataclass(frozen=True, kw_only=True)
class NetworkPolicy(SignedObject):
    """A new policy version (≥ 2; the genesis holds version 1), signed by the coordinator."""

    TYPE = "network-policy"

    network: str
    version: int
    issued: Timestamp
    policy: Policy = nested(Policy)

    def check_for(self, genesis: PolicyAnchor) -> None:
        """Checks needing the genesis: same network, bemoeizorg only in oggz, and the
        :data:`FIXED_POLICY_PARTS` unchanged."""
        if self.network != genesis.network:
            raise ContextMismatchError("network-policy belongs to another network",
                                       details={"field": "network"})
        check_policy_for_kind(genesis.kind, self.policy, where=self.TYPE)
        for part in FIXED_POLICY_PARTS:
            if getattr(self.policy, part) != getattr(genesis.policy, part):
                raise invalid(self.TYPE, f"policy.{part}",
                              "must stay as the genesis set it: cases are sealed and "
                              "indexed under it")


# --------------------------------------------------------------------------- membership

#: Bounds of a membership's ``on_behalf_of`` and ``users`` (protocol.md §N.4).
MAX_ON_BEHALF_OF, MAX_USERS = 32, 2000
#: The parties in order of what they may receive: a listed user's party never exceeds
#: its organisation's (protocol.md §N.4, "Users").
PARTIES = ("informal", "formal")
#: Roles that act only through a formal party (design §5: ``professional-secrecy`` for
#: restricted classes, ``bemoeizorg`` for the exception; protocol.md §6 R7, R9): an
#: informal acting user of a member holding one does not hold it.
FORMAL_ONLY_ROLES = frozenset({"bemoeizorg", "professional-secrecy"})


@dataclass(frozen=True, kw_only=True)
class MemberUser(Part):
    """One acting user of a member organisation and that user's party (``formal``: a
    paid professional; ``informal``: a volunteer)."""

    TYPE = "membership"
    DEF = "user"

    user: str
    party: str


@dataclass(frozen=True, kw_only=True)
class Membership(SignedObject):
    """A partner's certificate in one network, signed by the coordinator.

    ``on_behalf_of`` names the organisations the member represents in the network (a
    volunteer centre's professional for the volunteer organisations it speaks for);
    ``users`` lists the acting users that may act for the member, each with its party
    (one organisation with paid professionals and volunteers).  Both are optional; a
    membership without ``users`` admits any acting user with the member's ``party``."""

    TYPE = "membership"

    network: str
    member: str
    name: str
    #: JSON ``sign``/``box``: ``sign`` would shadow :meth:`SignedObject.sign`.
    sign_key: str = alias("sign")
    box_key: str = alias("box")
    ring: str
    party: str
    roles: tuple[str, ...]
    serial: int
    valid_from: Timestamp
    valid_until: Timestamp
    on_behalf_of: tuple[str, ...] | None = None
    users: tuple[MemberUser, ...] | None = nested(MemberUser, many=True, default=None)

    def check(self) -> None:
        if self.keys.key_id != self.member:
            raise self._fail("member", "must be the key id of sign")
        if self.valid_until <= self.valid_from:
            raise self._fail("valid_until", "must be after valid_from")
        folded = [name.casefold() for name in self.on_behalf_of or ()]
        if len(set(folded)) != len(folded):
            raise self._fail("on_behalf_of", "names an organisation twice (compared ignoring "
                                             "case)")
        users = [u.user for u in self.users or ()]
        if len(set(users)) != len(users):
            raise self._fail("users", "names an acting user twice")
        for i, u in enumerate(self.users or ()):
            if PARTIES.index(u.party) > PARTIES.index(self.party):
                raise self._fail(f"users[{i}].party", "a user's party cannot exceed the "
                                                      "member's party")

    @property
    def keys(self) -> PublicKeys:
        return PublicKeys(sign=self.sign_key, box=self.box_key)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def user_parties(self) -> Mapping[str, str] | None:
        """``users`` as acting user -> party, or None when the membership lists none."""
        if self.users is None:
            return None
        return FrozenMap((u.user, u.party) for u in self.users)


def acting_party(party: str, users: Mapping[str, str] | None, acting_user: str) -> str | None:
    """The party an acting user of a member acts in (protocol.md §N.4, "Users"): the
    member's ``party`` when its membership lists no users; the listed user's party
    (never above the member's); None for a user the list does not name -- who is
    refused."""
    if users is None:
        return party
    listed = users.get(acting_user)
    if listed is None:
        return None
    return min(listed, party, key=PARTIES.index)


def acting_roles(roles: frozenset[str], party: str | None) -> frozenset[str]:
    """The roles an acting user holds of its member's ``roles``: all of them in the
    formal party, none of :data:`FORMAL_ONLY_ROLES` otherwise (an informal user, or an
    unlisted one)."""
    return roles if party == "formal" else roles - FORMAL_ONLY_ROLES


@dataclass(frozen=True, kw_only=True)
class MembershipRevocation(SignedObject):
    """Ends membership ``serial`` of ``member``, signed by the coordinator."""

    TYPE = "membership-revocation"

    network: str
    member: str
    serial: int
    at: Timestamp
    reason: str


@dataclass(frozen=True, kw_only=True)
class KeyRotation(SignedObject):
    """Replaces signing key ``old`` by ``new``; signed by the old **and** the new key."""

    TYPE = "key-rotation"

    old: str
    new: PublicKeys = nested(PublicKeys)
    at: Timestamp
    reason: str

    def check(self) -> None:
        if self.new.key_id == self.old:
            raise self._fail("new.sign", "must differ from the old key")

    @classmethod
    def from_envelope_with_old_key(cls, envelope: Any, old_key: VerifyKey) -> "KeyRotation":
        """Verify a rotation away from ``old_key``.  The envelope carries exactly two
        signatures, both valid: by ``old_key`` (the holder authorises the change) and by
        ``new.sign`` (proof of possession); otherwise :class:`SignatureError`.  A
        rotation of another key is a :class:`ContextMismatchError`."""
        new_key = VerifyKey.from_b64(cls.peek(envelope)["new"]["sign"], "new.sign")
        claimed = signing.signers_of(envelope)
        if old_key.key_id not in claimed:
            raise SignatureError("key-rotation is not signed by the old key")
        if new_key.key_id not in claimed:
            raise SignatureError("key-rotation is not signed by the new key (no proof of "
                                 "possession)")
        if len(claimed) != 2:
            raise SignatureError("key-rotation must carry exactly the old and the new key's "
                                 "signatures")
        rotation = cls.from_envelope(envelope, [old_key, new_key], threshold=2)
        if rotation.old != old_key.key_id:
            raise ContextMismatchError("key-rotation is for another key", details={"field": "old"})
        return rotation


@dataclass(frozen=True, kw_only=True)
class KeyBundle(SignedObject):
    """A partner's public keys, self-signed (proof of possession), for the covenant ceremony."""

    TYPE = "key-bundle"

    #: JSON ``sign``/``box``: ``sign`` would shadow :meth:`SignedObject.sign`.
    sign_key: str = alias("sign")
    box_key: str = alias("box")
    name: str
    created: Timestamp

    @property
    def keys(self) -> PublicKeys:
        return PublicKeys(sign=self.sign_key, box=self.box_key)

    @property
    def key_id(self) -> str:
        return self.keys.key_id

    @classmethod
    def from_self_signed(cls, envelope: Any) -> "KeyBundle":
        """Verify the bundle with the signing key it carries.  This proves possession
        of that key, not who holds it: the coordinator compares fingerprints in person."""
        key = VerifyKey.from_b64(cls.peek(envelope)["sign"], "sign")
        return cls.from_envelope(envelope, [key])


@dataclass(frozen=True, kw_only=True)
class CovenantAcceptance(SignedObject):
    """A partner accepts the covenant with hash ``covenant``; signed by that partner."""

    TYPE = "covenant-acceptance"

    network: str
    member: str
    covenant: str
    acting_user: str
    at: Timestamp


# --------------------------------------------------------------------------- epoch keys


@dataclass(frozen=True, kw_only=True)
class SealedEpochKey(Part):
    """One recipient's sealed epoch-key-payload."""

    TYPE = "epoch-key-distribution"
    DEF = "sealed_key"

    recipient: str
    sealed: str

    def check(self) -> None:
        self._binary("sealed")


@dataclass(frozen=True, kw_only=True)
class EpochKeyDistribution(SignedObject):
    """Epoch ``epoch``'s keys sealed to each core member, signed by the coordinator.

    Sealed boxes are anonymous: authenticity comes from the coordinator's
    signature over the whole distribution, ciphertexts included."""

    TYPE = "epoch-key-distribution"

    network: str
    epoch: int
    created: Timestamp
    keys: tuple[SealedEpochKey, ...] = nested(SealedEpochKey, many=True)

    def check(self) -> None:
        recipients = [k.recipient for k in self.keys]
        if len(set(recipients)) != len(recipients):
            raise self._fail("keys", "names a recipient twice")

    def sealed_for(self, recipient: str) -> str | None:
        """The sealed payload for ``recipient`` (a key id), or None if it has none."""
        for k in self.keys:
            if k.recipient == recipient:
                return k.sealed
        return None


@dataclass(frozen=True, kw_only=True)
class EpochKeyPayload(WireObject):
    """The plaintext inside one sealed entry of an epoch-key-distribution: exactly what
    :func:`schakel.protocol.envelopes.seal_epoch_keys` seals (it carries ``"type"`` like every
    sealed payload).  Holds secrets: they are left out of ``repr``."""

    TYPE = "epoch-key-payload"
    TYPED = True

    network: str
    epoch: int
    recipient: str
    epoch_key: str = field(repr=False)
    match_key: str = field(repr=False)

    @classmethod
    def create(cls, *, network: str, epoch: int, recipient: str, epoch_key: EpochKey,
               match_key: MatchKey) -> "EpochKeyPayload":
        return cls(network=network, epoch=epoch, recipient=recipient,
                   epoch_key=b64e(epoch_key.export()), match_key=b64e(match_key.export()))

    def seal(self, recipient_box: BoxPublicKey) -> SealedEpochKey:
        """Seal this payload to its recipient's box key (``envelopes.seal_epoch_keys``)."""
        sealed = envelopes.seal_epoch_keys(recipient_box, self.epoch_secret(), self.match_secret(),
                                           network=self.network, epoch=self.epoch,
                                           recipient_id=self.recipient)
        return SealedEpochKey(recipient=self.recipient, sealed=sealed)

    @classmethod
    def open(cls, sealed: str, box_secret: BoxSecretKey, *, network: str, epoch: int,
             recipient: str) -> "EpochKeyPayload":
        """Open a sealed payload (``envelopes.open_epoch_keys``) made for this network,
        epoch and recipient.

        Raises DecryptionError if it does not open, ContextMismatchError if it
        opened but names another network, epoch or recipient, MalformedError if it
        is not an epoch-key-payload."""
        epoch_key, match_key = envelopes.open_epoch_keys(
            box_secret, sealed, network=network, epoch=epoch, recipient_id=recipient)
        return cls.create(network=network, epoch=epoch, recipient=recipient,
                          epoch_key=epoch_key, match_key=match_key)

    def epoch_secret(self) -> EpochKey:
        return EpochKey(b64d(self.epoch_key, length=KEY_BYTES, what="epoch_key"))

    def match_secret(self) -> MatchKey:
        return MatchKey(b64d(self.match_key, length=KEY_BYTES, what="match_key"))


__all__ = [
    "KINDS",
    "PublicKeys", "ServerKeys",
    "DEFAULT_CLASSES", "DEFAULT_INFORMAL_CLASSES", "DEFAULT_RESTRICTED", "DEFAULT_BEMOEIZORG_GROUNDS",
    "ClassFields", "BemoeizorgSettings", "RetentionSettings", "BlindIndexSettings", "Policy",
    "MAX_ALLOW_ENTRIES", "MAX_ALLOW_CHARS", "allow_entry_problem", "default_policy",
    "check_policy_for_kind",
    "NetworkGenesis", "PolicyAnchor", "FIXED_POLICY_PARTS", "NetworkPolicy",
    "MAX_ON_BEHALF_OF", "MAX_USERS", "PARTIES", "FORMAL_ONLY_ROLES", "MemberUser", "Membership",
    "acting_party", "acting_roles",
    "MembershipRevocation", "KeyRotation", "KeyBundle", "CovenantAcceptance", "SealedEpochKey", "EpochKeyDistribution", "EpochKeyPayload",
]
