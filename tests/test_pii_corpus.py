"""The PII guard measured on the Dutch case-note corpus (tests/pii_corpus/, protocol.md
§8.5.7, §8.5.8): recall on names and street addresses at least 0.95 and false alarms on
clean notes at most 0.05, on the tuning part and on the held-out part alike.  The figures
are printed (``pytest -s``) and recorded by bench/bench_pii.py in the README."""

from __future__ import annotations

import pytest

from schakel.protocol.pii import Finding, Kind, scan
from tests.pii_corpus import PARTS, Figures, load, measure

MIN_RECALL = 0.95
MAX_FALSE_ALARMS = 0.05


@pytest.fixture(scope="module", params=PARTS)
def figures(request: pytest.FixtureRequest) -> tuple[str, Figures]:
    part = request.param
    result = measure(load(part), scan)
    print(f"\n{part}: {result.as_dict()}")
    for line in result.misses + result.alarms:
        print(f"  {line}")
    return part, result


def test_corpus_is_large_enough_and_mixed() -> None:
    parts = {part: load(part) for part in PARTS}
    assert sum(len(s) for s in parts.values()) >= 200
    for sentences in parts.values():
        clean = sum(not s.spans for s in sentences)
        assert clean >= 40 and len(sentences) - clean >= 40


def test_recall_on_names_and_street_addresses(figures: tuple[str, Figures]) -> None:
    part, f = figures
    assert f.recall >= MIN_RECALL, f"{part}: recall {f.recall:.3f}; missed: {f.misses}"
    for kind, recall in f.recall_by_kind.items():
        assert recall >= MIN_RECALL, f"{part}: {kind} recall {recall:.3f}"


def test_false_alarms_on_clean_notes(figures: tuple[str, Figures]) -> None:
    part, f = figures
    assert f.false_alarm_rate <= MAX_FALSE_ALARMS, (
        f"{part}: {f.false_alarms} of {f.clean_sentences} clean sentences flagged: {f.alarms}")


def test_the_other_identifiers_in_the_corpus_are_still_found(
        figures: tuple[str, Figures]) -> None:
    _, f = figures
    assert f.other_spans > 0 and f.other_found == f.other_spans


def test_the_measure_counts_what_it_says() -> None:
    """The metric itself: a scanner that finds nothing has recall 0 and no false alarms; one
    that flags every character has recall 1 and only false alarms."""
    sentences = load("tuning")
    nothing = measure(sentences, lambda text: [])
    assert nothing.recall == 0.0 and nothing.false_alarm_rate == 0.0
    assert nothing.precision == 1.0
    assert len(nothing.misses) == nothing.identity_spans + nothing.other_spans

    def everything(text: str) -> list[Finding]:
        return [Finding(kind=k, start=0, end=len(text))
                for k in (Kind.PERSON_NAME, Kind.STREET_ADDRESS)] if text else []
    all_of_it = measure(sentences, everything)
    assert all_of_it.recall == 1.0 and all_of_it.false_alarm_rate == 1.0
