"""The pure rules of the person's access request (protocol/access.py; docs/protocol.md
§15.7, §3.6): one test per rule."""

from __future__ import annotations

import datetime

import pytest

from schakel.protocol import access, envelopes
from schakel.protocol.crypto import MatchKey
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.audit import AuditActor, AuditEntry

FAST = {"opslimit": 1, "memlimit": 8192, "size": 4}
TODAY = datetime.date(2026, 1, 1)


@pytest.mark.parametrize("given, normalised", [
    ("111222333", "111222333"), ("111.222.333", "111222333"), (" 111 222 333 ", "111222333"),
    ("12345611", "012345611")])
def test_a_bsn_is_nine_digits_passing_the_elfproef(given: str, normalised: str) -> None:
    assert access.check_bsn(given) == normalised


@pytest.mark.parametrize("bad", ["111222334", "000000000", "1234567", "1112223330",
                                 "11122233x", "１１１２２２３３３", "", "1" * 40])
def test_a_bsn_failing_the_elfproef_or_its_form_is_refused_without_repeating_it(
        bad: str) -> None:
    with pytest.raises(MalformedError) as refused:
        access.check_bsn(bad)
    assert refused.value.details == {"field": "bsn"}
    if bad:
        assert bad not in refused.value.message and bad not in repr(refused.value.details)


@pytest.mark.parametrize("bad", ["1946-02-30", "04-05-1946", "1946-5-4", "2026-01-02",
                                 "1849-12-31", "", "1946-05-04T00:00:00"])
def test_a_birth_date_is_a_real_date_up_to_today(bad: str) -> None:
    assert access.check_birth_date("1946-05-04", today=TODAY) == "1946-05-04"
    with pytest.raises(MalformedError):
        access.check_birth_date(bad, today=TODAY)


def test_the_report_shows_the_bsn_masked() -> None:
    assert access.mask_bsn("111222333") == "******333"


def test_lookup_tokens_equal_the_tokens_a_case_carries_under_each_epochs_key() -> None:
    """The lookup's tokens are protocol.md §3.6's, per epoch: the same bytes a client put
    beside the case header when it created the case under that epoch."""
    keys = {1: MatchKey.generate(), 2: MatchKey.generate()}
    tokens = access.lookup_tokens(keys, bsn="111222333", birth_date="1946-05-04",
                                  family_name="de Vries", **FAST)
    assert [(t.epoch, t.kind) for t in tokens] == [
        (1, "bsn"), (1, "name-dob"), (2, "bsn"), (2, "name-dob")]
    for t in tokens:
        value = "111222333" if t.kind == "bsn" else "devries|1946-05-04"
        assert t.token == envelopes.blind_index(keys[t.epoch], t.kind, value, **FAST)
        assert set(t.to_json()) == {"kind", "token"}          # the epoch stays here
    only_bsn = access.lookup_tokens(keys, bsn="111222333", birth_date="1946-05-04", **FAST)
    assert [t.kind for t in only_bsn] == ["bsn", "bsn"]


def test_lookups_are_batched_within_the_bound() -> None:
    keys = {e: MatchKey.generate() for e in range(1, 21)}
    tokens = access.lookup_tokens(keys, bsn="111222333", birth_date="1946-05-04",
                                  family_name="Jansen", **FAST)
    batches = access.batches(tokens)
    assert [len(b) for b in batches] == [access.MAX_LOOKUP_TOKENS, 40 - access.MAX_LOOKUP_TOKENS]
    assert [t for b in batches for t in b] == tokens


def test_a_match_only_by_another_epochs_token_is_a_collision() -> None:
    keys = {1: MatchKey.generate(), 2: MatchKey.generate()}
    sent = access.lookup_tokens(keys, bsn="111222333", birth_date="1946-05-04",
                                family_name="de Vries", **FAST)
    assert access.epoch_of_match(sent, [0, 1], case_epoch=1) == ["bsn", "name-dob"]
    assert access.epoch_of_match(sent, [0], case_epoch=2) == []
    assert access.epoch_of_match(sent, [0, 3], case_epoch=2) == ["name-dob"]
    for bad in ([4], [-1], [True]):
        with pytest.raises(MalformedError):
            access.epoch_of_match(sent, bad, case_epoch=1)


ACTOR = AuditActor(partner="a" * 42 + "A", acting_user="regie-1", role="coordinator",
                   organisation="Gemeente Amersfoort, regie")


def _lookup(**changes: object) -> AuditEntry:
    fields: dict[str, object] = dict(network="A" * 22, index=3, salt="B" * 21 + "A",
                                     time="2026-01-01T10:00:00Z", actor=ACTOR, action="lookup",
                                     basis="policy", outcome="allow", reason="access-request",
                                     review_required=False, emergency=False)
    fields.update(changes)
    return AuditEntry(**fields)     # type: ignore[arg-type]


def test_a_lookup_entry_names_its_cases_and_no_case_or_subject() -> None:
    assert _lookup().cases is None
    assert _lookup(cases=("C" * 21 + "A",)).cases == ("C" * 21 + "A",)
    for bad in ({"case": "C" * 21 + "A"}, {"subject": "a" * 42 + "A"}, {"basis": "consent"},
                {"outcome": "deny"}):
        with pytest.raises(MalformedError):
            _lookup(**bad)
    with pytest.raises(MalformedError):
        _lookup(action="grant", cases=("C" * 21 + "A",))
    with pytest.raises(MalformedError):
        _lookup(action="read")                  # a read always names its cases
