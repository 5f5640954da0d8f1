"""The documents stay honest (style.md: a test that fails when the docs stop covering what
they claim).

docs/threat-model.md maps every threat to the tests that show its defence.  These tests fail
when the document cites a test that does not exist, when a cited parametrised case is no
longer collected, when one of the six adversaries loses its section, when a row's Status and
its cited tests disagree, or when an id is given twice or named without a row.
docs/protocol.md must name every wire object, error code and policy reason code the code
defines; the specification, the threat model and the implementation guide cite only sections
that exist and name no issue, and neither do the code's docstrings and comments.
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

#: A citation: ``tests/test_x.py::test_y``, optionally followed by a parametrised id ``[...]``
#: exactly as pytest prints it (spaces included: citations stand between backticks).
CITATION = re.compile(
    r"tests/(?P<file>test_[A-Za-z0-9_]+\.py)::(?P<func>test_[A-Za-z0-9_]+)(?:\[(?P<id>[^\]`|\n]+)\])?")
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
    collected = {line.strip() for line in result.stdout.splitlines()}
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
    from schakel.protocol.schema import known_types

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    missing = [t for t in known_types() if f"`{t}`" not in text]
    assert not missing, f"docs/protocol.md does not describe {missing}"


def test_protocol_md_lists_every_error_code() -> None:
    import schakel.protocol.errors as errors

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
          "client/**/*.py", "cli/**/*.py", "tests/*.py", "bench/*.py", "docs/**/*.md", "*.md")


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


# --- every threat row's Status agrees with the tests it cites -----------------------------

#: An issue named by its number: "issue 4", "issues 3 and 4", "issue #11".
ISSUE = re.compile(r"\bissues?\s+#?\d+|\bissue\s*#\d+", re.IGNORECASE)
#: The Status values of docs/threat-model.md §1, each either alone or followed by an
#: explanation after ": ", ". ", "; ", ", " or " for ".
STATUS = re.compile(
    r"^(?P<kind>tested \(server and client\)|tested \(server\)|tested \(client\)|tested"
    r"|protocol primitive tested; (?P<caller>.+?)|not built; no test yet"
    r"|not defended \((?P<risks>RR-\d+(?:, RR-\d+)*)\))(?:$|[:.;,] | for )")
#: A test module drives the running server when it imports the server harness or the app;
#: it runs real partners against the real server when it imports the client harness (which
#: starts the real server for them) or the tampering proxy. What a module imports says what
#: its tests can show, whatever the module is called.
SERVER_HARNESS = re.compile(r"^from (?:tests\.server_harness|schakel\.server\.app"
                            r"|schakel\.server\.witness\.app) import", re.MULTILINE)
CLIENT_HARNESS = re.compile(r"^from tests\.(?:client_harness|tamper_proxy) import", re.MULTILINE)


def _table_rows(section: str) -> list[tuple[int, list[str]]]:
    """(line, cells) of every table row of the threat model whose first cell is a threat id
    (CS-1, LS-24, ...), within the lines of ``section`` ("adversaries" or "gaps")."""
    lines = _text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## 5."))
    gaps = next(i for i, line in enumerate(lines) if line.startswith("## 7."))
    end = next((i for i, line in enumerate(lines) if i > gaps and line.startswith("## ")),
               len(lines))
    span = range(start, gaps) if section == "adversaries" else range(gaps, end)
    out = []
    for i in span:
        if re.match(r"^\| [A-Z]{2}-\d+", lines[i]):
            out.append((i + 1, [c.strip() for c in re.split(r"(?<!\\)\|", lines[i])[1:-1]]))
    return out


def _threat_rows() -> list[tuple[int, str, list[re.Match[str]], str]]:
    """(line, id, citations, status) of every threat of the adversary tables."""
    return [(line, cells[0], list(CITATION.finditer(cells[3])), cells[4])
            for line, cells in _table_rows("adversaries")]


@lru_cache(maxsize=None)
def _module_text(filename: str) -> str:
    return (TESTS / filename).read_text(encoding="utf-8")


def _drives_the_server(filename: str) -> bool:
    return bool(SERVER_HARNESS.search(_module_text(filename)))


def _runs_the_client(filename: str) -> bool:
    return bool(CLIENT_HARNESS.search(_module_text(filename)))


def _status_problems(row_id: str, cites: list[re.Match[str]], status: str,
                     gaps: set[str], risks: set[str]) -> list[str]:
    m = STATUS.match(status)
    if m is None:
        return ["the Status does not start with a value of the table in §1"]
    kind, files = m["kind"], {c["file"] for c in cites if (TESTS / c["file"]).is_file()}
    server = any(_drives_the_server(f) for f in files)
    client = any(_runs_the_client(f) for f in files)
    problems = []
    if (kind.startswith("tested") or m["caller"] is not None) and not cites:
        problems.append(f"'{kind}' cites no test")
    if "server" in kind and kind.startswith("tested") and not server:
        problems.append(f"'{kind}' cites no test from a module that drives the running "
                        f"server (imports tests/server_harness.py or schakel.server.app)")
    if "client" in kind and kind.startswith("tested") and not client:
        problems.append(f"'{kind}' cites no test from a module that runs the client against "
                        f"the server (imports tests/client_harness.py or tests/tamper_proxy.py)")
    if m["caller"] is not None and not re.search(r"\b(?:server|client)\b", m["caller"]):
        problems.append("a protocol primitive row must say which component (the server, the "
                        "client) would call it, or does")
    if kind == "not built; no test yet":
        if cites:
            problems.append("'not built; no test yet' cites tests")
        if row_id not in gaps:
            problems.append("a 'not built' row must be listed in §7")
    if m["risks"] is not None:
        problems += [f"{r} is not a residual risk of §6" for r in m["risks"].split(", ")
                     if r not in risks]
    if ISSUE.search(status):
        problems.append("names an issue: a status says what runs today, not what an issue "
                        "will bring")
    return problems


def _gap_ids() -> set[str]:
    ids: set[str] = set()
    for _, cells in _table_rows("gaps"):
        ids |= set(re.findall(r"\b[A-Z]{2}-\d+\b", cells[0]))
    return ids


def _risk_ids() -> set[str]:
    return set(re.findall(r"^- \*\*(RR-\d+)\.", _text(), re.MULTILINE))


def test_every_threat_row_has_a_status_its_tests_support() -> None:
    """The Status column keeps "the function exists and is tested" apart from "the running
    system enforces it" (§1 of the threat model): "tested (server)" needs a test that drives
    the server, "tested (client)" one that runs the client against it, and so on."""
    rows = _threat_rows()
    assert len(rows) >= 100
    gaps, risks = _gap_ids(), _risk_ids()
    bad = [f"line {line} {row_id}: {problem}" for line, row_id, cites, status in rows
           for problem in _status_problems(row_id, cites, status, gaps, risks)]
    assert not bad, "threat rows whose Status and cited tests disagree:\n" + "\n".join(bad)


def test_every_threat_id_is_one_row_and_every_mention_names_one() -> None:
    """An id is given once (a new row takes the next free number of its section), and an id
    named anywhere in the document ("see RM-10", "RR-9") is a row of §5 or a risk of §6."""
    rows = [cells[0] for _, cells in _table_rows("adversaries")]
    twice = sorted({r for r in rows if rows.count(r) > 1})
    assert not twice, f"threat ids given to more than one row: {twice}"
    text = _text()
    unknown = sorted(set(re.findall(r"\b(?!RR-)[A-Z]{2}-\d+\b", text)) - set(rows))
    unknown += sorted(set(re.findall(r"\bRR-\d+\b", text)) - _risk_ids())
    assert not unknown, f"ids the document names but does not define: {unknown}"


@pytest.mark.parametrize("doc", ["protocol.md", "threat-model.md", "implementation.md"])
def test_the_documents_name_no_issue(doc: str) -> None:
    """The specification, the threat model and the guide say what is true now. An issue
    number in them goes stale the day the issue closes (21 threat rows once waited for an
    issue that had landed long before); history belongs in the ADRs."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    bad = [f"docs/{doc}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]!r}"
           for m in ISSUE.finditer(text)]
    assert not bad, "name no issue in what the documents say is true:\n" + "\n".join(bad)


