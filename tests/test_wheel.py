"""The wheel a partner's developer installs holds one top-level name, ``schakel`` (ADR 0018).

The wheel is built from a copy of the checkout and installed into a fresh virtual
environment in a temporary folder, outside the repository: there ``import schakel.client``
must load the installed copy, and ``import client`` (the folder's own name) must fail.
Building and installing use no network: the build runs without isolation on the
setuptools of the test environment, and the fresh environment borrows the already
installed dependencies (pynacl, aiohttp, ...) through a ``.pth`` line naming this
environment's site-packages, which adds the folder without running its ``.pth`` files,
so the editable install of the checkout stays invisible there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

with open(ROOT / "pyproject.toml", "rb") as _f:
    _SETUPTOOLS = tomllib.load(_f)["tool"]["setuptools"]
PACKAGES: list[str] = _SETUPTOOLS["packages"]
PACKAGE_DIR: dict[str, str] = _SETUPTOOLS["package-dir"]


def folder_of(package: str) -> Path:
    """``schakel.server.routes`` -> ``server/routes``, as the package-dir mapping says."""
    for name, folder in PACKAGE_DIR.items():
        if package == name or package.startswith(name + "."):
            return ROOT / folder / package.removeprefix(name).lstrip(".").replace(".", "/")
    raise AssertionError(f"{package} is not under any mapped folder")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGE_DIR.values():
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check",
                    "--wheel-dir", str(out), str(source)], check=True, cwd=source)
    (built,) = out.glob("schakel-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment outside the repository with only the wheel installed."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True, cwd=env)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_path("purelib")
    Path(site, "borrowed-dependencies.pth").write_text(ours + "\n", encoding="utf-8")
    return python


def run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True,
                          cwd=cwd)


def test_the_wheel_holds_only_the_schakel_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    assert tops == {"schakel", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                    + ".dist-info"}, sorted(tops)


def test_the_wheel_has_every_module_and_data_file_of_the_mapped_folders(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    expected = set()
    for package in PACKAGES:
        folder = folder_of(package)
        for path in folder.iterdir():
            if path.suffix in (".py", ".json", ".typed", ".txt", ".html", ".css", ".js", ".md") \
                    or path.name == "LICENSE":
                expected.add(package.replace(".", "/") + "/" + path.name)
        for path in folder.glob("locale/*/LC_MESSAGES/*"):     # the message catalog
            if path.suffix in (".po", ".mo"):
                expected.add(package.replace(".", "/") + "/"
                             + path.relative_to(folder).as_posix())
    assert any(name.endswith("/locale/nl/LC_MESSAGES/schakel.mo") for name in expected)
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing}"
    # Every folder with Python files is a listed package.
    for folder in PACKAGE_DIR.values():
        for init in (ROOT / folder).rglob("*.py"):
            rel = init.parent.relative_to(ROOT / folder)
            layer = next(n for n, f in PACKAGE_DIR.items() if f == folder)
            package = ".".join([layer, *rel.parts])
            assert package in PACKAGES, f"{init.relative_to(ROOT)}: {package} is not listed"


def test_the_installed_wheel_imports_under_schakel_outside_the_repository(
        fresh_python: Path, tmp_path: Path) -> None:
    result = run(fresh_python, (
        "import schakel.client, schakel.protocol, schakel.keys, schakel.server, schakel.cli.main\n"
        "from schakel.client import Partner\n"
        "import schakel.protocol.schema as s\n"
        "print(schakel.client.__file__)\n"
        "print(len(s.SCHEMAS) if hasattr(s, 'SCHEMAS') else 'ok')\n"), tmp_path)
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.splitlines()[0])
    assert ROOT not in location.parents, f"imported from the checkout: {location}"
    assert fresh_python.parent.parent in location.parents


@pytest.mark.parametrize("name", ["client", "server", "protocol", "keys", "cli"])
def test_the_installed_wheel_puts_no_layer_at_the_top_level(
        fresh_python: Path, tmp_path: Path, name: str) -> None:
    result = run(fresh_python, f"import {name}", tmp_path)
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


def test_the_installed_command_line_speaks_dutch_by_default(fresh_python: Path,
                                                           tmp_path: Path) -> None:
    """The compiled catalog is package data: a refusal reads Dutch from the installed
    wheel with no language asked for, and English with LANG (ADR 0037)."""
    schakel = fresh_python.parent / "schakel"
    note = [str(schakel), "case", "note", "A" * 22, "B" * 22, "--text", "bel 0612345678",
            "--home", str(tmp_path)]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SCHAKEL_") and k not in ("LANG", "LANGUAGE", "LC_ALL",
                                                             "LC_MESSAGES")}
    dutch = subprocess.run(note, capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert dutch.returncode == 1 and dutch.stderr.startswith(
        "schakel: geweigerd: de PII-controle"), dutch.stderr
    english = subprocess.run(note, capture_output=True, text=True, cwd=tmp_path,
                             env={**clean, "LANG": "en_GB.UTF-8"})
    assert english.stderr.startswith("schakel: refused: the PII guard"), english.stderr


def test_the_installed_command_line_starts(fresh_python: Path, tmp_path: Path) -> None:
    schakel = fresh_python.parent / "schakel"
    result = subprocess.run([str(schakel), "--help"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
