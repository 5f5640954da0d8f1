"""Network, audit and error objects (docs/protocol.md §N, §A):
round trips, a table of malformed inputs per object, signatures, the
structural rules, and a property test that only MalformedError escapes."""

from __future__ import annotations

import copy
import dataclasses
import json
from importlib import resources
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, json_paths

from schakel.protocol import envelopes, merkle, schema, signing
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import BoxSecretKey, EpochKey, MatchKey, Signer, sha256
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, MalformedError, ProtocolError, SignatureError,
)
from schakel.protocol.objects.audit import (
    AuditActor, AuditEntry, ErrorResponse, TreeHead, entry_commitment, new_salt,
)
from schakel.protocol.objects.base import SignedObject
from schakel.protocol.objects.network import (
    BemoeizorgSettings, CovenantAcceptance, EpochKeyDistribution, EpochKeyPayload, KeyBundle,
    KeyRotation, Membership, MembershipRevocation, NetworkGenesis, NetworkPolicy, Policy,
    PublicKeys, ServerKeys, acting_party, acting_roles, check_policy_for_kind, default_policy,
)

# --------------------------------------------------------------------------- fixtures

COORD = Signer(bytes([1]) * 32)
COORD_BOX = BoxSecretKey(bytes([2]) * 32)
MEMBER = Signer(bytes([3]) * 32)
MEMBER_BOX = BoxSecretKey(bytes([4]) * 32)
NEW = Signer(bytes([5]) * 32)
LOG = Signer(bytes([6]) * 32)
GATE = BoxSecretKey(bytes([7]) * 32)
OTHER = Signer(bytes([8]) * 32)

NET = b64e(bytes([10]) * 16)
T0 = "2026-11-28T22:00:00Z"
T1 = "2027-11-28T22:00:00Z"
#: A distinctive value that must never appear in an error message.
SECRET = "Jansen-BSN-123456782"
SECRET_INT = 987654321

EPOCH_KEY = EpochKey(bytes([20]) * 32)
MATCH_KEY = MatchKey(bytes([21]) * 32)


def genesis(kind: str = "oggz") -> NetworkGenesis:
    return NetworkGenesis(
        network=NET, name="OGGZ-netwerk Zuid", kind=kind, created=T0,
        coordinator=PublicKeys.of(COORD.verify_key, COORD_BOX.public_key),
        server=ServerKeys(log=LOG.verify_key.b64(), gate=GATE.public_key.b64()),
        covenant=b64e(sha256(b"covenant text")), policy=default_policy(kind))


#: A network's own words for the PII guard (protocol.md §N.2).
ALLOW = ("Amersfoort", "Soesterkwartier", "Leger des Heils", "Huisartsenpraktijk De Vries")


def allow_policy(kind: str = "oggz") -> Policy:
    return dataclasses.replace(default_policy(kind), pii_allow=ALLOW)


def membership() -> Membership:
    return Membership(network=NET, member=MEMBER.key_id, name="Buurtteam Noord",
                      sign_key=MEMBER.verify_key.b64(), box_key=MEMBER_BOX.public_key.b64(),
                      ring="core", party="informal", roles=[], serial=1,
                      valid_from=T0, valid_until=T1)


#: A mixed organisation acting on behalf of volunteer organisations (protocol.md §N.4).
USERS = ({"user": "wij-beroepskracht-1", "party": "formal"},
         {"user": "wij-vrijwilliger-7", "party": "informal"})
BEHALF = ("Stichting Present", "Handje Helpen")


def membership_mixed() -> Membership:
    return Membership(network=NET, member=MEMBER.key_id, name="Stichting WIJ",
                      sign_key=MEMBER.verify_key.b64(), box_key=MEMBER_BOX.public_key.b64(),
                      ring="core", party="formal", roles=["professional-secrecy"], serial=2,
                      valid_from=T0, valid_until=T1, on_behalf_of=BEHALF, users=USERS)


def distribution() -> EpochKeyDistribution:
    sealed = [EpochKeyPayload.create(network=NET, epoch=1, recipient=k.key_id, epoch_key=EPOCH_KEY,
                                     match_key=MATCH_KEY).seal(box.public_key)
              for k, box in ((COORD, COORD_BOX), (MEMBER, MEMBER_BOX))]
    return EpochKeyDistribution(network=NET, epoch=1, created=T0, keys=sealed)


def payload() -> EpochKeyPayload:
    return EpochKeyPayload.create(network=NET, epoch=1, recipient=MEMBER.key_id,
                                  epoch_key=EPOCH_KEY, match_key=MATCH_KEY)


def audit_entry(**kw: Any) -> AuditEntry:
    base: dict[str, Any] = dict(
        network=NET, index=0, salt=b64e(bytes([30]) * 16), time=T0,
        actor=AuditActor(partner=MEMBER.key_id, acting_user="mw-0042", role="member",
                         organisation="Buurtteam Noord"),
        case=b64e(bytes([31]) * 16), action="release", classes=("name", "address"),
        basis="consent", ref=b64e(bytes([32]) * 16), outcome="allow", reason="consent",
        review_required=False, emergency=False)
    base.update(kw)
    return AuditEntry(**base)


