"""``schakel --help`` imports no command module, so it no longer waits for the client
library, the server, the JSON schemas or the PII guard's word lists (cli/main.py,
``COMMANDS``).  Measured, not timed: ``python -X importtime`` lists every module the
run imported.  That every command's own ``--help`` still works is
tests/test_cli_flows.py::test_every_command_has_help.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from schakel.cli.main import COMMANDS, main

#: What a bare ``--help`` must not import: each costs from 30 ms to most of a second.
HEAVY = ("aiohttp", "schakel.server", "schakel.client", "deduce", "numpy", "jsonschema",
         "sqlite_utils", "nacl")


def imported_by(*args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "schakel.cli", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "schakel.cli.main" in names and "click" in names
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("--version",)])
def test_schakel_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    names = imported_by(*args)
    assert heavy(names) == []
    assert not [n for n in names if n.startswith("schakel.cli.commands")]


def test_agent_help_imports_neither_the_library_nor_the_server() -> None:
    assert heavy(imported_by("agent", "status", "--help")) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_line_schakel_help_shows_is_the_commands_own(name: str) -> None:
    """``COMMANDS`` repeats each command's first help line so ``--help`` imports nothing;
    when a command's docstring changes, change its line in cli/main.py too."""
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert command.get_short_help_str(limit=10**6) == COMMANDS[name].help


def test_every_lazy_command_and_its_extra_subcommands_load() -> None:
    ctx = click.Context(main)
    keys = main.get_command(ctx, "keys")
    assert isinstance(keys, click.Group) and "bundle" in keys.list_commands(ctx)
    assert set(COMMANDS) <= set(main.list_commands(ctx))
