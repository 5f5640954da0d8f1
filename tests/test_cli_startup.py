"""A command imports what it uses, when it uses it: the command line starts hundreds of
times a day in scripts (and in this suite), and each import is paid at every start.

Checked by the modules a real ``schakel`` run has loaded when it exits, never by time:

* ``schakel --help``, a command's ``--help`` and a refusal before anything is opened
  load neither the client library nor aiohttp;
* no command that acts for a home loads the server, jsonschema (the reference validator,
  built only to word a refusal: :mod:`schakel.protocol.schema`) or structlog (imported
  by the library at its first retry or refusal);
* when the library does log, the command line has configured structlog by then: its
  events go to standard error, as JSON, and only with ``SCHAKEL_DEBUG``, so that standard
  output stays the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli_harness import ENGLISH, PASSPHRASE, TIMEOUT, free_port, schakel

#: Runs ``schakel ARGS`` in this process as ``python -m schakel.cli`` does, then writes the
#: exit code and the names of the loaded modules to the file named first.
PROBE = """
import json, sys
from schakel.cli.main import main
out, args = sys.argv[1], sys.argv[2:]
try:
    main(args, prog_name="schakel")
except SystemExit as exit:
    code = exit.code
with open(out, "w") as f:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, f)
"""

#: Loaded by no command that acts for a home: the server and its storage, the console's
#: templates, jsonschema and structlog (with the console printers it brings).
NEVER = ("schakel.server", "sqlite_utils", "psycopg", "jinja2", "aiohttp_jinja2",
         "jsonschema", "referencing", "structlog", "rich")
#: Also not loaded by help or by a refusal before a home is opened.
NOT_BEFORE_A_HOME = (*NEVER, "aiohttp", "asyncio", "schakel.client.partner", "schakel.keys.chain")


def probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / "probe.json"
    environment = {**_inherited(), **ENGLISH, "SCHAKEL_PASSPHRASE": PASSPHRASE, **(env or {})}
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=tmp_path, env=environment,
                   capture_output=True, text=True, timeout=TIMEOUT, check=False)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _inherited() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}


def loaded(modules: list[str], families: tuple[str, ...]) -> list[str]:
    """The modules of ``families`` (a package and its submodules) among ``modules``."""
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in families)]


def home(tmp_path: Path) -> Path:
    """A home whose server nobody runs (``--kdf interactive``: the keystore is not the subject)."""
    made = schakel("init", "--home", "home", "--name", "Welzijn Amersfoort", "--server",
                   f"http://127.0.0.1:{free_port()}", "--acting-user", "j.jansen",
                   "--kdf", "interactive", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    return tmp_path / "home"


def test_help_loads_neither_the_client_library_nor_aiohttp(tmp_path: Path) -> None:
    for args in (("--help",), ("case", "--help"), ("network", "create", "--help")):
        run = probe(tmp_path, *args)
        assert run["exit"] == 0, args
        assert loaded(run["modules"], NOT_BEFORE_A_HOME) == [], args


def test_a_refusal_before_a_home_is_opened_loads_neither_the_client_library_nor_aiohttp(
        tmp_path: Path) -> None:
    run = probe(tmp_path, "whoami", "--home", str(tmp_path / "nowhere"))
    assert run["exit"] == 3
    assert loaded(run["modules"], NOT_BEFORE_A_HOME) == []


def test_a_command_on_a_home_loads_no_server_module_jsonschema_or_structlog(tmp_path: Path) -> None:
    """``whoami`` opens the home with the whole client library, and no more."""
    where = home(tmp_path)
    run = probe(tmp_path, "whoami", "--home", str(where))
    assert run["exit"] == 0
    assert "schakel.client.partner" in run["modules"] and "aiohttp" in run["modules"]
    assert loaded(run["modules"], NEVER) == []


def test_the_library_log_is_configured_when_structlog_is_first_imported(tmp_path: Path) -> None:
    """A server that does not answer makes the library retry, and log each retry at info
    level: structlog is imported then, and the command line's configuration holds -- the
    events go to standard error as JSON with SCHAKEL_DEBUG=1, and nowhere without."""
    where = home(tmp_path)
    trusted = schakel("network", "trust", "AAAAAAAAAAAAAAAAAAAAAA", "--fingerprint",
                      "98847 52469 80775 03306 67641 14365 44914 71564", "--home", str(where),
                      cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    quiet = schakel("sync", "--json", "--home", str(where), cwd=tmp_path)
    debug = schakel("sync", "--json", "--home", str(where), cwd=tmp_path,
                    env={"SCHAKEL_DEBUG": "1"})
    for result in (quiet, debug):
        assert result.returncode == 5, result.stderr
        assert result.stdout == "", result.stdout
        assert "Traceback" not in result.stderr
    assert "retrying" not in quiet.stderr
    events = [json.loads(line) for line in debug.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["request failed, retrying"] * 4
    assert all(e["level"] == "info" for e in events)
    run = probe(tmp_path, "sync", "--home", str(where))
    assert run["exit"] == 5 and "structlog" in run["modules"]
