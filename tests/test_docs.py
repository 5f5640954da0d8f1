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
