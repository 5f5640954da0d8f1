"""The release policy (design §5), row by row: one table row per rule of
protocol/policy.py, each naming the rule it protects and the exact reason code."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schakel.client.disclosure import rules_of as client_rules_of
from schakel.keys.certify import make_genesis, new_network_id
from schakel.keys.chain import verify_genesis
from schakel.keys.fingerprint import fingerprint
from schakel.keys.partner import PartnerKeys
from schakel.protocol.crypto import BoxSecretKey, Signer, sha256
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects.network import ClassFields, Policy, default_policy
from schakel.protocol.policy import (
    REASON_MIN_LETTERS, BemoeizorgFacts, ConsentFacts, Grantee, Person, Request, Rules,
    check_action, decide, reason_shortfall,
)
from schakel.server.directory import NetworkState
from schakel.server.disclosure.facts import rules_of as server_rules_of

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
NET = "net"
CASE = "case-1"

NEIGHBOURHOOD = Rules(network_kind="neighbourhood")
OGGZ = Rules(network_kind="oggz", bemoeizorg_enabled=True,
             bemoeizorg_grounds=frozenset({"housing-pollution", "severe-self-neglect"}),
             four_eyes=True, max_per_user_per_day=3, access_hours=72)

VOLUNTEERS = Grantee(partner="volunteers", network=NET, ring="core", party="informal")
SOCIAL_WORK = Grantee(partner="social-work", network=NET, ring="core", party="formal")
GP_SECRECY = Grantee(partner="gp", network=NET, ring="core", party="formal",
                     roles=frozenset({"professional-secrecy"}))
HOUSING_SHELL = Grantee(partner="housing", network=NET, ring="shell", party="formal")
BZ_TEAM = Grantee(partner="bz-team", network=NET, ring="core", party="formal",
                  roles=frozenset({"bemoeizorg"}))

CONSENT = ConsentFacts(consent="c1", case=CASE, classes=frozenset({"name", "address", "official"}),
                       partners=frozenset(), parties=frozenset({"formal", "informal"}),
                       valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=30))

INVOKER = Person(partner="bz-team", acting_user="m.devries")
COSIGNER = Person(partner="bz-team", acting_user="a.bakker")
BZ = BemoeizorgFacts(invoker=INVOKER, ground="housing-pollution", has_justification=True,
                     invoked_at=NOW - timedelta(hours=1),
                     cosigners=((COSIGNER, frozenset({"bemoeizorg"})),))


def consent_request(grantee: Grantee, classes: set[str], **kw: object) -> Request:
    base = Request(network=NET, case=CASE, case_kind="case", classes=frozenset(classes),
                   grantee=grantee, basis="consent", consent=CONSENT)
    return replace(base, **kw)


def bz_request(**kw: object) -> Request:
    base = Request(network=NET, case=CASE, case_kind="case",
                   classes=frozenset({"name", "address", "official", "care"}),
                   grantee=BZ_TEAM, basis="bemoeizorg", bemoeizorg=BZ)
    return replace(base, **kw)


ROWS = [
    # (test id, request, rules, expected reason)
    ("allow-informal-name-address", consent_request(VOLUNTEERS, {"name", "address"}), NEIGHBOURHOOD, "allowed"),
    ("allow-formal-name", consent_request(SOCIAL_WORK, {"name"}), NEIGHBOURHOOD, "allowed"),
    ("allow-secrecy-official", consent_request(GP_SECRECY, {"official"}), NEIGHBOURHOOD, "allowed"),
    ("R1-consult-has-no-identity", consent_request(SOCIAL_WORK, {"name"}, case_kind="consult"),
     NEIGHBOURHOOD, "consult-has-no-identity"),
    ("R2-other-network", consent_request(replace(SOCIAL_WORK, network="other"), {"name"}),
     NEIGHBOURHOOD, "not-a-member"),
    ("R2-removed-member", consent_request(replace(SOCIAL_WORK, active=False), {"name"}),
     NEIGHBOURHOOD, "not-a-member"),
    ("R2-acting-user-not-listed", consent_request(replace(SOCIAL_WORK, listed=False), {"name"}),
     NEIGHBOURHOOD, "acting-user-not-listed"),
    ("R3-shell-without-share", consent_request(HOUSING_SHELL, {"name"}), NEIGHBOURHOOD,
     "shell-without-share"),
    ("R3-shell-with-share", consent_request(HOUSING_SHELL, {"name"}, shared_with_grantee=True),
     NEIGHBOURHOOD, "allowed"),
    ("R4-unknown-class", consent_request(SOCIAL_WORK, {"religion"}), NEIGHBOURHOOD, "unknown-class"),
    ("R5-consent-missing", consent_request(SOCIAL_WORK, {"name"}, consent=None), NEIGHBOURHOOD,
     "consent-missing"),
    ("R5-consent-wrong-case", consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, case="x")),
     NEIGHBOURHOOD, "consent-wrong-case"),
    ("R5-consent-revoked", consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, revoked=True)),
     NEIGHBOURHOOD, "consent-revoked"),
    ("R5-consent-not-yet-valid",
     consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, valid_from=NOW + timedelta(seconds=1))),
     NEIGHBOURHOOD, "consent-not-yet-valid"),
    ("R5-consent-expired", consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, valid_until=NOW)),
     NEIGHBOURHOOD, "consent-expired"),
    ("R5-consent-other-grantee",
     consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, parties=frozenset({"informal"}))),
     NEIGHBOURHOOD, "consent-does-not-cover-grantee"),
    ("R5-consent-names-partner",
     consent_request(SOCIAL_WORK, {"name"}, consent=replace(CONSENT, parties=frozenset(),
                                                             partners=frozenset({"social-work"}))),
     NEIGHBOURHOOD, "allowed"),
    ("R5-consent-other-class", consent_request(SOCIAL_WORK, {"contact"}), NEIGHBOURHOOD,
     "consent-does-not-cover-class"),
    ("R6-informal-official", consent_request(VOLUNTEERS, {"official"}), NEIGHBOURHOOD,
     "informal-class-not-allowed"),
    ("R6-informal-official-even-with-role",
     consent_request(replace(VOLUNTEERS, roles=frozenset({"professional-secrecy"})), {"official"}),
     NEIGHBOURHOOD, "informal-class-not-allowed"),
    ("R7-formal-official-without-secrecy", consent_request(SOCIAL_WORK, {"official"}), NEIGHBOURHOOD,
     "class-requires-role"),
    ("allow-bemoeizorg", bz_request(), OGGZ, "allowed"),
    ("R8-bemoeizorg-in-neighbourhood", bz_request(), NEIGHBOURHOOD, "bemoeizorg-not-in-oggz"),
    ("R8-bemoeizorg-disabled", bz_request(), replace(OGGZ, bemoeizorg_enabled=False),
     "bemoeizorg-disabled"),
    ("R9-bemoeizorg-without-role", bz_request(grantee=SOCIAL_WORK,
                                              bemoeizorg=replace(BZ, invoker=Person(partner="social-work", acting_user="x"))),
     OGGZ, "bemoeizorg-role-required"),
    ("R9-bemoeizorg-informal-with-role",
     bz_request(grantee=replace(BZ_TEAM, party="informal")), OGGZ, "bemoeizorg-role-required"),
    ("R9-bemoeizorg-no-invocation", bz_request(bemoeizorg=None), OGGZ, "bemoeizorg-missing"),
    ("R10-bemoeizorg-bad-ground", bz_request(bemoeizorg=replace(BZ, ground="curiosity")), OGGZ,
     "bemoeizorg-ground-invalid"),
    ("R10-bemoeizorg-no-justification", bz_request(bemoeizorg=replace(BZ, has_justification=False)),
     OGGZ, "bemoeizorg-justification-missing"),
    ("R11-four-eyes-missing", bz_request(bemoeizorg=replace(BZ, cosigners=())), OGGZ,
     "bemoeizorg-four-eyes-required"),
    ("R11-four-eyes-same-person",
     bz_request(bemoeizorg=replace(BZ, cosigners=((INVOKER, frozenset({"bemoeizorg"})),))), OGGZ,
     "bemoeizorg-same-person-cosign"),
    ("R11-four-eyes-cosigner-without-role",
     bz_request(bemoeizorg=replace(BZ, cosigners=((COSIGNER, frozenset()),))), OGGZ,
     "bemoeizorg-cosigner-without-role"),
    ("R11-four-eyes-off", bz_request(bemoeizorg=replace(BZ, cosigners=())),
     replace(OGGZ, four_eyes=False), "allowed"),
    ("R12-rate-limit", bz_request(bemoeizorg=replace(BZ, recent_by_person=3)), OGGZ,
     "bemoeizorg-rate-limit"),
    ("R12-under-rate-limit", bz_request(bemoeizorg=replace(BZ, recent_by_person=2)), OGGZ, "allowed"),
    ("R13-bemoeizorg-expired",
     bz_request(bemoeizorg=replace(BZ, invoked_at=NOW - timedelta(hours=72))), OGGZ,
     "bemoeizorg-expired"),
    ("R13-bemoeizorg-from-future",
     bz_request(bemoeizorg=replace(BZ, invoked_at=NOW + timedelta(minutes=1))), OGGZ,
     "bemoeizorg-expired"),
    ("R1-consult-before-bemoeizorg", bz_request(case_kind="consult"), OGGZ, "consult-has-no-identity"),
    ("R14-identity-erased", consent_request(SOCIAL_WORK, {"name"}, identity_erased=True),
     NEIGHBOURHOOD, "identity-erased"),
    ("R14-identity-erased-under-bemoeizorg", bz_request(identity_erased=True), OGGZ,
     "identity-erased"),
]


@pytest.mark.parametrize("request_, rules, reason", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_policy_row(request_: Request, rules: Rules, reason: str) -> None:
    decision = decide(request_, rules, now=NOW)
    assert decision.reason == reason, decision.message
    assert decision.allowed == (reason == "allowed")


def test_every_rule_has_a_denying_row() -> None:
    rows = {r[0].split("-")[0] for r in ROWS if r[3] != "allowed"}
    assert rows >= {f"R{i}" for i in range(1, 15)}


def test_denial_require_raises_policy_violation_with_reason() -> None:
    decision = decide(consent_request(VOLUNTEERS, {"official"}), NEIGHBOURHOOD, now=NOW)
    with pytest.raises(PolicyViolation) as info:
        decision.require()
    assert info.value.details == {"reason": "informal-class-not-allowed"}


def test_naive_now_is_malformed() -> None:
    with pytest.raises(MalformedError):
        decide(consent_request(SOCIAL_WORK, {"name"}), NEIGHBOURHOOD, now=NOW.replace(tzinfo=None))


def test_empty_class_set_is_malformed() -> None:
    with pytest.raises(MalformedError):
        decide(consent_request(SOCIAL_WORK, set()), NEIGHBOURHOOD, now=NOW)


def test_informal_classes_must_exist() -> None:
    with pytest.raises(MalformedError):
        Rules(network_kind="neighbourhood", informal_classes=frozenset({"nope"}))


ACTIONS = [
    ("formal-without-reason", dict(help_type="formal", informal_not_possible=None,
                                   supporting_professional=None, case_complex=False),
     "formal-action-needs-reason"),
    ("formal-blank-reason", dict(help_type="formal", informal_not_possible="  ",
                                 supporting_professional=None, case_complex=False),
     "formal-action-needs-reason"),
    ("formal-with-reason", dict(help_type="formal", informal_not_possible="no volunteer nearby",
                                supporting_professional=None, case_complex=False), "allowed"),
    ("formal-reason-x", dict(help_type="formal", informal_not_possible="x",
                             supporting_professional=None, case_complex=False),
     "formal-action-reason-says-nothing"),
    ("formal-reason-nvt", dict(help_type="formal", informal_not_possible=" n.v.t. ",
                               supporting_professional=None, case_complex=False),
     "formal-action-reason-says-nothing"),
    ("informal-complex-without-professional", dict(help_type="informal", informal_not_possible=None,
                                                   supporting_professional=None, case_complex=True),
     "informal-action-needs-professional"),
    ("informal-complex-with-professional", dict(help_type="informal", informal_not_possible=None,
                                                supporting_professional="social-work", case_complex=True),
     "allowed"),
    ("informal-simple", dict(help_type="informal", informal_not_possible=None,
                             supporting_professional=None, case_complex=False), "allowed"),
    ("combined", dict(help_type="combined", informal_not_possible=None,
                      supporting_professional=None, case_complex=True), "allowed"),
]


@pytest.mark.parametrize("kwargs, reason", [a[1:] for a in ACTIONS], ids=[a[0] for a in ACTIONS])
def test_informal_where_possible(kwargs: dict[str, object], reason: str) -> None:
    assert check_action(rules=NEIGHBOURHOOD, **kwargs).reason == reason  # type: ignore[arg-type]


def test_formal_reason_rule_can_be_switched_off() -> None:
    rules = replace(NEIGHBOURHOOD, formal_action_reason=False)
    assert check_action(help_type="formal", informal_not_possible=None, supporting_professional=None,
                        case_complex=False, rules=rules).allowed
    assert check_action(help_type="formal", informal_not_possible="x", supporting_professional=None,
                        case_complex=False, rules=rules).allowed


# -------------------------------------------------------------------------- a reason says something
# protocol.md §7: after trimming, >= REASON_MIN_LETTERS letters and >= REASON_MIN_WORDS different
# words of two or more letters.  The properties below pin the rule down from the outside.

#: Characters that are never letters: digits, punctuation, symbols, spaces.
non_letters = st.characters(blacklist_categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me"))
#: A word of Latin letters (so NFC and case folding leave distinct words distinct).
latin_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzëéèïöüĳ", min_size=2, max_size=12)
separators = st.text(alphabet=" \t\n.,;:-!?()0123456789/", min_size=1, max_size=3)


@pytest.mark.parametrize("text", ["x", "nvt", "n.v.t.", "...", "1234", "-", "bla bla bla",
                                  "te zwaar", "xxxxxxxxxxxxxxxxxxxx", "a b c d e f g h i j k",
                                  "Zorg zorg ZORG zorg", "\u00a0\u2003"])
def test_reason_that_says_nothing(text: str) -> None:
    assert reason_shortfall(text) is not None


@pytest.mark.parametrize("text", ["Medische zorg nodig.", "no volunteer nearby",
                                  "Wondzorg vraagt een verpleegkundige.", "Schulden te complex.",
                                  "cliënt heeft zorg nodig", "clie\u0308nt heeft zorg nodig"])
def test_reason_that_says_something(text: str) -> None:
    assert reason_shortfall(text) is None


@given(st.text(alphabet=non_letters, max_size=60))
def test_reason_without_letters_says_nothing(text: str) -> None:
    assert reason_shortfall(text) is not None


@given(st.text(max_size=60).filter(lambda t: sum(c.isalpha() for c in t) < REASON_MIN_LETTERS))
def test_reason_with_fewer_letters_than_the_minimum_says_nothing(text: str) -> None:
    assert reason_shortfall(text) is not None


@given(latin_word, st.lists(separators, min_size=1, max_size=6), st.booleans())
def test_one_word_repeated_says_nothing(word: str, seps: list[str], shout: bool) -> None:
    """However often one word is repeated (and in whatever case), it is one word."""
    text = "".join(f"{word.upper() if shout and i % 2 else word}{sep}"
                   for i, sep in enumerate(seps * 3))
    assert reason_shortfall(text) is not None


@given(latin_word, latin_word, separators)
def test_two_different_words_with_enough_letters_say_something(a: str, b: str, sep: str) -> None:
    if a == b or len(a) + len(b) < REASON_MIN_LETTERS:
        return
    assert reason_shortfall(f"{a}{sep}{b}") is None


@given(st.text(max_size=80), st.text(alphabet=" \t\n\r\u00a0", max_size=4),
       st.text(alphabet=" \t\n\r\u00a0", max_size=4))
def test_trimming_does_not_change_the_verdict(text: str, before: str, after: str) -> None:
    assert (reason_shortfall(before + text + after) is None) == (reason_shortfall(text) is None)


@given(st.lists(st.tuples(latin_word, separators), max_size=6))
def test_case_does_not_change_the_verdict(parts: list[tuple[str, str]]) -> None:
    text = "".join(w + sep for w, sep in parts)
    assert (reason_shortfall(text.upper()) is None) == (reason_shortfall(text) is None)


@given(st.text(max_size=80), st.text(max_size=40))
def test_saying_more_never_says_less(text: str, more: str) -> None:
    """A reason that says something still does with more words after it."""
    if reason_shortfall(text) is None:
        assert reason_shortfall(f"{text} {more}") is None


@given(st.text(max_size=80))
def test_formal_action_agrees_with_the_reason_rule(text: str) -> None:
    """check_action refuses a formal action exactly when its reason is blank or says nothing."""
    decision = check_action(help_type="formal", informal_not_possible=text,
                            supporting_professional=None, case_complex=False, rules=NEIGHBOURHOOD)
    assert decision.allowed == (reason_shortfall(text) is None)
    if not decision.allowed:
        assert decision.reason == ("formal-action-needs-reason" if not text.strip()
                                   else "formal-action-reason-says-nothing")


def test_unknown_help_type_is_malformed() -> None:
    with pytest.raises(MalformedError):
        check_action(help_type="magic", informal_not_possible=None, supporting_professional=None,
                     case_complex=False, rules=NEIGHBOURHOOD)


# --------------------------------------------------------------------------- one mapping


def _custom_policy(kind: str, **bemoeizorg: object) -> Policy:
    """``kind``'s default policy with every field the rules read moved off its default."""
    base = default_policy(kind)
    return replace(
        base, classes={**base.classes, "housing": ClassFields(fields=("landlord",))},
        informal_classes=("name", "housing"),
        restricted={"official": "professional-secrecy", "care": "professional-secrecy"},
        bemoeizorg=replace(base.bemoeizorg, **bemoeizorg), formal_action_reason=False)


