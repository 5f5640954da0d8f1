"""Network objects: trust anchor, policy, membership and key distribution
(docs/parts/objects-network.md §N).

Every class here is a frozen, keyword-only dataclass that validates against
``protocol/schemas/<type>.json`` when built (style.md: an invalid object cannot
exist).  Besides the :class:`~protocol.objects.base.WireObject` contract this
module adds, for all Schakel objects (:class:`SchakelObject`):

* lists become tuples and JSON objects become :class:`FrozenMap`, so a built
  object cannot be changed through a list it holds;
* nested parts given as plain JSON objects are built into their :class:`Part`
  class (and run its checks);
* integer fields hold real ``int`` values and timestamp fields real calendar
  times — ``protocol.schema`` asserts both too; the repeat here also covers
  :class:`Part` objects, which are validated against a ``$defs`` entry;
* no string holds a control character, except the multi-line free-text
  fields a class names in ``MULTILINE``: no newline in an id, a name or a
  reason, whatever a schema pattern allows.

Nested parts of an object (``coordinator``, ``policy.retention``...) are
:class:`Part` objects validated against a ``$defs`` entry of their parent's schema.

Release decisions are not made here: objects are data plus structural checks;
``protocol/policy.py`` decides.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, ClassVar, TypeVar, get_type_hints

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from protocol import schema
from protocol.canonical import canonical_json, parse_json
from protocol.crypto import (
    KEY_BYTES, BoxPublicKey, BoxSecretKey, EpochKey, MatchKey, VerifyKey, key_id,
)
from protocol.encoding import b64d, b64e
from protocol.errors import ContextMismatchError, MalformedError
from protocol.objects.base import WireObject, _from_json, alias, nested

#: Marks a ``str`` field that holds an RFC 3339 UTC timestamp (conventions: Encodings).
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
Timestamp = Annotated[str, "schakel-timestamp"]

KINDS = ("oggz", "neighbourhood")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_S = TypeVar("_S", bound="SchakelObject")
_V = TypeVar("_V")


# --------------------------------------------------------------------------- infrastructure


class FrozenMap(Mapping[str, _V]):
    """An immutable, hashable ``str -> value`` mapping (policy classes, error details)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, _V] | Iterable[tuple[str, _V]] = ()) -> None:
        self._data: dict[str, _V] = dict(data)

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _freeze(value: Any) -> Any:
    if isinstance(value, WireObject):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping) and not isinstance(value, FrozenMap):
        return FrozenMap((k, _freeze(v)) for k, v in value.items())
    return value


def _thaw(value: Any) -> Any:
    """The plain JSON form of a (frozen) value."""
    if isinstance(value, WireObject):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


