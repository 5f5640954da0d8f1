"""The threat model stays honest (style.md: a test that fails when the docs stop covering
what they claim).

docs/threat-model.md maps every threat to the tests that show its defence.  These tests fail
when the document cites a test that does not exist, when a cited parametrised case is no
longer collected, or when one of the six adversaries loses its section.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
THREAT_MODEL = ROOT / "docs" / "threat-model.md"

#: A citation: ``tests/test_x.py::test_y``, optionally followed by a parametrised id ``[...]``.
CITATION = re.compile(
    r"tests/(?P<file>test_[A-Za-z0-9_]+\.py)::(?P<func>test_[A-Za-z0-9_]+)(?:\[(?P<id>[^\]`\s|]+)\])?")
#: Anything that looks like an attempt at a citation, to catch ones the strict pattern misses.
LOOSE_CITATION = re.compile(r"tests/test_[^\s`|,]*::[^\s`|,]*")

#: The six adversaries of docs/threat-model.md; each needs a heading of its own.
ADVERSARIES = ("curious server", "lying server", "malicious member", "removed member",
               "stolen laptop", "outsider")


def _text() -> str:
    return THREAT_MODEL.read_text(encoding="utf-8")


def _citations() -> list[re.Match[str]]:
    return list(CITATION.finditer(_text()))


@lru_cache(maxsize=None)
def _module_test_functions(filename: str) -> frozenset[str]:
    """Module-level test functions of ``tests/<filename>``: what ``file::name`` addresses."""
    path = TESTS / filename
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and node.name.startswith("test_"))


def _headings() -> list[tuple[int, int, str]]:
    """(line number, level, lower-case title) of every Markdown heading."""
    out = []
    for number, line in enumerate(_text().splitlines()):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
        if m:
            out.append((number, len(m.group(1)), m.group(2).lower()))
    return out


def test_threat_model_cites_tests() -> None:
    assert len(_citations()) >= 50, "docs/threat-model.md should map threats to tests"


def test_threat_model_cites_only_existing_tests() -> None:
    missing = []
    for m in _citations():
        path = TESTS / m["file"]
        if not path.is_file():
            missing.append(f"{m[0]} (no file tests/{m['file']})")
        elif m["func"] not in _module_test_functions(m["file"]):
            missing.append(f"{m[0]} (no function {m['func']} in tests/{m['file']})")
    assert not missing, "docs/threat-model.md cites tests that do not exist:\n" + "\n".join(
        sorted(set(missing)))


def test_every_citation_has_the_exact_form() -> None:
    strict = {m.start() for m in _citations()}
    sloppy = [m[0] for m in LOOSE_CITATION.finditer(_text()) if m.start() not in strict]
    assert not sloppy, ("write citations as tests/test_<file>.py::test_<function>[<id>]:\n"
                        + "\n".join(sloppy))


def test_cited_parametrised_cases_are_collected() -> None:
    """A bracketed id must name a case pytest collects today (ids renamed in a test's
    table would otherwise leave the document pointing at nothing)."""
    wanted = {f"tests/{m['file']}::{m['func']}[{m['id']}]" for m in _citations() if m["id"]}
    if not wanted:
        pytest.skip("no parametrised citations")
    files = sorted({w.split("::")[0] for w in wanted})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    collected = set(result.stdout.split())
    missing = sorted(wanted - collected)
    assert not missing, "docs/threat-model.md cites parametrised cases pytest does not collect:\n" \
        + "\n".join(missing)


@pytest.mark.parametrize("adversary", ADVERSARIES)
def test_threat_model_has_a_section_per_adversary(adversary: str) -> None:
    headings = _headings()
    found = [(n, level) for n, level, title in headings if adversary in title]
    assert found, f"docs/threat-model.md has no section heading for the {adversary}"
    start, level = found[0]
    end = next((n for n, lvl, _ in headings if n > start and lvl <= level), None)
    body = "\n".join(_text().splitlines()[start:end])
    assert re.search(r"^\|.*\bStatus\b.*\|\s*$", body, re.MULTILINE), (
        f"the {adversary} section has no threat table with a Status column")
    assert CITATION.search(body), f"the {adversary} section cites no test"


# --- docs/protocol.md covers what the code defines --------------------------------------

PROTOCOL_MD = ROOT / "docs" / "protocol.md"


def test_protocol_md_names_every_wire_object_type() -> None:
    from protocol.schema import known_types

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    missing = [t for t in known_types() if f"`{t}`" not in text]
    assert not missing, f"docs/protocol.md does not describe {missing}"


def test_protocol_md_lists_every_error_code() -> None:
    import protocol.errors as errors

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.ProtocolError)}
    missing = sorted(c for c in codes if f"`{c}`" not in text)
    assert not missing, f"docs/protocol.md §12 does not list {missing}"


def test_protocol_md_lists_every_policy_reason_code() -> None:
    import ast as _ast

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    tree = _ast.parse((ROOT / "protocol" / "policy.py").read_text(encoding="utf-8"))
    reasons = {node.args[0].value for node in _ast.walk(tree)
               if isinstance(node, _ast.Call) and getattr(node.func, "id", None) == "_deny"
               and isinstance(node.args[0], _ast.Constant)}
    assert len(reasons) >= 20
    missing = sorted(r for r in reasons if f"`{r}`" not in text)
    assert not missing, f"docs/protocol.md §7 does not list {missing}"


# --- section references name sections that exist ------------------------------------------

DOCS = ROOT / "docs"
IMPLEMENTATION_MD = DOCS / "implementation.md"

#: A section reference: "§4.6.2", "§10", "§N.1", "§C.10.1", or a whole letter group "§N".
SECTION_REF = r"§(?:[A-Z](?:\.\d+)*(?![\w.]\w)|\d+(?:\.\d+)*(?![\w]))"
#: A run of references that share one qualifier: "§2.2, §2.1", "§16.4–§16.5", "§8 and §9".
REF_RUN = re.compile(rf"{SECTION_REF}(?:(?:,\s*|\s*[–-]\s*|\s+(?:and|or|to)\s+){SECTION_REF})*")
#: Words right before a run that make it a reference into another document (protocol.md §1).
EXTERNAL = re.compile(r"\b(?:design(?: brief)?|RFC \d{3,5}|report|ADR \d{4}|style\.md)\s*$",
                      re.IGNORECASE)
#: Words right before a run that make it a reference into docs/protocol.md from elsewhere.
INTO_PROTOCOL = re.compile(r"\bprotocol(?:\.md)?`?\s*$")
#: Every "§" glued to something, to catch references the strict form misses ("§Header").
ANY_SECTION_SIGN = re.compile(r"§\S+")
#: Files whose citations of a protocol.md section must name one that exists.
CITING = ("protocol/**/*.py", "protocol/schemas/*.json", "keys/*.py", "server/**/*.py",
          "client/**/*.py", "tests/*.py", "bench/*.py", "docs/**/*.md", "*.md")


@lru_cache(maxsize=None)
def _sections(path: Path) -> frozenset[str]:
    """The section numbers of a document's headings ("4.6.2", "N.1"), and each letter
    group ("N") that has numbered sections."""
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(\d+(?:\.\d+)*|[A-Z](?:\.\d+)+)\.?\s", line)
        if m:
            out.add(m.group(1))
            if m.group(1)[0].isalpha():
                out.add(m.group(1)[0])
    return frozenset(out)


def _references(text: str) -> list[tuple[int, str, str]]:
    """(line, the words before, reference) of every section reference in ``text``;
    references of one run share the words before the run."""
    out = []
    for run in REF_RUN.finditer(text):
        before = " ".join(text[max(0, run.start() - 60):run.start()].split())
        line = text.count("\n", 0, run.start()) + 1
        out += [(line, before, ref[1:]) for ref in re.findall(SECTION_REF, run[0])]
    return out


def _unresolved(path: Path, *, own: bool) -> list[str]:
    """References of ``path`` that name no section. Qualified by another document: not
    checked here. Qualified by "protocol.md", or a letter section (N.1): a section of
    docs/protocol.md. Otherwise a section of the document itself when ``own``, else of
    docs/protocol.md."""
    text = path.read_text(encoding="utf-8")
    bad = []
    for line, before, ref in _references(text):
        if EXTERNAL.search(before):
            continue
        into_protocol = bool(INTO_PROTOCOL.search(before)) or not own or ref[0].isalpha()
        target = PROTOCOL_MD if into_protocol else path
        if ref not in _sections(target):
            bad.append(f"{path.relative_to(ROOT)}:{line}: §{ref} (no such section in "
                       f"{target.relative_to(ROOT)})")
    strict = {m.start() for m in re.finditer(SECTION_REF, text)}
    bad += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]!r} "
            f"is not a section reference (write §4.6.2, §N.1 or §10)"
            for m in ANY_SECTION_SIGN.finditer(text) if m.start() not in strict]
    return bad


def test_protocol_md_section_references_name_existing_sections() -> None:
    """Every §X of the specification names one of its headings; references to other
    documents name the document ("design §5", "RFC 9421 §2.3", "ADR 0004")."""
    bad = _unresolved(PROTOCOL_MD, own=True)
    assert not bad, "docs/protocol.md refers to sections that do not exist:\n" + "\n".join(bad)


def test_threat_model_section_references_name_existing_sections() -> None:
    """A bare §5.2 is a section of the threat model; §C.3, §N.9 and "protocol.md §4.6.3"
    are sections of the specification."""
    bad = _unresolved(THREAT_MODEL, own=True)
    assert not bad, "docs/threat-model.md refers to sections that do not exist:\n" + "\n".join(bad)


def test_implementation_guide_references_name_existing_protocol_sections() -> None:
    bad = _unresolved(IMPLEMENTATION_MD, own=False)
    assert not bad, "docs/implementation.md refers to sections that do not exist:\n" + "\n".join(bad)


def test_code_and_docs_cite_existing_protocol_sections() -> None:
    """A comment, docstring, schema title or document that cites a section of protocol.md
    (style.md: comments cite the section they implement) names a section that exists."""
    bad = []
    for pattern in CITING:
        for path in sorted(ROOT.glob(pattern)):
            if ".venv" in path.parts or path in (PROTOCOL_MD, THREAT_MODEL, IMPLEMENTATION_MD):
                continue
            text = path.read_text(encoding="utf-8")
            for line, before, ref in _references(text):
                if INTO_PROTOCOL.search(before) and ref not in _sections(PROTOCOL_MD):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: protocol.md §{ref}")
    assert not bad, "citations of sections docs/protocol.md does not have:\n" + "\n".join(
        sorted(set(bad)))