#: (network kind, policy): every field of Rules takes more than one value over the table.
POLICIES = [
    ("oggz", default_policy("oggz")),
    ("neighbourhood", default_policy("neighbourhood")),
    ("oggz", _custom_policy("oggz", grounds=("nuisance",), four_eyes=False,
                            max_per_user_per_day=1, access_hours=24)),
    ("oggz", _custom_policy("oggz", enabled=False)),
    ("neighbourhood", _custom_policy("neighbourhood")),
]


def _client_and_server_rules(kind: str, policy: Policy) -> tuple[Rules, Rules]:
    """The rules each side derives from one signed genesis: the client from its JSON, as
    it folds it, the server from the verified genesis its directory holds."""
    coordinator = PartnerKeys.generate()
    envelope = make_genesis(coordinator, network=new_network_id(), name="Netwerk Noord",
                            kind=kind, created=NOW, server_log=Signer.generate().verify_key,
                            server_gate=BoxSecretKey.generate().public_key,
                            covenant=sha256(b"convenant"), policy=policy)
    verified = verify_genesis(envelope, fingerprint(coordinator.public.sign))
    server = server_rules_of(NetworkState(genesis=verified, envelope=envelope))
    client = client_rules_of(envelope["signed"]["policy"], envelope["signed"]["kind"])
    return client, server


@pytest.mark.parametrize(("kind", "policy"), POLICIES)
def test_client_and_server_derive_the_same_rules_from_one_policy(kind: str,
                                                                 policy: Policy) -> None:
    """One truth for policy: the client refuses early on the rules the server enforces."""
    client, server = _client_and_server_rules(kind, policy)
    assert client == server == Rules.of(policy, kind)


def test_the_policy_table_moves_every_rule() -> None:
    """Each field of Rules differs between two rows above, so a side that dropped or fixed
    a field would derive other rules on some row and fail the test above."""
    rules = [Rules.of(policy, kind) for kind, policy in POLICIES]
    for f in fields(Rules):
        assert len({repr(getattr(r, f.name)) for r in rules}) > 1, f.name


def test_rules_of_an_unknown_network_kind_is_malformed() -> None:
    with pytest.raises(MalformedError, match="network kind"):
        Rules.of(default_policy("neighbourhood"), "village")