EXAMPLES: dict[str, Callable[[], Any]] = {
    "policy-oggz": lambda: default_policy("oggz"),
    "policy-neighbourhood": lambda: default_policy("neighbourhood"),
    "network-genesis": genesis,
    "network-genesis-neighbourhood": lambda: genesis("neighbourhood"),
    "network-policy": lambda: NetworkPolicy(network=NET, version=2, issued=T1,
                                            policy=allow_policy()),
    "membership-mixed": membership_mixed,
    "membership": membership,
    "membership-revocation": lambda: MembershipRevocation(
        network=NET, member=MEMBER.key_id, serial=1, at=T1, reason="left the network"),
    "key-rotation": lambda: KeyRotation(
        old=MEMBER.key_id, new=PublicKeys.of(NEW.verify_key, MEMBER_BOX.public_key), at=T1,
        reason="scheduled rotation"),
    "key-bundle": lambda: KeyBundle(sign_key=MEMBER.verify_key.b64(), box_key=MEMBER_BOX.public_key.b64(),
                                    name="Buurtteam Noord", created=T0),
    "covenant-acceptance": lambda: CovenantAcceptance(
        network=NET, member=MEMBER.key_id, covenant=b64e(sha256(b"covenant text")),
        acting_user="mw-0042", at=T0),
    "epoch-key-distribution": distribution,
    "epoch-key-payload": payload,
    "audit-entry": audit_entry,
    "audit-entry-behalf": lambda: audit_entry(actor=AuditActor(
        partner=MEMBER.key_id, acting_user="wij-vrijwilliger-7", role="member",
        organisation="Stichting WIJ", party="informal", on_behalf_of=BEHALF)),
    "audit-entry-minimal": lambda: audit_entry(case=None, classes=None, ref=None,
                                               action="membership", basis="policy"),
    "audit-entry-erase": lambda: audit_entry(
        index=40, case=None, classes=None, ref=None, action="erase", basis="policy",
        actor=AuditActor(partner=LOG.key_id, acting_user="schakel-server", role="server",
                         organisation="Schakel server"),
        reason="retention: bodies older than 1826 days erased", erased_below=37),
    "tree-head": lambda: TreeHead(network=NET, size=3, root=b64e(sha256(b"root")), time=T0),
    "error": lambda: ErrorResponse.of("malformed", "invalid consent: purpose: violates maxLength 500",
                                      {"type": "consent", "problems": ["purpose: violates maxLength"]}),
}
SIGNED = {k: f for k, f in EXAMPLES.items() if f().SIGNED}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest) -> Any:
    return EXAMPLES[request.param]()


# --------------------------------------------------------------------------- round trips


def test_round_trip(example: Any) -> None:
    cls = type(example)
    wire = example.to_json()
    assert cls.from_json(wire) == example
    text = canonical_json(wire)
    again = cls.from_json(parse_json(text))
    assert again == example
    assert canonical_json(again.to_json()) == text
    if example.SIGNED or example.TYPED:  # TYPED: a sealed payload names its type too
        assert wire["type"] == cls.TYPE
    else:
        assert "type" not in wire


def test_objects_are_immutable_and_hashable(example: Any) -> None:
    hash(example)
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.network = NET  # type: ignore[misc]


def test_lists_are_frozen_into_tuples() -> None:
    m = membership()
    assert m.roles == ()
    d = distribution()
    assert isinstance(d.keys, tuple)
    p = default_policy("oggz")
    assert isinstance(p.bemoeizorg.grounds, tuple)
    with pytest.raises(TypeError):
        p.classes["name"] = p.classes["address"]  # type: ignore[index]


# --------------------------------------------------------------------------- malformed inputs


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obj


_DELETE = object()
KEYID_BAD = "!" * 43

