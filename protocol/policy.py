"""The release policy: one pure function, used by the server to enforce and by
the client to explain and refuse early (design §5, docs/protocol.md §6).

:func:`decide` takes everything it needs as plain, already-verified values —
the network's rules, the grantee's membership, the basis (consent or
bemoeizorg) and "now" — and returns a :class:`Decision`: allowed, or denied
with a stable reason code and an explanation a coordinator can act on.  It
never raises for a denial: a denial is a value the server writes to the audit
log.  Malformed *inputs* (an unknown basis, a naive datetime) raise
:class:`~schakel.protocol.errors.MalformedError`.

Rows of the policy (each a test in tests/test_policy.py):

==  =====================================================================
R1  identity is never released on a consult
R2  the grantee must be a current member of the case's network and, when its
    membership lists its users, the acting user must be one of them
R3  a shell partner needs a share of the case
R4  every requested class must exist in the network's policy
R5  consent basis: the consent must exist, be for this case, be in force
    (valid_from <= now < valid_until), not be revoked, name the grantee
    (as partner or by party type) and cover every requested class
R6  informal parties: at most the policy's informal classes
R7  formal parties: a restricted class needs its role
    (default ``official`` needs ``professional-secrecy``)
R8  bemoeizorg basis: only in oggz networks, only when the policy enables it
R9  bemoeizorg: only formal parties holding the ``bemoeizorg`` role
R10 bemoeizorg: a ground from the policy's list and a justification
R11 bemoeizorg: four-eyes co-sign by a *different person* holding the role,
    when the policy asks for it
R12 bemoeizorg: at most ``max_per_user_per_day`` invocations per person
R13 bemoeizorg: access expires ``access_hours`` after the invocation
R14 identity that was erased (AVG art. 17) is never released again;
    checked right after R1 (ADR 0034)
==  =====================================================================

:func:`check_action` applies design §5's "informal where possible,
professional where necessary" rule to actions in the anonymous layer; the
writer's client runs it before it sends an action and every reader's client on
every action it folds.  :func:`reason_shortfall` is its floor for a reason that
must say something (docs/protocol.md §7).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects import network

DEFAULT_CLASSES: tuple[str, ...] = ("name", "address", "contact", "official", "care")

NetworkKind = Literal["oggz", "neighbourhood"]


def _network_kind(kind: str) -> NetworkKind:
    if kind == "oggz":
        return "oggz"
    if kind == "neighbourhood":
        return "neighbourhood"
    raise MalformedError(f"unknown network kind {kind!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Rules:
    """The parts of a network's signed policy that the release decision reads.

    :meth:`of` is the one mapping from a network's policy to its rules: the server
    enforces with it and the client explains and refuses early with it, so both decide
    alike (tests/test_policy.py compares the two sides).
    """

    network_kind: NetworkKind
    classes: frozenset[str] = frozenset(DEFAULT_CLASSES)
    informal_classes: frozenset[str] = frozenset({"name", "address", "contact"})
    restricted: Mapping[str, str] = field(default_factory=lambda: {"official": "professional-secrecy"})
    bemoeizorg_enabled: bool = False
    bemoeizorg_grounds: frozenset[str] = frozenset()
    four_eyes: bool = True
    max_per_user_per_day: int = 3
    access_hours: int = 72
    formal_action_reason: bool = True

    def __post_init__(self) -> None:
        if self.network_kind not in ("oggz", "neighbourhood"):
            raise MalformedError(f"unknown network kind {self.network_kind!r}")
        if not self.informal_classes <= self.classes:
            raise MalformedError("informal classes must be classes of the network")

    @classmethod
    def of(cls, policy: network.Policy, network_kind: str) -> Rules:
        """The release rules of a network's verified policy and kind (protocol.md §N.2, §7)."""
        bemoeizorg = policy.bemoeizorg
        return cls(network_kind=_network_kind(network_kind), classes=frozenset(policy.classes),
                   informal_classes=frozenset(policy.informal_classes),
                   restricted=dict(policy.restricted), bemoeizorg_enabled=bemoeizorg.enabled,
                   bemoeizorg_grounds=frozenset(bemoeizorg.grounds),
                   four_eyes=bemoeizorg.four_eyes,
                   max_per_user_per_day=bemoeizorg.max_per_user_per_day,
                   access_hours=bemoeizorg.access_hours,
                   formal_action_reason=policy.formal_action_reason)