@cache
def _field_kinds(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(integer fields, timestamp fields) of a dataclass, from its annotations."""
    hints = get_type_hints(cls, include_extras=True)
    ints, stamps = [], []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint in (int, int | None):
            ints.append(f.name)
        elif hint == Timestamp:
            stamps.append(f.name)
    return tuple(ints), tuple(stamps)


def _json_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


class SchakelObject(WireObject):
    """WireObject plus the strictness rules listed in the module docstring."""

    #: JSON keys (at any depth) whose strings may contain tab, CR and LF.
    MULTILINE: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            frozen = _freeze(value)
            if frozen is not value:
                object.__setattr__(self, f.name, frozen)
        self._validate_schema()
        self._build_nested()
        self._normalise()
        self._strict()
        self.check()

    # hooks ----------------------------------------------------------------------

    @classmethod
    def _where(cls) -> str:
        return cls.TYPE

    def _validate_schema(self) -> None:
        schema.validate(self.TYPE, self.to_json())

    def _build_nested(self) -> None:
        """Nested parts given as plain JSON become their wire objects (and run their checks)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            kind = f.metadata.get("wire")
            value = getattr(self, f.name)
            if kind is None or value is None:
                continue
            if f.metadata.get("many"):
                if any(not isinstance(v, kind) for v in value):
                    built = tuple(v if isinstance(v, kind) else kind.from_json(_thaw(v)) for v in value)
                    object.__setattr__(self, f.name, built)
            elif not isinstance(value, kind):
                object.__setattr__(self, f.name, kind.from_json(_thaw(value)))

    def _normalise(self) -> None:
        """Convert validated raw values into their typed form (subclasses)."""

    def _fail(self, path: str, problem: str) -> MalformedError:
        return MalformedError(f"invalid {self._where()}: {path}: {problem}",
                              details={"type": self.TYPE, "field": path})

    def _binary(self, name: str, *, length: int | None = None) -> bytes:
        """Field ``name`` decoded as canonical unpadded base64url (exactly ``length`` bytes)."""
        try:
            return b64d(getattr(self, name), length=length, what=name)
        except MalformedError:
            raise self._fail(name, "is not canonical base64url of the right length") from None

    # strictness -----------------------------------------------------------------

    def _strict(self) -> None:
        ints, stamps = _field_kinds(type(self))
        for name in ints:
            value = getattr(self, name)
            if value is not None and type(value) is not int:
                raise self._fail(name, "must be an integer")
        for name in stamps:
            try:
                datetime.strptime(getattr(self, name), TIMESTAMP_FORMAT)
            except (TypeError, ValueError):
                raise self._fail(name, "is not a valid UTC calendar time") from None
        self._no_control(self.to_json(), [], False)

    def _no_control(self, value: Any, path: list[Any], multiline: bool) -> None:
        if isinstance(value, str):
            bad = _CONTROL_BUT_LINES if multiline else _CONTROL
            if bad.search(value):
                raise self._fail(_json_path(path), "contains control characters")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._no_control(item, [*path, i], multiline)
        elif isinstance(value, dict):
            for key, item in value.items():
                if _CONTROL.search(key):
                    raise self._fail(_json_path(path), "has a field name with control characters")
                self._no_control(item, [*path, key], key in self.MULTILINE)


# -- parts ----------------------------------------------------------------------------

_SCHEMA_FILES = resources.files("protocol.schemas")


@cache
def _retrieve(uri: str) -> Resource[Any]:
    name = uri[len(schema.BASE_URI):] if uri.startswith(schema.BASE_URI) else ""
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}\.json", name):
        raise NoSuchResource(ref=uri)
    try:
        contents = json.loads(_SCHEMA_FILES.joinpath(name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoSuchResource(ref=uri) from None
    return Resource.from_contents(contents, default_specification=DRAFT202012)


@cache
def _part_validator(parent: str, name: str) -> jsonschema.Draft202012Validator:
    ref = {"$ref": f"{schema.BASE_URI}{parent}.json#/$defs/{name}"}
    return jsonschema.Draft202012Validator(ref, registry=Registry(retrieve=_retrieve))  # type: ignore[call-arg]


def _describe(err: jsonschema.ValidationError) -> str:
    """What rule failed, never the offending value (it may be identity or ciphertext)."""
    rule, value = err.validator, err.validator_value
    if rule == "required" and isinstance(err.instance, Mapping):
        return f"missing required field(s) {[k for k in value if k not in err.instance]}"
    if rule == "additionalProperties" and isinstance(err.instance, Mapping):
        known = set(err.schema.get("properties", {}))
        return f"unknown field(s) {sorted(k for k in err.instance if k not in known)[:5]}"
    if rule in ("type", "enum", "const", "maxLength", "minLength", "maxItems", "minItems",
                "maximum", "minimum", "maxProperties", "minProperties"):
        return f"violates {rule} {value}"
    if rule == "pattern":
        return "has the wrong format"
    return f"violates {rule}"


class Part(SchakelObject):
    """A nested part of a wire object, validated against ``<TYPE>.json#/$defs/<DEF>``."""

    DEF: ClassVar[str]

    @classmethod
    def _where(cls) -> str:
        return f"{cls.TYPE} {cls.DEF}"

    @classmethod
    def _validate_part(cls, value: Any) -> None:
        errors = sorted(_part_validator(cls.TYPE, cls.DEF).iter_errors(value),
                        key=lambda e: list(e.absolute_path))
        if errors:
            problems = [f"{_json_path(e.absolute_path)}: {_describe(e)}" for e in errors[:5]]
            raise MalformedError(f"invalid {cls._where()}: {problems[0]}",
                                 details={"type": cls.TYPE, "problems": problems})

    def _validate_schema(self) -> None:
        self._validate_part(self.to_json())

    @classmethod
    def from_json(cls: type[_S], value: Any) -> _S:
        cls._validate_part(value)  # type: ignore[attr-defined]
        kwargs = {f.name: _from_json(f, value[f.metadata.get("json", f.name)])
                  for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if f.metadata.get("json", f.name) in value}
        return cls(**kwargs)


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
        return key_id(b64d(self.sign, length=KEY_BYTES, what="sign"))

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
DEFAULT_BEMOEIZORG_GROUNDS = ("severe-self-neglect", "housing-pollution", "danger-to-self",
                              "danger-to-others", "nuisance")


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
class Policy(SchakelObject):
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

    def _normalise(self) -> None:
        classes = FrozenMap(
            (name, v if isinstance(v, ClassFields) else ClassFields.from_json(_thaw(v)))
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

    def fields_of(self, class_name: str) -> tuple[str, ...]:
        """The identity fields of ``class_name``; KeyError for an unknown class."""
        return self.classes[class_name].fields

    def class_of_field(self, field_name: str) -> str | None:
        """The class that seals ``field_name``, or None if no class does."""
        for name, spec in self.classes.items():
            if field_name in spec.fields:
                return name
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
        raise MalformedError(f"invalid {where}: policy.bemoeizorg.enabled: the bemoeizorg "
                             "exception exists only in oggz networks",
                             details={"type": where, "field": "policy.bemoeizorg.enabled"})


# --------------------------------------------------------------------------- genesis & policy


@dataclass(frozen=True, kw_only=True)
class NetworkGenesis(SchakelObject):
    """The trust anchor of a network, signed by the coordinator's signing key."""

    TYPE = "network-genesis"
    SIGNED = True

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


@dataclass(frozen=True, kw_only=True)
class NetworkPolicy(SchakelObject):
    """A new policy version (≥ 2; the genesis holds version 1), signed by the coordinator."""

    TYPE = "network-policy"
    SIGNED = True

    network: str
    version: int
    issued: Timestamp
    policy: Policy = nested(Policy)

    def check_for(self, genesis: NetworkGenesis) -> None:
        """Checks needing the genesis: same network, and bemoeizorg only in oggz."""
        if self.network != genesis.network:
            raise ContextMismatchError("network-policy belongs to another network",
                                       details={"field": "network"})
        check_policy_for_kind(genesis.kind, self.policy, where=self.TYPE)


# --------------------------------------------------------------------------- membership


@dataclass(frozen=True, kw_only=True)
class Membership(SchakelObject):
    """A partner's certificate in one network, signed by the coordinator."""

    TYPE = "membership"
    SIGNED = True

    network: str
    member: str
    name: str
    #: JSON ``sign``/``box``: ``sign`` would shadow :meth:`WireObject.sign`.
    sign_key: str = alias("sign")
    box_key: str = alias("box")
    ring: str
    party: str
    roles: tuple[str, ...]
    serial: int
    valid_from: Timestamp
    valid_until: Timestamp

    def check(self) -> None:
        if key_id(b64d(self.sign_key, length=KEY_BYTES, what="sign")) != self.member:
            raise self._fail("member", "must be the key id of sign")
        if self.valid_until <= self.valid_from:
            raise self._fail("valid_until", "must be later than valid_from")

    @property
    def keys(self) -> PublicKeys:
        return PublicKeys(sign=self.sign_key, box=self.box_key)

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True, kw_only=True)
class MembershipRevocation(SchakelObject):
    """Ends membership ``serial`` of ``member``, signed by the coordinator."""

    TYPE = "membership-revocation"
    SIGNED = True

    network: str
    member: str
    serial: int
    at: Timestamp
    reason: str


@dataclass(frozen=True, kw_only=True)
class KeyRotation(SchakelObject):
    """Replaces signing key ``old`` by ``new``; signed by the old **and** the new key."""

    TYPE = "key-rotation"
    SIGNED = True

    old: str
    new: PublicKeys = nested(PublicKeys)
    at: Timestamp
    reason: str

    def check(self) -> None:
        if self.new.key_id == self.old:
            raise self._fail("new.sign", "must differ from the old key")

    @classmethod
    def from_envelope_with_old_key(cls, envelope: Any, old_key: VerifyKey) -> "KeyRotation":
        """Verify a rotation away from ``old_key``: both signatures must verify."""
        schema.validate_envelope(cls.TYPE, envelope)
        new_key = VerifyKey.from_b64(envelope["signed"]["new"]["sign"], "new.sign")
        rotation = cls.from_envelope(envelope, [old_key, new_key], threshold=2)
        if rotation.old != old_key.key_id:
            raise ContextMismatchError("key-rotation is for another key", details={"field": "old"})
        return rotation


@dataclass(frozen=True, kw_only=True)
class KeyBundle(SchakelObject):
    """A partner's public keys, self-signed (proof of possession), for the covenant ceremony."""

    TYPE = "key-bundle"
    SIGNED = True

    #: JSON ``sign``/``box``: ``sign`` would shadow :meth:`WireObject.sign`.
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
        schema.validate_envelope(cls.TYPE, envelope)
        return cls.from_envelope(envelope, [VerifyKey.from_b64(envelope["signed"]["sign"], "sign")])


@dataclass(frozen=True, kw_only=True)
class CovenantAcceptance(SchakelObject):
    """A partner accepts the covenant with hash ``covenant``; signed by that partner."""

    TYPE = "covenant-acceptance"
    SIGNED = True

    network: str
    member: str
    covenant: str
    acting_user: str
    at: Timestamp


# --------------------------------------------------------------------------- epoch keys

#: Upper bound for the canonical JSON of an epoch-key-payload (it is ~230 bytes).
_PAYLOAD_MAX_BYTES = 720


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
class EpochKeyDistribution(SchakelObject):
    """Epoch ``epoch``'s keys sealed to each core member, signed by the coordinator.

    Sealed boxes are anonymous: authenticity comes from the coordinator's
    signature over the whole distribution, ciphertexts included."""

    TYPE = "epoch-key-distribution"
    SIGNED = True

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
class EpochKeyPayload(SchakelObject):
    """The plaintext inside one sealed entry of an epoch-key-distribution.

    Holds secrets: they are left out of ``repr``."""

    TYPE = "epoch-key-payload"

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
        """Seal this payload to its recipient's box key."""
        sealed = recipient_box.seal(canonical_json(self.to_json()))
        return SealedEpochKey(recipient=self.recipient, sealed=b64e(sealed))

    @classmethod
    def open(cls, sealed: str, box_secret: BoxSecretKey, *, network: str, epoch: int,
             recipient: str) -> "EpochKeyPayload":
        """Open a sealed payload and check it is for this network, epoch and recipient.

        Raises DecryptionError if it does not open, ContextMismatchError if it
        opened but names another network, epoch or recipient."""
        plaintext = box_secret.unseal(b64d(sealed, max_length=_PAYLOAD_MAX_BYTES + 48,
                                           what="sealed"))
        payload = cls.from_json(parse_json(plaintext, max_bytes=_PAYLOAD_MAX_BYTES, max_depth=2))
        for name, expected in (("network", network), ("epoch", epoch), ("recipient", recipient)):
            if getattr(payload, name) != expected:
                raise ContextMismatchError(f"epoch-key-payload is for another {name}",
                                           details={"field": name})
        return payload

    def epoch_secret(self) -> EpochKey:
        return EpochKey(b64d(self.epoch_key, length=KEY_BYTES, what="epoch_key"))

    def match_secret(self) -> MatchKey:
        return MatchKey(b64d(self.match_key, length=KEY_BYTES, what="match_key"))


__all__ = [
    "TIMESTAMP_FORMAT", "Timestamp", "KINDS", "FrozenMap", "SchakelObject", "Part",
    "PublicKeys", "ServerKeys",
    "DEFAULT_CLASSES", "DEFAULT_INFORMAL_CLASSES", "DEFAULT_RESTRICTED", "DEFAULT_BEMOEIZORG_GROUNDS",
    "ClassFields", "BemoeizorgSettings", "RetentionSettings", "BlindIndexSettings", "Policy",
    "default_policy", "check_policy_for_kind",
    "NetworkGenesis", "NetworkPolicy", "Membership", "MembershipRevocation", "KeyRotation",
    "KeyBundle", "CovenantAcceptance", "SealedEpochKey", "EpochKeyDistribution", "EpochKeyPayload",
]