MALFORMED = [
    # (example, path, bad value, field named in the message)
    ("network-genesis", "name", "A" * 201 + SECRET, "name"),
    ("network-genesis", "kind", SECRET, "kind"),
    ("network-genesis", "network", SECRET, "network"),
    ("network-genesis", "network", "AAAAAAAAAAAAAAAAAAAAAB", "network"),  # non-canonical tail
    ("network-genesis", "created", "2026-13-01T00:00:00Z", "created"),
    ("network-genesis", "created", "2026-02-31T00:00:00Z", "created"),
    ("network-genesis", "created", "2026-11-28T22:00:00+01:00", "created"),
    ("network-genesis", "created", T0 + "\n", "created"),
    ("network-genesis", "coordinator.sign", SECRET, "coordinator.sign"),
    ("network-genesis", "coordinator.extra", SECRET, "extra"),
    ("network-genesis", "server.gate", _DELETE, "gate"),
    ("network-genesis", "covenant", "+" * 43, "covenant"),
    ("network-genesis", "type", "network-policy", "type"),
    ("network-genesis", "policy.bemoeizorg.access_hours", 721, "policy.bemoeizorg.access_hours"),
    ("network-genesis", "policy.bemoeizorg.max_per_user_per_day", 0, "max_per_user_per_day"),
    ("network-genesis", "policy.bemoeizorg.grounds", [f"g{i}" for i in range(33)], "grounds"),
    ("network-genesis", "policy.bemoeizorg.grounds", [SECRET], "grounds"),
    ("network-genesis", "policy.classes.name.fields", [], "policy.classes.name.fields"),
    ("network-genesis", "policy.classes.Name", {"fields": ["x"]}, "classes"),
    ("network-genesis", "policy.informal_classes", ["name", "name"], "informal_classes"),
    ("network-genesis", "policy.informal_classes", ["religion"], "informal_classes"),
    ("network-genesis", "policy.restricted.official", SECRET, "restricted.official"),
    ("network-genesis", "policy.restricted.religion", "auditor", "restricted"),
    ("network-genesis", "policy.blind_index.token_bytes", 3, "token_bytes"),
    ("network-genesis", "policy.blind_index.token_bytes", 17, "token_bytes"),
    ("network-genesis", "policy.intake_rate_per_hour", 10001, "intake_rate_per_hour"),
    ("network-genesis", "policy.retention.audit_days", "1826", "audit_days"),
    ("network-genesis", "policy.retention.anonymous_days", 30, "anonymous_days"),
    ("network-genesis", "policy.classes.care.fields", ["bsn"], "classes.care.fields"),
    ("network-genesis", "policy.formal_action_reason", "yes", "formal_action_reason"),
    ("network-policy", "policy.pii_allow", [], "pii_allow"),
    ("network-policy", "policy.pii_allow", [SECRET, SECRET], "pii_allow"),
    ("network-policy", "policy.pii_allow", [f"{SECRET}{i}" for i in range(501)], "pii_allow"),
    ("network-policy", "policy.pii_allow", SECRET, "pii_allow"),
    ("network-policy", "policy.pii_allow.0", SECRET_INT, "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", "", "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", SECRET * 4 + "x", "pii_allow[0]"),      # 81
    ("network-policy", "policy.pii_allow.0", " " + SECRET, "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", SECRET + " ", "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", SECRET + "  x", "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", SECRET + "\n", "pii_allow[0]"),
    ("network-policy", "policy.pii_allow.0", SECRET + "\u00a0x", "pii_allow[0]"),   # no-break
    ("network-policy", "policy.pii_allow.0", SECRET + "\u200bx", "pii_allow[0]"),   # zero width
    ("network-policy", "policy.pii_allow.0", SECRET + "\u2028x", "pii_allow[0]"),   # line sep.
    ("network-policy", "policy.pii_allow.0", str(SECRET_INT), "pii_allow[0]"),      # no letter
    ("network-policy", "policy.pii_allow.3", ALLOW[1].upper(), "pii_allow[3]"),    # repeat
    ("network-genesis", "policy.pii_allow", [SECRET, SECRET.lower()], "pii_allow[1]"),
    ("network-policy", "version", 1, "version"),
    ("network-policy", "version", 2.0, "version"),
    ("network-policy", "issued", SECRET, "issued"),
    ("membership", "ring", "kern", "ring"),
    ("membership", "party", SECRET, "party"),
    ("membership", "roles", ["auditor", "auditor"], "roles"),
    ("membership", "roles", [SECRET], "roles"),
    ("membership", "serial", 0, "serial"),
    ("membership", "serial", True, "serial"),
    ("membership", "member", KEYID_BAD, "member"),
    ("membership", "member", OTHER.key_id, "member"),
    ("membership", "valid_until", T0, "valid_until"),
    ("membership", "box", b64e(bytes(31)), "box"),
    ("membership-mixed", "party", "informal", "users[0].party"),
    ("membership-mixed", "users.1.user", "wij-beroepskracht-1", "users"),
    ("membership-mixed", "users.0.user", "m jansen", "users"),
    ("membership-mixed", "users.0.party", "vrijwillig", "users"),
    ("membership-mixed", "users", [], "users"),
    ("membership-mixed", "users", [{"user": f"u{i}", "party": "formal"} for i in range(2001)],
     "users"),
    ("membership-mixed", "on_behalf_of.1", "stichting present", "on_behalf_of"),
    ("membership-mixed", "on_behalf_of", [], "on_behalf_of"),
    ("membership-mixed", "on_behalf_of", [f"organisatie {i}" for i in range(33)],
     "on_behalf_of"),
    ("membership-mixed", "on_behalf_of.0", "Present\nUtrecht", "on_behalf_of"),
    ("audit-entry-behalf", "actor.party", "volunteer", "actor.party"),
    ("audit-entry-behalf", "actor.on_behalf_of", [], "actor.on_behalf_of"),
    ("membership-revocation", "reason", "", "reason"),
    ("membership-revocation", "reason", "x" * 201, "reason"),
    ("key-rotation", "new.sign", MEMBER.verify_key.b64(), "new.sign"),
    ("key-rotation", "old", SECRET, "old"),
    ("key-rotation", "network", NET, "network"),
    ("key-bundle", "name", "Buurtteam\nNoord", "name"),
    ("covenant-acceptance", "acting_user", "m jansen", "acting_user"),
    ("covenant-acceptance", "acting_user", "x" * 129, "acting_user"),
    ("covenant-acceptance", "acting_user", "mw-0042\n", "acting_user"),
    ("epoch-key-distribution", "epoch", 0, "epoch"),
    ("epoch-key-distribution", "keys", [], "keys"),
    ("epoch-key-distribution", "keys.0.sealed", "A" * 1025, "keys[0].sealed"),
    ("epoch-key-distribution", "keys.0.sealed", "=" * 100, "keys[0].sealed"),
    ("epoch-key-distribution", "keys.0.sealed", "A" * 101, "sealed"),
    ("epoch-key-distribution", "keys.0.sealed", "A" * 98 + "B", "sealed"),
    ("epoch-key-distribution", "keys.1.recipient", COORD.key_id, "keys"),
    ("epoch-key-payload", "epoch_key", b64e(bytes(16)), "epoch_key"),
    ("epoch-key-payload", "type", "case-key", "type"),
    ("epoch-key-payload", "type", _DELETE, "type"),
    ("audit-entry", "index", -1, "index"),
    ("audit-entry", "salt", b64e(bytes(8)), "salt"),
    ("audit-entry", "action", "view", "action"),
    ("audit-entry", "actor.role", "admin", "actor.role"),
    ("audit-entry", "actor.organisation", "x" * 201, "actor.organisation"),
    ("audit-entry", "reason", "x" * 501, "reason"),
    ("audit-entry", "classes", [], "classes"),
    ("audit-entry", "classes", [f"c{i}" for i in range(17)], "classes"),
    ("audit-entry", "basis", "bemoeizorg", "emergency"),
    ("audit-entry", "action", "deny", "outcome"),
    ("audit-entry", "emergency", "no", "emergency"),
    ("audit-entry", "erased_below", 1, "erased_below"),
    ("audit-entry-erase", "erased_below", _DELETE, "erased_below"),
    ("audit-entry-erase", "erased_below", 0, "erased_below"),
    ("audit-entry-erase", "erased_below", 41, "erased_below"),
    ("audit-entry-erase", "erased_below", 1.0, "erased_below"),
    ("audit-entry-erase", "actor.role", "coordinator", "action"),
    ("audit-entry-erase", "basis", "none", "action"),
    ("tree-head", "size", -1, "size"),
    ("tree-head", "root", b64e(bytes(31)), "root"),
    ("error", "error.code", "Bad-Code", "error.code"),
    ("error", "error.message", "x" * 501, "error.message"),
    ("error", "error.details.nested", {"a": SECRET}, "error.details.nested"),
    ("error", "error.details", {f"k{i}": 1 for i in range(21)}, "error.details"),
    ("error", "error.details.list", [SECRET] * 21, "error.details.list"),
]