@dataclass(frozen=True, kw_only=True, slots=True)
class Person:
    """Who acts: a member organisation and the person acting for it (NEN 7513)."""

    partner: str
    acting_user: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Grantee:
    """The verified membership of the party that would receive identity.

    When a person of the partner acts (a release, an invocation), ``party`` and ``roles``
    are that acting user's (``schakel.protocol.objects.network.acting_party`` and
    ``acting_roles``: a volunteer of a mixed organisation acts in the informal party,
    without the formal-only roles), and ``listed`` is False for an acting user the
    membership's ``users`` list does not name.  When the partner as a whole is decided on
    (a grant), they are the membership's own."""

    partner: str
    network: str
    ring: Literal["core", "shell"]
    party: Literal["formal", "informal"]
    roles: frozenset[str] = frozenset()
    active: bool = True
    listed: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentFacts:
    """A verified consent record and whether it has been revoked."""

    consent: str
    case: str
    classes: frozenset[str]
    partners: frozenset[str]
    parties: frozenset[str]
    valid_from: datetime
    valid_until: datetime
    revoked: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BemoeizorgFacts:
    """A verified bemoeizorg invocation with its co-signers."""

    invoker: Person
    ground: str
    has_justification: bool
    invoked_at: datetime
    cosigners: tuple[tuple[Person, frozenset[str]], ...] = ()
    #: invocations by the same person in the 24 hours before this one
    recent_by_person: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """One requested release of identity classes of one case."""

    network: str
    case: str
    case_kind: Literal["case", "consult"]
    classes: frozenset[str]
    grantee: Grantee
    basis: Literal["consent", "bemoeizorg"]
    shared_with_grantee: bool = False
    consent: ConsentFacts | None = None
    bemoeizorg: BemoeizorgFacts | None = None
    #: the case's identity was erased (an ``identity-purge`` of kind erasure, §C.12)
    identity_erased: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed, or denied with a stable ``reason`` code and an explanation."""

    allowed: bool
    reason: str
    message: str

    def require(self) -> None:
        """Raise :class:`PolicyViolation` unless allowed (for callers that refuse early)."""
        if not self.allowed:
            raise PolicyViolation(self.message, details={"reason": self.reason})


ALLOW = Decision(True, "allowed", "release allowed by the network policy")


def _deny(reason: str, message: str) -> Decision:
    return Decision(False, reason, message)


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise MalformedError(f"{what} must be a timezone-aware datetime")
    return moment


def decide(request: Request, rules: Rules, *, now: datetime) -> Decision:
    """Decide one release.  Rows R1, R14, R2–R13 of the module docstring, in that
    order; the first row that fails names the denial."""
    now = _aware(now, "now")
    grantee = request.grantee
    classes = request.classes
    if not classes:
        raise MalformedError("a release names at least one class")
    if request.case_kind == "consult":                                              # R1
        return _deny("consult-has-no-identity",
                     "a consult is anonymous: it has no identity to release")
    if request.identity_erased:                                                    # R14
        return _deny("identity-erased",
                     "the person's identity in this case was erased: nothing is released")
    if grantee.network != request.network or not grantee.active:                   # R2
        return _deny("not-a-member", "the grantee is not a current member of this network")
    if not grantee.listed:                                                          # R2
        return _deny("acting-user-not-listed",
                     "the acting user is not one of the users the grantee's membership lists")
    if grantee.ring == "shell" and not request.shared_with_grantee:                # R3
        return _deny("shell-without-share",
                     "a shell partner receives identity only for a case shared with it")
    unknown = classes - rules.classes                                              # R4
    if unknown:
        return _deny("unknown-class", f"the network has no disclosure class {sorted(unknown)}")
    if request.basis == "consent":
        decision = _consent_rows(request, now)
    elif request.basis == "bemoeizorg":
        decision = _bemoeizorg_rows(request, rules, now)
    else:
        raise MalformedError(f"unknown basis {request.basis!r}")
    if not decision.allowed:
        return decision
    if request.basis == "consent":
        if grantee.party == "informal":                                            # R6
            extra = classes - rules.informal_classes
            if extra:
                return _deny("informal-class-not-allowed",
                             f"informal parties may receive at most "
                             f"{sorted(rules.informal_classes)}; refused {sorted(extra)}")
        else:                                                                      # R7
            for cls in sorted(classes):
                role = rules.restricted.get(cls)
                if role and role not in grantee.roles:
                    return _deny("class-requires-role",
                                 f"class {cls!r} needs the {role!r} role, which the grantee lacks")
    return ALLOW


def _consent_rows(request: Request, now: datetime) -> Decision:                    # R5
    consent = request.consent
    grantee = request.grantee
    if consent is None:
        return _deny("consent-missing", "no consent is recorded for this release")
    if consent.case != request.case:
        return _deny("consent-wrong-case", "the consent was given for another case")
    if consent.revoked:
        return _deny("consent-revoked", "the person revoked this consent")
    if now < _aware(consent.valid_from, "valid_from"):
        return _deny("consent-not-yet-valid", "the consent is not yet in force")
    if now >= _aware(consent.valid_until, "valid_until"):
        return _deny("consent-expired", "the consent has expired")
    if grantee.partner not in consent.partners and grantee.party not in consent.parties:
        return _deny("consent-does-not-cover-grantee",
                     "the consent does not name this partner or its party type")
    missing = request.classes - consent.classes
    if missing:
        return _deny("consent-does-not-cover-class",
                     f"the consent does not cover {sorted(missing)}")
    return ALLOW


def _bemoeizorg_rows(request: Request, rules: Rules, now: datetime) -> Decision:
    facts = request.bemoeizorg
    grantee = request.grantee
    if rules.network_kind != "oggz":                                                # R8
        return _deny("bemoeizorg-not-in-oggz",
                     "bemoeizorg exists only in oggz networks; this network needs consent")
    if not rules.bemoeizorg_enabled:
        return _deny("bemoeizorg-disabled", "this network's policy does not allow bemoeizorg")
    if "bemoeizorg" not in grantee.roles or grantee.party != "formal":              # R9
        return _deny("bemoeizorg-role-required",
                     "only formal parties holding the bemoeizorg role may invoke it")
    if facts is None or facts.invoker.partner != grantee.partner:
        return _deny("bemoeizorg-missing", "no bemoeizorg invocation by the grantee")
    if facts.ground not in rules.bemoeizorg_grounds:                                # R10
        return _deny("bemoeizorg-ground-invalid",
                     "the ground is not one of the network policy's bemoeizorg grounds")
    if not facts.has_justification:
        return _deny("bemoeizorg-justification-missing",
                     "a written justification for the auditors is required")
    if rules.four_eyes:                                                             # R11
        if not facts.cosigners:
            return _deny("bemoeizorg-four-eyes-required",
                         "the policy requires a co-sign by a second bemoeizorg role-holder")
        if not any(person != facts.invoker and "bemoeizorg" in roles
                   for person, roles in facts.cosigners):
            if any(person == facts.invoker for person, _ in facts.cosigners):
                return _deny("bemoeizorg-same-person-cosign",
                             "four eyes means two people: the invoker cannot co-sign")
            return _deny("bemoeizorg-cosigner-without-role",
                         "the co-signer does not hold the bemoeizorg role")
    if facts.recent_by_person >= rules.max_per_user_per_day:                        # R12
        return _deny("bemoeizorg-rate-limit",
                     f"at most {rules.max_per_user_per_day} bemoeizorg invocations per person "
                     "per 24 hours")
    invoked = _aware(facts.invoked_at, "invoked_at")
    if now >= invoked + timedelta(hours=rules.access_hours) or now < invoked:       # R13
        return _deny("bemoeizorg-expired",
                     f"bemoeizorg access lasts {rules.access_hours} hours from the invocation")
    return ALLOW


#: A reason says something (protocol.md §7) when it holds at least this many letters...
REASON_MIN_LETTERS = 10
#: ...and at least this many different words of two or more letters.
REASON_MIN_WORDS = 2


def _words(text: str) -> list[str]:
    """The runs of letters (Unicode category L) and combining marks (M) of ``text``."""
    words, current = [], []
    for ch in text:
        if unicodedata.category(ch)[0] in "LM":
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def _letters(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


def reason_shortfall(text: str) -> str | None:
    """What ``text`` lacks to count as a reason that says something, or None when it
    says something (protocol.md §7).

    After trimming, a reason holds at least :data:`REASON_MIN_LETTERS` letters and at
    least :data:`REASON_MIN_WORDS` *different* words (compared after NFC and case
    folding), a word being a run of letters and combining marks with two letters or
    more.  So ``"x"``, ``"nvt"``, ``"n.v.t."``, ``"..."``, ``"1234"`` and ``"bla bla bla"``
    say nothing, and ``"Medische zorg nodig."`` does.  A floor against placeholders,
    not a judge of content: it is written for languages that separate words with spaces.
    """
    if not isinstance(text, str):
        raise MalformedError("a reason is text")
    text = text.strip()
    if not text:
        return "it is empty"
    letters = _letters(text)
    words = {unicodedata.normalize("NFC", w).casefold() for w in _words(text)
             if _letters(w) >= 2}
    if letters < REASON_MIN_LETTERS or len(words) < REASON_MIN_WORDS:
        return (f"a reason needs at least {REASON_MIN_LETTERS} letters in at least "
                f"{REASON_MIN_WORDS} different words; this one has {letters} letter(s) in "
                f"{len(words)} word(s)")
    return None


def check_action(*, help_type: str, informal_not_possible: str | None,
                 supporting_professional: str | None, case_complex: bool,
                 rules: Rules) -> Decision:
    """Design §5: "informal where possible, professional where necessary".

    A formal action states why informal help was not possible (when the policy
    asks), and the reason must say something (:func:`reason_shortfall`); an
    informal action on a case marked complex names the professional who
    supports the volunteer.  A combined action needs neither.
    """
    if help_type not in ("informal", "formal", "combined"):
        raise MalformedError(f"unknown help type {help_type!r}")
    if help_type == "formal" and rules.formal_action_reason:
        if not (informal_not_possible or "").strip():
            return _deny("formal-action-needs-reason",
                         "a formal action must say why informal help was not possible")
        shortfall = reason_shortfall(informal_not_possible or "")
        if shortfall is not None:
            return _deny("formal-action-reason-says-nothing",
                         f"the reason informal help was not possible must say something: "
                         f"{shortfall}")
    if help_type == "informal" and case_complex and not supporting_professional:
        return _deny("informal-action-needs-professional",
                     "an informal action on a complex case names the supporting professional")
    return Decision(True, "allowed", "action fits the network policy")


__all__ = ["DEFAULT_CLASSES", "Rules", "Person", "Grantee", "ConsentFacts", "BemoeizorgFacts",
           "Request", "Decision", "ALLOW", "decide", "check_action", "reason_shortfall",
           "REASON_MIN_LETTERS", "REASON_MIN_WORDS"]
