"""The library a partner imports type-checks under ``mypy --strict`` (ADR 0018), and so do
the Python examples its documentation gives.

mypy cannot follow the editable install's import hook, so the test gives it the installed
names through ``build/typecheck/schakel/``, a folder of links onto the repository's layer
folders, and checks ``schakel.protocol``, ``schakel.keys`` and ``schakel.client`` with the
settings of ``[tool.mypy]`` in pyproject.toml.  Every ```python block of README.md and
docs/roles/*.md is written out as a module of its own and checked in the same run, so an
example that calls the library wrongly fails here.

The folder and mypy's cache (``build/mypy-cache``) are shared by every run in the checkout:
the examples are rewritten and mypy runs while holding ``build/typecheck.lock``, so two runs
at once (two pytest-xdist workers, or a targeted run beside ``make test``) take turns
instead of deleting each other's files.
"""

from __future__ import annotations

import fcntl
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("schakel.protocol", "schakel.keys", "schakel.client")
LAYERS = ("protocol", "keys", "client", "server", "cli")
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs" / "roles").glob("*.md"))]
PROBE = "examples/probe_wrong.py"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> dict[str, str]:
    """``examples/<document>_<n>.py`` -> the n-th python block of each document."""
    found = {}
    for doc in DOCUMENTS:
        for n, match in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8")), 1):
            stem = re.sub(r"\W", "_", str(doc.relative_to(ROOT)).removesuffix(".md"))
            found[f"examples/{stem}_{n}.py"] = match.group(1)
    return found


@pytest.fixture(scope="module")
def mypy_output() -> str:
    base = ROOT / "build" / "typecheck"
    base.mkdir(parents=True, exist_ok=True)
    with open(ROOT / "build" / "typecheck.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _run_mypy(base)


def _run_mypy(base: Path) -> str:
    links = base / "schakel"
    links.mkdir(exist_ok=True)
    for layer in LAYERS:
        link = links / layer
        if not link.is_symlink():
            link.symlink_to(Path("..", "..", "..", layer))
    (base / "examples").mkdir(exist_ok=True)
    for old in (base / "examples").glob("*.py"):
        old.unlink()
    files = examples()
    files[PROBE] = ("from schakel.protocol.canonical import canonical_json\n"
                    "wrong: int = canonical_json({})\n")
    for name, source in files.items():
        (base / name).write_text(source, encoding="utf-8")
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / "build" / "mypy-cache"), "--no-error-summary",
            "--hide-error-context", "--no-color-output", "--explicit-package-bases"]
    args += [package.replace(".", "/") for package in LIBRARY]
    result = subprocess.run([*args, *sorted(files)], cwd=base, capture_output=True, text=True,
                            env={"MYPYPATH": str(base), "PATH": "/usr/bin:/bin"})
    assert result.returncode in (0, 1), result.stderr + result.stdout
    return result.stdout


def errors_in(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines()
            if line.startswith(prefix) and ": error:" in line]


def test_documentation_has_python_examples_to_check() -> None:
    assert any("Partner" in source for source in examples().values())


@pytest.mark.parametrize("layer", ["protocol", "keys", "client"])
def test_the_library_passes_mypy_strict(mypy_output: str, layer: str) -> None:
    errors = errors_in(mypy_output, f"schakel/{layer}/")
    assert not errors, f"{len(errors)} mypy --strict errors in schakel.{layer}:\n" + \
        "\n".join(errors[:60])


def test_the_documented_examples_type_check(mypy_output: str) -> None:
    errors = [e for e in errors_in(mypy_output, "examples/") if not e.startswith(PROBE)]
    assert not errors, "\n".join(errors)


def test_the_check_sees_a_type_error(mypy_output: str) -> None:
    """The same run refuses a probe that assigns bytes to an int, so a silent mypy (a wrong
    path, a missing package) cannot pass the tests above."""
    assert errors_in(mypy_output, f"{PROBE}:2:"), mypy_output[-2000:]
