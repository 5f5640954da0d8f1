"""Running the ``schakel`` command line as a coordinator would, against a real
``schakel serve`` subprocess (tests/test_cli_flows.py).

* :func:`live_server` -- ``schakel server init`` and ``schakel serve`` on a free loopback
  port, waited for on ``/healthz`` (:class:`schakel.cli.serverprocess.ServerProcess`, the
  demo's too); its output goes to a file shown when it fails to start.
* :func:`schakel` -- one CLI run in a subprocess with a clean environment: no
  ``SCHAKEL_*`` variable leaks in from the developer's shell; the passphrase is passed
  in ``SCHAKEL_PASSPHRASE`` unless the test wants the prompt.  The messages are English
  (``SCHAKEL_LANG=en``, :data:`ENGLISH`), which the tests assert; a test of the language
  itself passes its own (tests/test_cli_i18n.py).  Dutch is the default of the command
  line (ADR 0037).
* :class:`Org` -- one organisation's home directory, with a ``run`` that passes
  ``--home``, and ``ok`` / ``json`` helpers that assert the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schakel.cli.serverprocess import ServerProcess, free_port

PASSPHRASE = "correct horse battery staple"
TIMEOUT = 120
#: The language the tests read the command line's messages in (ADR 0037).
ENGLISH = {"SCHAKEL_LANG": "en"}
#: No language asked for anywhere (a fresh Dutch desktop, or LANG=C): Dutch, the default.
NO_LANGUAGE = {name: "" for name in ("SCHAKEL_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}


def _env(passphrase: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(ENGLISH)
    if passphrase is not None:
        env["SCHAKEL_PASSPHRASE"] = passphrase
    env.update(extra or {})
    return env


def schakel(*args: str, cwd: Path, passphrase: str | None = PASSPHRASE, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One ``schakel`` run, exactly as a user types it (``python -m schakel.cli``)."""
    return subprocess.run([sys.executable, "-m", "schakel.cli", *args], cwd=cwd,
                          env=_env(passphrase, env), text=True, capture_output=True,
                          input=stdin if stdin is not None else "", timeout=TIMEOUT,
                          start_new_session=True)   # no controlling terminal: a prompt reads stdin


def live_server(data: Path) -> ServerProcess:
    """A started server on ``data``, as an operator prepares one: ``schakel server init``
    first (its ``fingerprint`` is what the coordinator is given), then ``schakel serve``."""
    server = ServerProcess(data)
    server.init()
    server.start()
    return server


@dataclass
class Org:
    """One organisation: its home directory and what `schakel init` printed."""

    label: str
    home: Path
    key_id: str = ""
    fingerprint: str = ""

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``schakel ARGS --home HOME`` (the option goes last, as a user might type it)."""
        return schakel(*args, "--home", str(self.home), cwd=self.home.parent, **kwargs)

    def ok(self, *args: str, **kwargs: Any) -> str:
        """Run, assert exit 0 and no traceback; the standard output."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, (
            f"{self.label}: schakel {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    def json(self, *args: str, **kwargs: Any) -> Any:
        """Run with --json, assert exit 0; the parsed answer."""
        return json.loads(self.ok(*args, "--json", **kwargs))

    def refused(self, code: int, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run, assert exit ``code`` and a readable message instead of a traceback."""
        result = self.run(*args, **kwargs)
        assert result.returncode == code, (
            f"{self.label}: schakel {' '.join(args)} exited {result.returncode}, not {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("schakel: "), result.stderr
        return result


__all__ = ["ENGLISH", "NO_LANGUAGE", "PASSPHRASE", "Org", "free_port", "live_server", "schakel"]
