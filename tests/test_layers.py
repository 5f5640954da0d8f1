"""The layers import only downwards (ADR 0018), as test_purity keeps protocol/ free of I/O.

    protocol  <-  keys  <-  server
                      <-  client  <-  cli (the command line and the demo)

``schakel.protocol`` imports no other layer; ``schakel.keys`` only the protocol;
``schakel.server`` and ``schakel.client`` the protocol and the keys, never each other and
never the command line; ``schakel.cli`` may import them all.  So a partner's developer who
installs the library gets no server in it, and the server trusts nothing the client says.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING``, relative
ones, and ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
The layers are importable only as ``schakel.<layer>``: an import of a folder's own name
(``import client``) would load a second copy of the module beside the installed one, and
fails outside the checkout, so no code, test or benchmark may use one.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What each layer may import of the others.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "keys": frozenset({"protocol"}),
    "server": frozenset({"protocol", "keys"}),
    "client": frozenset({"protocol", "keys"}),
    "cli": frozenset({"protocol", "keys", "server", "client"}),
}


def package_dirs() -> dict[str, str]:
    """``schakel.<layer>`` -> its folder, as pyproject.toml maps them for the build."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return mapping


LAYERS = {name.removeprefix("schakel."): folder for name, folder in package_dirs().items()}


def module_name(path: Path, layer: str) -> str:
    """The installed name of a source file: ``client/fold.py`` -> ``schakel.client.fold``."""
    parts = list(path.relative_to(ROOT / LAYERS[layer]).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["schakel", layer, *parts])


def imports(source: str, name: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in ``source``, the module called ``name``:
    ``from schakel import client`` gives ``schakel.client``; a relative import is resolved
    against ``name``; ``import_module``/``__import__`` calls with a literal name count too."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                # ``from schakel import client`` and ``from schakel.cli import commands``
                # name a package; ``from schakel.protocol.errors import X`` names a class.
                yield node.lineno, f"{module}.{alias.name}" if module in ("schakel", *(
                    f"schakel.{layer}" for layer in LAYERS)) else module
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            yield node.lineno, node.args[0].value


def violations(source: str, name: str, layer: str, *, is_package: bool = False) -> list[str]:
    """The imports in ``source`` (module ``name`` of ``layer``) that break a layer rule."""
    bad = []
    for line, module in imports(source, name, is_package=is_package):
        parts = module.split(".")
        if parts[0] in LAYERS:
            bad.append(f"line {line}: imports {module!r} by its folder name; "
                       f"write schakel.{module}")
        elif parts[0] == "schakel" and len(parts) > 1:
            target = parts[1]
            if target not in LAYERS:
                bad.append(f"line {line}: imports {module!r}, which is no layer")
            elif target != layer and target not in MAY_IMPORT[layer]:
                bad.append(f"line {line}: {layer} imports {module!r}")
    return bad


def layer_files() -> list[tuple[str, Path]]:
    return [(layer, path) for layer, folder in sorted(LAYERS.items())
            for path in sorted((ROOT / folder).rglob("*.py"))]


def test_every_mapped_folder_has_a_layer_rule() -> None:
    assert set(LAYERS) == set(MAY_IMPORT), (
        "pyproject.toml maps these layers: give each a rule in MAY_IMPORT: "
        f"{sorted(set(LAYERS) ^ set(MAY_IMPORT))}")
    assert len(layer_files()) >= 100


@pytest.mark.parametrize(("layer", "path"), layer_files(),
                         ids=[str(p.relative_to(ROOT)) for _, p in layer_files()])
def test_module_imports_only_the_layers_below_it(layer: str, path: Path) -> None:
    bad = violations(path.read_text(encoding="utf-8"), module_name(path, layer), layer,
                     is_package=path.name == "__init__.py")
    assert not bad, f"{path.relative_to(ROOT)} ({MAY_IMPORT[layer] or 'no other layer'} " \
                    f"allowed):\n" + "\n".join(bad)


def test_the_client_library_does_not_import_the_server() -> None:
    """The rule a partner's developer relies on, stated on its own: nothing in
    ``schakel.client`` imports ``schakel.server`` or the command line."""
    importers = sorted(
        f"{path.relative_to(ROOT)}:{line} {module}" for layer, path in layer_files()
        if layer == "client"
        for line, module in imports(path.read_text(encoding="utf-8"), module_name(path, layer),
                                    is_package=path.name == "__init__.py")
        if module.split(".")[:2] in (["schakel", "server"], ["schakel", "cli"]))
    assert not importers, "\n".join(importers)


OTHER_CODE = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


@pytest.mark.parametrize("path", OTHER_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_tests_and_benchmarks_import_the_layers_by_their_installed_names(path: Path) -> None:
    old = [f"line {line}: {module}" for line, module in
           imports(path.read_text(encoding="utf-8"), f"tests.{path.stem}")
           if module.split(".")[0] in LAYERS]
    assert not old, f"{path.relative_to(ROOT)} imports a layer by its folder name:\n" + \
        "\n".join(old)


# --- the check itself sees what it must ---------------------------------------------------

CLIENT_MODULE = "schakel.client.partner"


@pytest.mark.parametrize("source", [
    "from schakel.server.app import make_app\n",
    "import schakel.server.storage as storage\n",
    "from schakel import server\n",
    "from schakel.cli.main import fail\n",
    "def later():\n    from schakel.server import app\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from schakel.server.app import Ctx\n",
    "import importlib\nimportlib.import_module('schakel.server.app')\n",
    "__import__('schakel.server')\n",
    "from ..server import app\n",
    "from client import Partner\n",
    "import protocol.errors\n",
])
def test_the_check_refuses_a_client_module_that_reaches_up_or_sideways(source: str) -> None:
    assert violations(source, CLIENT_MODULE, "client"), source


@pytest.mark.parametrize("source", [
    "from schakel.protocol.errors import MalformedError\n",
    "from schakel.keys import PartnerKeys\n",
    "from schakel import protocol\n",
    "from . import fold\nfrom .errors import ServerRefused\n",
    "import aiohttp\n",
])
def test_the_check_lets_a_client_module_import_downwards(source: str) -> None:
    assert not violations(source, CLIENT_MODULE, "client"), source
