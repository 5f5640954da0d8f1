"""The Dutch case-note corpus of the PII guard, and how it is measured.

``tuning.txt`` and ``heldout.txt`` hold one sentence per line with the identity in it marked
as ``[[kind:text]]`` (``N`` a person's name, ``S`` a street address, or the value of any other
:class:`schakel.protocol.pii.Kind`); ``#`` lines are comments.  :func:`load` strips the marks and keeps
the spans; :func:`measure` runs a scanner over a part and counts (README.md beside this file).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from schakel.protocol.pii import Finding, Kind

PARTS = ("tuning", "heldout")
_ALIASES = {"N": Kind.PERSON_NAME, "S": Kind.STREET_ADDRESS}
_MARK = re.compile(r"\[\[([A-Za-z_]+):(.+?)\]\]")


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: tuple[tuple[Kind, int, int], ...]   # (kind, start, end), end exclusive
    line: int


def parse(source: str) -> list[Sentence]:
    out = []
    for number, raw in enumerate(source.splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        text, spans, pos = "", [], 0
        for m in _MARK.finditer(raw):
            text += raw[pos:m.start()]
            kind = _ALIASES.get(m.group(1)) or Kind(m.group(1))
            spans.append((kind, len(text), len(text) + len(m.group(2))))
            text += m.group(2)
            pos = m.end()
        text += raw[pos:]
        if "[[" in text or "]]" in text:
            raise ValueError(f"line {number}: unbalanced mark")
        out.append(Sentence(text, tuple(spans), number))
    return out


def load(part: str) -> list[Sentence]:
    if part not in PARTS:
        raise ValueError(f"no corpus part {part!r}")
    return parse(resources.files(__name__).joinpath(f"{part}.txt").read_text(encoding="utf-8"))


IDENTITY = (Kind.PERSON_NAME, Kind.STREET_ADDRESS)


@dataclass(frozen=True)
class Figures:
    sentences: int
    identity_spans: int          # labelled name and street spans
    found_spans: int             # ... overlapped by a finding of the same kind
    recall_by_kind: dict[str, float]
    clean_sentences: int         # sentences with no label at all
    false_alarms: int            # ... that got any finding
    findings: int                # name and street findings
    true_findings: int           # ... overlapping a label of their kind
    other_spans: int             # labels of the other kinds
    other_found: int             # ... overlapped by a finding of their kind
    misses: tuple[str, ...]      # "line N: kind 'text'" for every missed label
    alarms: tuple[str, ...]      # "line N: kind 'text'" for every finding on no label

    @property
    def recall(self) -> float:
        return self.found_spans / self.identity_spans if self.identity_spans else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.clean_sentences if self.clean_sentences else 0.0

    @property
    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 1.0

    def as_dict(self) -> dict[str, object]:
        return {"sentences": self.sentences, "identity_spans": self.identity_spans,
                "recall": round(self.recall, 4), "recall_by_kind": self.recall_by_kind,
                "clean_sentences": self.clean_sentences, "false_alarms": self.false_alarms,
                "false_alarm_rate": round(self.false_alarm_rate, 4),
                "span_precision": round(self.precision, 4),
                "other_kinds_found": f"{self.other_found}/{self.other_spans}"}


def _overlaps(f: Finding, kind: Kind, start: int, end: int) -> bool:
    return f.kind is kind and f.start < end and start < f.end


def measure(sentences: Sequence[Sentence],
            scan: Callable[[str], list[Finding]]) -> Figures:
    """Recall: share of labelled name/street spans overlapped by a finding of their kind.
    False alarms: share of sentences without any label that get any finding.  Precision:
    share of name/street findings that overlap a label of their kind."""
    per_kind = {k: [0, 0] for k in IDENTITY}
    clean = alarms_n = findings_n = true_n = other = other_found = 0
    misses, alarms = [], []
    for s in sentences:
        found = scan(s.text)
        if not s.spans:
            clean += 1
            alarms_n += bool(found)
        for kind, start, end in s.spans:
            hit = any(_overlaps(f, kind, start, end) for f in found)
            if kind in per_kind:
                per_kind[kind][0] += 1
                per_kind[kind][1] += hit
            else:
                other += 1
                other_found += hit
            if not hit:
                misses.append(f"line {s.line}: {kind.value} {s.text[start:end]!r}")
        for f in found:
            labelled = any(_overlaps(f, k, a, b) for k, a, b in s.spans)
            if f.kind in per_kind:
                findings_n += 1
                true_n += labelled
            if not labelled:
                alarms.append(f"line {s.line}: {f.kind.value} {s.text[f.start:f.end]!r}")
    total = sum(n for n, _ in per_kind.values())
    return Figures(
        sentences=len(sentences), identity_spans=total,
        found_spans=sum(h for _, h in per_kind.values()),
        recall_by_kind={k.value: round(h / n, 4) if n else 1.0 for k, (n, h) in per_kind.items()},
        clean_sentences=clean, false_alarms=alarms_n, findings=findings_n, true_findings=true_n,
        other_spans=other, other_found=other_found, misses=tuple(misses), alarms=tuple(alarms))