def _assert_clean(exc: MalformedError, field: str, bad: Any) -> None:
    text = str(exc)
    assert field in text, text
    rendered = json.dumps(exc.to_wire())
    for needle in (SECRET, str(SECRET_INT)):
        assert needle not in text and needle not in rendered, text
    if isinstance(bad, str) and len(bad) > 40:
        assert bad[:40] not in text and bad[:40] not in rendered


@pytest.mark.parametrize("name,path,bad,field", MALFORMED,
                         ids=[f"{m[0]}:{m[1]}:{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_table(name: str, path: str, bad: Any, field: str) -> None:
    example = EXAMPLES[name]()
    wire = _set(example.to_json(), path, bad)
    with pytest.raises(MalformedError) as info:
        type(example).from_json(wire)
    _assert_clean(info.value, field, bad)


def test_generic_malformed_per_field(example: Any) -> None:
    """Every top-level field: missing, wrong type; plus an unknown field."""
    cls, wire = type(example), example.to_json()
    optional = {"case", "classes", "ref", "invocation", "entry", "on_behalf_of", "users"}
    for key, value in wire.items():
        if key not in optional:
            with pytest.raises(MalformedError) as info:
                cls.from_json({k: v for k, v in wire.items() if k != key})
            _assert_clean(info.value, key, None)
        bad = SECRET_INT if isinstance(value, str) else SECRET
        with pytest.raises(MalformedError) as info:
            cls.from_json({**wire, key: bad})
        _assert_clean(info.value, key, bad)
    with pytest.raises(MalformedError) as info:
        cls.from_json({**wire, "zz_unknown": SECRET})
    _assert_clean(info.value, "zz_unknown", SECRET)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(MalformedError, match="kind"):
        dataclasses.replace(genesis(), kind="buurt")
    with pytest.raises(MalformedError, match="retention"):
        Policy.from_json(_set(default_policy("oggz").to_json(), "retention.audit_days", 0))
    with pytest.raises(MalformedError, match="access_hours"):
        BemoeizorgSettings(enabled=False, grounds=(), four_eyes=True, max_per_user_per_day=1,
                           access_hours=0)
    with pytest.raises(MalformedError, match="grounds"):
        BemoeizorgSettings(enabled=True, grounds=(), four_eyes=True, max_per_user_per_day=1,
                           access_hours=1)
    with pytest.raises(MalformedError, match="epoch"):
        dataclasses.replace(payload(), epoch=1.0)


def test_big_lists_are_refused() -> None:
    d = distribution().to_json()
    d["keys"] = [dict(d["keys"][0], recipient=b64e(sha256(bytes([i % 256, i // 256]))))
                 for i in range(1001)]
    with pytest.raises(MalformedError, match="keys"):
        EpochKeyDistribution.from_json(d)


# --------------------------------------------------------------------------- rules


def test_bemoeizorg_only_in_oggz() -> None:
    neighbourhood = genesis("neighbourhood")
    assert not neighbourhood.policy.bemoeizorg.enabled
    with pytest.raises(MalformedError, match=r"policy\.bemoeizorg\.enabled"):
        dataclasses.replace(neighbourhood, policy=default_policy("oggz"))
    wire = _set(neighbourhood.to_json(), "policy.bemoeizorg", default_policy("oggz").to_json()["bemoeizorg"])
    with pytest.raises(MalformedError, match=r"policy\.bemoeizorg\.enabled"):
        NetworkGenesis.from_json(wire)


def test_network_policy_checked_against_genesis() -> None:
    update = NetworkPolicy(network=NET, version=2, issued=T1, policy=default_policy("oggz"))
    update.check_for(genesis("oggz"))
    with pytest.raises(MalformedError, match="bemoeizorg"):
        update.check_for(genesis("neighbourhood"))
    with pytest.raises(ContextMismatchError):
        dataclasses.replace(update, network=b64e(bytes([11]) * 16)).check_for(genesis())
    with pytest.raises(MalformedError):
        check_policy_for_kind("neighbourhood", default_policy("oggz"))


def test_default_policies() -> None:
    oggz, hood = default_policy("oggz"), default_policy("neighbourhood")
    assert oggz.bemoeizorg.enabled and oggz.bemoeizorg.four_eyes and oggz.anonymous_signals
    assert "severe-self-neglect" in oggz.bemoeizorg.grounds
    assert not hood.bemoeizorg.enabled and hood.anonymous_signals
    assert oggz.informal_classes == ("name", "address", "contact")
    assert dict(oggz.restricted) == {"official": "professional-secrecy"}
    assert oggz.fields_of("official") == ("bsn", "date_of_birth")
    assert oggz.class_of_field("postcode") == "address"
    assert oggz.class_of_field("religion") is None
    assert oggz.retention.audit_days == 1826
    assert oggz.formal_action_reason
    with pytest.raises(MalformedError):
        default_policy("bogus")


def test_policy_accepts_plain_dicts_for_classes() -> None:
    p = dataclasses.replace(default_policy("neighbourhood"),
                            classes={"name": {"fields": ["given_names", "family_name"]},
                                     "address": {"fields": ["postcode"]},
                                     "contact": {"fields": ["phone"]},
                                     "official": {"fields": ["bsn"]}})
    assert p.fields_of("address") == ("postcode",)
    assert Policy.from_json(p.to_json()) == p
    g = dataclasses.replace(genesis(), coordinator={"sign": MEMBER.verify_key.b64(),
                                                    "box": MEMBER_BOX.public_key.b64()})
    assert isinstance(g.coordinator, PublicKeys) and g.coordinator.key_id == MEMBER.key_id
    with pytest.raises(MalformedError, match="coordinator"):
        dataclasses.replace(genesis(), coordinator={"sign": SECRET, "box": SECRET})


def test_control_characters_and_trailing_newlines_are_refused() -> None:
    wire = membership().to_json()
    for key in ("network", "member", "valid_from"):
        with pytest.raises(MalformedError, match=key):
            Membership.from_json({**wire, key: wire[key] + "\n"})


def test_schema_alone_refuses_trailing_newline_float_and_bad_date() -> None:
    wire = membership().to_json()
    for key, bad in (("network", wire["network"] + "\n"), ("serial", 1.0),
                     ("valid_from", "2026-02-31T00:00:00Z")):
        with pytest.raises(MalformedError, match=key):
            schema.validate("membership", {**wire, key: bad})


def test_parts_get_the_same_strict_schema_semantics() -> None:
    """schakel.protocol.schema.validate_def (nested parts) is as strict as validate (objects)."""
    keys = PublicKeys.of(MEMBER.verify_key, MEMBER_BOX.public_key).to_json()
    retention = default_policy("oggz").retention.to_json()
    for obj_type, def_name, bad, field in (
            ("common", "public_keys", {**keys, "sign": keys["sign"] + "\n"}, "sign"),
            ("policy", "retention", {**retention, "audit_days": 1826.0}, "audit_days"),
            ("policy", "bemoeizorg", {**default_policy("oggz").bemoeizorg.to_json(),
                                      "enabled": 1}, "enabled"),
            ("common", "timestamp", "2026-02-31T00:00:00Z", "(root)"),
            ("common", "printable_text", "Buurtteam\u2028Noord", "(root)")):
        with pytest.raises(MalformedError, match=rf"invalid {obj_type} {def_name}: .*{field}"):
            schema.validate_def(obj_type, def_name, bad)
    with pytest.raises(MalformedError, match="unknown schema definition"):
        schema.validate_def("policy", "nonexistent", {})


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_sign_verify_tamper_wrong_key(name: str) -> None:
    obj = SIGNED[name]()
    cls = type(obj)
    env = obj.sign(COORD)
    assert cls.from_envelope(env, [COORD.verify_key]) == obj
    assert cls.from_envelope(json.loads(json.dumps(env)), [COORD.verify_key, OTHER.verify_key]) == obj
    with pytest.raises(SignatureError):
        cls.from_envelope(env, [OTHER.verify_key])
    with pytest.raises(SignatureError):
        cls.from_envelope(obj.sign(OTHER), [COORD.verify_key])
    tampered = copy.deepcopy(env)
    for key in ("at", "created", "issued", "time", "valid_until"):
        if key in tampered["signed"]:
            tampered["signed"][key] = "2030-01-01T00:00:00Z"
            break
    else:  # pragma: no cover
        raise AssertionError("no timestamp to tamper with")
    with pytest.raises(SignatureError):
        cls.from_envelope(tampered, [COORD.verify_key])
    sig = bytearray(64)
    bad_sig = copy.deepcopy(env)
    bad_sig["signatures"][0]["sig"] = b64e(bytes(sig))
    with pytest.raises(SignatureError):
        cls.from_envelope(bad_sig, [COORD.verify_key])


@pytest.mark.parametrize("make", [
    lambda: dataclasses.replace(genesis(), policy=allow_policy()),
    lambda: NetworkPolicy(network=NET, version=2, issued=T1, policy=allow_policy()),
], ids=["network-genesis", "network-policy"])
def test_the_allow_list_is_covered_by_the_coordinators_signature(make: Any) -> None:
    """A server that widens a network's allow-list would let names through the guard
    into the free text it stores; the coordinator's signature covers the list."""
    obj = make()
    env = obj.sign(COORD)
    assert type(obj).from_envelope(env, [COORD.verify_key]).policy.allow_list == ALLOW
    for change in (lambda a: a.append("Jansen"), lambda a: a.pop(), lambda a: a.reverse()):
        tampered = copy.deepcopy(env)
        change(tampered["signed"]["policy"]["pii_allow"])
        with pytest.raises(SignatureError):
            type(obj).from_envelope(tampered, [COORD.verify_key])
    added = copy.deepcopy(obj.sign(COORD))
    del added["signed"]["policy"]["pii_allow"]
    with pytest.raises(SignatureError):
        type(obj).from_envelope(added, [COORD.verify_key])


def test_a_policy_without_an_allow_list_keeps_its_canonical_form() -> None:
    """The field is optional and absent means none: a policy signed before it existed
    (the genesis vector of protocol/vectors/keys.json) reads and re-encodes byte for byte,
    and no default policy carries the field."""
    from tests.vectors_keys import POLICY

    assert canonical_json(Policy.from_json(POLICY).to_json()) == canonical_json(POLICY)
    assert Policy.from_json(POLICY).allow_list == ()
    for kind in ("oggz", "neighbourhood"):
        assert "pii_allow" not in default_policy(kind).to_json()
    assert Policy.from_json(allow_policy().to_json()) == allow_policy()


def test_signature_does_not_transfer_between_types() -> None:
    env = membership().sign(COORD)
    env["signed"]["type"] = "membership-revocation"
    with pytest.raises(ProtocolError):
        MembershipRevocation.from_envelope(env, [COORD.verify_key])
    with pytest.raises(SignatureError):
        MembershipRevocation.from_envelope(membership().sign(COORD), [COORD.verify_key])


def test_unsigned_objects_cannot_be_signed() -> None:
    """Only a SignedObject has ``sign`` (a type error for mypy, nothing to call at run time)."""
    for unsigned in (payload(), audit_entry()):
        assert not isinstance(unsigned, SignedObject) and not unsigned.SIGNED
        with pytest.raises(AttributeError):
            getattr(unsigned, "sign")


def test_key_rotation_needs_old_and_new_signature() -> None:
    rotation = EXAMPLES["key-rotation"]()
    env = signing.add_signature(rotation.sign(MEMBER), NEW)
    assert KeyRotation.from_envelope_with_old_key(env, MEMBER.verify_key) == rotation
    with pytest.raises(SignatureError):
        KeyRotation.from_envelope_with_old_key(rotation.sign(MEMBER), MEMBER.verify_key)
    with pytest.raises(SignatureError):
        KeyRotation.from_envelope_with_old_key(rotation.sign(NEW), MEMBER.verify_key)
    forged = signing.add_signature(rotation.sign(OTHER), NEW)
    with pytest.raises(SignatureError):
        KeyRotation.from_envelope_with_old_key(forged, MEMBER.verify_key)
    with pytest.raises(ContextMismatchError):
        other = dataclasses.replace(rotation, old=OTHER.key_id)
        KeyRotation.from_envelope_with_old_key(
            signing.add_signature(other.sign(MEMBER), NEW), MEMBER.verify_key)


def test_key_bundle_is_self_signed() -> None:
    bundle = EXAMPLES["key-bundle"]()
    assert KeyBundle.from_self_signed(bundle.sign(MEMBER)) == bundle
    assert bundle.key_id == MEMBER.key_id
    with pytest.raises(SignatureError):
        KeyBundle.from_self_signed(bundle.sign(OTHER))
    with pytest.raises(MalformedError):
        KeyBundle.from_self_signed({"signed": {"type": "key-bundle"}, "signatures": []})


def test_membership_keys() -> None:
    m = membership()
    assert m.keys.verify_key == MEMBER.verify_key
    assert m.keys.box_public_key == MEMBER_BOX.public_key
    assert not m.has_role("auditor")
    g = genesis()
    assert g.coordinator.key_id == COORD.key_id
    assert g.server.log_key == LOG.verify_key and g.server.gate_key == GATE.public_key


# --------------------------------------------------------------------------- epoch keys


def test_epoch_key_payload_seal_open() -> None:
    dist = distribution()
    sealed = dist.sealed_for(MEMBER.key_id)
    assert sealed is not None and dist.sealed_for(OTHER.key_id) is None
    opened = EpochKeyPayload.open(sealed, MEMBER_BOX, network=NET, epoch=1, recipient=MEMBER.key_id)
    assert opened.epoch_secret() == EPOCH_KEY and opened.match_secret() == MATCH_KEY
    with pytest.raises(DecryptionError):
        EpochKeyPayload.open(sealed, COORD_BOX, network=NET, epoch=1, recipient=MEMBER.key_id)
    with pytest.raises(ContextMismatchError, match="epoch"):
        EpochKeyPayload.open(sealed, MEMBER_BOX, network=NET, epoch=2, recipient=MEMBER.key_id)
    with pytest.raises(ContextMismatchError, match="recipient"):
        EpochKeyPayload.open(sealed, MEMBER_BOX, network=NET, epoch=1, recipient=COORD.key_id)
    garbage = b64e(MEMBER_BOX.public_key.seal(b'{"not": "a payload"}'))
    with pytest.raises(MalformedError):
        EpochKeyPayload.open(garbage, MEMBER_BOX, network=NET, epoch=1, recipient=MEMBER.key_id)


def test_epoch_key_payload_is_what_envelopes_seals() -> None:
    sealed = payload().seal(MEMBER_BOX.public_key).sealed
    assert parse_json(MEMBER_BOX.unseal(b64d(sealed))) == payload().to_json()
    bounds = schema.schema_of("epoch-key-distribution")["$defs"]["sealed_key"]["properties"]["sealed"]
    for epoch, bound in ((1, "minLength"), (1_000_000, "maxLength")):
        big = dataclasses.replace(payload(), epoch=epoch).seal(MEMBER_BOX.public_key)
        assert len(big.sealed) == bounds[bound]
    other_type = envelopes.seal_json(MEMBER_BOX.public_key, "case-key", {"network": NET})
    with pytest.raises(ContextMismatchError):
        EpochKeyPayload.open(other_type, MEMBER_BOX, network=NET, epoch=1, recipient=MEMBER.key_id)


def test_secrets_stay_out_of_repr() -> None:
    p = payload()
    assert p.epoch_key not in repr(p) and p.match_key not in repr(p)


# --------------------------------------------------------------------------- audit


def test_entry_commitment() -> None:
    entry = audit_entry()
    expected = sha256(b"schakel/v1/audit-entry" + canonical_json(entry.to_json()))
    assert entry_commitment(entry) == expected == entry.commitment
    assert entry_commitment(dataclasses.replace(entry, salt=new_salt())) != expected
    assert len({new_salt() for _ in range(8)}) == 8
    with pytest.raises(MalformedError):
        entry_commitment(entry.to_json())  # type: ignore[arg-type]


def test_erased_entries_keep_proofs_valid() -> None:
    entries = [audit_entry(index=i, salt=b64e(bytes([i]) * 16)) for i in range(5)]
    leaves = [entry_commitment(e) for e in entries]
    root = merkle.root_hash(leaves)
    # Entry 2's body is erased after its retention period; only its commitment remains.
    stored = leaves[2]
    proof = merkle.inclusion_proof(leaves, 2)
    merkle.verify_inclusion(stored, 2, len(leaves), proof, root)
    head = TreeHead(network=NET, size=len(leaves), root=b64e(root), time=T0)
    assert TreeHead.from_envelope(head.sign(LOG), [LOG.verify_key]) == head


def test_erase_cutoff_is_day_aligned_and_counts_whole_days() -> None:
    """An erasure made on a day erases what was written before the start of that UTC
    day, ``audit_days`` back: the server choosing the range and a reader checking it
    get the same instant from the erase entry's time."""
    from datetime import UTC, datetime, timedelta, timezone

    from schakel.protocol.objects.audit import erase_cutoff
    day = datetime(2031, 3, 9, tzinfo=UTC)
    for moment in (day, day + timedelta(hours=23, minutes=59, seconds=59)):
        assert erase_cutoff(moment, 1826) == day - timedelta(days=1826)
    amsterdam = datetime(2031, 3, 9, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert erase_cutoff(amsterdam, 1) == datetime(2031, 3, 7, tzinfo=UTC)
    with pytest.raises(MalformedError):
        erase_cutoff(datetime(2031, 3, 9), 1)          # naive: not a moment


# --------------------------------------------------------------------------- errors


def test_error_from_protocol_error() -> None:
    exc = MalformedError("invalid consent:\npurpose: too long " + "x" * 600,
                         details={"type": "consent", "problems": ["purpose: violates maxLength 500"]})
    err = ErrorResponse.from_protocol_error(exc)
    assert err.error.code == "malformed" and len(err.error.message) == 500
    assert "\n" not in err.error.message
    assert err.to_json()["error"]["details"] == exc.details
    weird = MalformedError("x", details={"blob": {"nested": 1}})
    assert dict(ErrorResponse.from_protocol_error(weird).error.details) == {}
    wire = SignatureError("signature does not verify").to_wire()
    assert ErrorResponse.from_json(wire).to_json() == wire


# --------------------------------------------------------------------------- schemas


MY_SCHEMAS = ["network-genesis", "policy", "network-policy", "membership", "membership-revocation",
              "key-rotation", "key-bundle", "covenant-acceptance", "epoch-key-distribution",
              "epoch-key-payload", "consent", "consent-revocation", "grant",
              "bemoeizorg-invocation", "bemoeizorg-cosign", "review", "share", "referral",
              "purge-instruction", "purge-ack", "audit-entry", "tree-head", "error"]
MAP_FIELDS = {"classes", "restricted", "details"}  # str -> value maps with bounded names


def _walk(node: Any, name: str, problems: list[str], path: str) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "object":
            if name in MAP_FIELDS:
                if "maxProperties" not in node or "propertyNames" not in node:
                    problems.append(f"{path}: map without bounds")
            elif node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties is not false")
        if kind == "string" and "maxLength" not in node:
            problems.append(f"{path}: unbounded string")
        if kind == "array" and "maxItems" not in node:
            problems.append(f"{path}: unbounded array")
        if "$ref" in node and "b64" in node["$ref"] and "maxLength" not in node:
            problems.append(f"{path}: unbounded base64")
        for key, child in node.items():
            _walk(child, key if key not in ("properties", "$defs") else name, problems, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _walk(child, name, problems, f"{path}/{i}")


@pytest.mark.parametrize("name", MY_SCHEMAS)
def test_schema_is_closed_and_bounded(name: str) -> None:
    doc = json.loads(resources.files("schakel.protocol.schemas").joinpath(f"{name}.json").read_text("utf-8"))
    assert doc["$id"] == f"https://schakel.invalid/v1/{name}.json"
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    problems: list[str] = []
    _walk(doc, name, problems, "")
    assert problems == []
    assert name in schema.known_types()
    props = doc.get("properties", {})
    if "type" in props:
        assert props["type"] == {"const": name} and "type" in doc["required"]


# --------------------------------------------------------------------------- property test

CLASSES = sorted({type(f()) for f in EXAMPLES.values()}, key=lambda c: c.__name__)
WIRES = {name: f().to_json() for name, f in EXAMPLES.items()}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[type, Any]:
    name = draw(st.sampled_from(sorted(WIRES)))
    wire = copy.deepcopy(WIRES[name])
    cls = type(EXAMPLES[name]())
    path = draw(st.sampled_from(json_paths(wire)))
    target = wire
    for p in path[:-1]:
        target = target[p]
    if isinstance(target, dict) and draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(JSON)
    return cls, wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CLASSES), JSON)
def test_arbitrary_json_raises_only_malformed(cls: type, value: Any) -> None:
    try:
        cls.from_json(value)
    except MalformedError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples_raise_only_malformed(case: tuple[type, Any]) -> None:
    cls, wire = case
    try:
        obj = cls.from_json(wire)
    except MalformedError:
        return
    assert cls.from_json(obj.to_json()) == obj


def test_default_oggz_grounds_cover_domestic_violence_and_child_abuse_as_the_meldcode_does() -> None:
    """The report's oggz networks handle huiselijk geweld (§4.2.1); the meldcode covers
    huiselijk geweld en kindermishandeling.  Both are default grounds of an oggz network,
    next to the report's other acute problems; a neighbourhood network has none."""
    grounds = default_policy("oggz").bemoeizorg.grounds
    assert {"domestic-violence", "child-abuse", "severe-self-neglect", "housing-pollution",
            "nuisance"} <= set(grounds)
    assert default_policy("neighbourhood").bemoeizorg.grounds == ()


# --------------------------------------------------------------------------- acting users


def test_acting_party_of_a_mixed_member_is_the_listed_users_and_none_for_the_unlisted() -> None:
    """protocol.md §N.4, "Users": the listed user's party; an unlisted user has none (it is
    refused); a membership without users gives every acting user the member's party."""
    m = membership_mixed()
    users = m.user_parties()
    assert acting_party(m.party, users, "wij-beroepskracht-1") == "formal"
    assert acting_party(m.party, users, "wij-vrijwilliger-7") == "informal"
    assert acting_party(m.party, users, "wij-onbekend-3") is None
    assert acting_party("informal", None, "anyone") == "informal"
    assert acting_party("informal", {"x": "formal"}, "x") == "informal"   # never above


def test_formal_only_roles_are_held_by_formal_acting_users_only() -> None:
    roles = frozenset({"professional-secrecy", "bemoeizorg", "auditor"})
    assert acting_roles(roles, "formal") == roles
    assert acting_roles(roles, "informal") == {"auditor"}
    assert acting_roles(roles, None) == {"auditor"}


def test_membership_round_trips_its_on_behalf_of_and_users() -> None:
    m = membership_mixed()
    assert Membership.from_json(m.to_json()) == m
    assert m.to_json()["on_behalf_of"] == list(BEHALF)
    assert "on_behalf_of" not in membership().to_json() and "users" not in membership().to_json()