#: Where the code and its comments live: the five layer folders, the benchmarks, the Makefile.
CODE = ("protocol", "keys", "server", "client", "cli", "bench", "Makefile")


@pytest.mark.parametrize("where", CODE)
def test_the_code_names_no_issue(where: str) -> None:
    """Docstrings and comments describe the code, not the order in which it was built: "arrives
    with issue 3" is stale the day issue 3 lands, and a reader cannot check it against the
    code."""
    top = ROOT / where
    files = [top] if top.is_file() else sorted(
        path for path in top.rglob("*") if path.suffix in (".py", ".md") and path.is_file())
    assert files, f"nothing to read in {where}"
    bad = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        bad += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]!r}"
                for m in ISSUE.finditer(text)]
    assert not bad, "say what the code does, not which issue brought it:\n" + "\n".join(bad)


@pytest.mark.parametrize("status, cited, problem", [
    ("tested (server): x", "test_policy.py", "drives the running server"),
    ("tested (client)", "test_server_attacks.py", "runs the client"),
    ("tested (server and client)", "test_client_threats.py", "drives the running server"),
    ("protocol primitive tested; enforcement arrives with issue 4", "test_policy.py",
     "which component"),
    ("protocol primitive tested; the server calls it, issue 4", "test_policy.py", "an issue"),
    ("tested (server): the rest arrives with issue #11", "test_server_attacks.py", "an issue"),
    ("tested", "", "cites no test"),
    ("not built; no test yet", "test_policy.py", "cites tests"),
    ("not defended (RR-99)", "", "not a residual risk"),
    ("works fine", "test_policy.py", "does not start"),
])
def test_the_status_check_refuses(status: str, cited: str, problem: str) -> None:
    """The check itself can fail: each wrong Status is named."""
    module_tests = {"test_policy.py": "test_policy_row", "test_server_attacks.py":
                    "test_unknown_key_is_refused", "test_client_threats.py":
                    "test_sl9_local_state_holds_no_plaintext"}
    cell = f"`tests/{cited}::{module_tests[cited]}`" if cited else "—"
    problems = _status_problems("XX-1", list(CITATION.finditer(cell)), status, {"XX-2"},
                                {"RR-1"})
    assert any(problem in p for p in problems), problems
