"""`schakel server init` and `schakel serve` as an operator runs them: a real subprocess,
a real data directory (cli/commands/serve.py; docs/protocol.md §14, "Data directory")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from schakel.keys import Fingerprint
from schakel.protocol.crypto import BoxPublicKey, VerifyKey



def schakel(*args: str, passphrase: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env["SCHAKEL_LANG"] = "en"          # the tests read English (tests/cli_harness.py)
    if passphrase is not None:
        env["SCHAKEL_SERVER_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "schakel.cli", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def test_init_creates_keys_once_and_prints_what_the_genesis_needs(tmp_path: Path) -> None:
    data = tmp_path / "server"
    first = schakel("server", "init", "--data", str(data), "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["created"] is True
    log, gate = VerifyKey.from_b64(info["log"]), BoxPublicKey.from_b64(info["gate"])
    assert log.key_id == info["log_key_id"] and gate.key_id == info["gate_key_id"]
    assert info["log_fingerprint"] == str(Fingerprint.of(log))
    assert info["fingerprint"] == str(Fingerprint.of_server(log, gate))
    assert (data / "server-passphrase").stat().st_mode & 0o777 == 0o600
    assert (data / "server-keys.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((data / "config.json").read_text())["host"] == "127.0.0.1"

    again = schakel("server", "init", "--data", str(data))
    assert again.returncode == 0, again.stderr
    assert "already existed" in again.stdout and info["fingerprint"] in again.stdout
    assert info["log"] in again.stdout and info["gate"] in again.stdout


def test_server_fingerprint_prints_what_init_printed_and_creates_nothing(tmp_path: Path) -> None:
    """`schakel server fingerprint` reads the keystore (unlocked: the keys the server
    uses) and prints the server fingerprint a coordinator needs; without keys it is a
    usage error and nothing is created."""
    data = tmp_path / "server"
    empty = schakel("server", "fingerprint", "--data", str(tmp_path))
    assert empty.returncode == 2 and "schakel server init" in empty.stderr
    assert not (tmp_path / "server-keys.json").exists()
    info = json.loads(schakel("server", "init", "--data", str(data), "--json").stdout)
    shown = schakel("server", "fingerprint", "--data", str(data))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == info["fingerprint"]
    assert Fingerprint.parse(shown.stdout).digits == Fingerprint.parse(info["fingerprint"]).digits


def test_init_with_a_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "server"
    assert schakel("server", "init", "--data", str(data), passphrase="first passphrase").returncode == 0
    refused = schakel("server", "init", "--data", str(data), passphrase="another passphrase")
    assert refused.returncode == 3 and "Traceback" not in refused.stderr


def test_serve_help_explains_the_options() -> None:
    result = schakel("serve", "--help")
    assert result.returncode == 0
    for word in ("--data", "--host", "127.0.0.1", "--port", "8470", "--public-url", "SIGTERM"):
        assert word in result.stdout


def test_a_bad_public_url_is_a_usage_error(tmp_path: Path) -> None:
    result = schakel("serve", "--data", str(tmp_path), "--public-url", "ftp://x/path")
    assert result.returncode == 2 and "public URL" in result.stderr
