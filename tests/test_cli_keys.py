"""`schakel keys …` run as a coordinator or partner would: a real subprocess, real
keystore files, checked output and exit codes (cli/main.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest



def schakel(*args: str, cwd: Path, passphrase: str | None = "correct horse battery",
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env["SCHAKEL_LANG"] = "en"          # the tests read English (tests/cli_harness.py)
    if passphrase is not None:
        env["SCHAKEL_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "schakel.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("partner")
    result = schakel("keys", "generate", "--name", "Kerkelijk Bezoekwerk", "--kdf", "interactive",
                     cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "fingerprint" in result.stdout
    return folder / "schakel-keystore.json"


def test_generate_writes_a_private_keystore(keystore: Path) -> None:
    assert keystore.stat().st_mode & 0o777 == 0o600
    assert "correct horse" not in keystore.read_text()


def test_generate_refuses_to_overwrite(keystore: Path) -> None:
    before = keystore.read_bytes()
    result = schakel("keys", "generate", "--name", "Other", "--kdf", "interactive", cwd=keystore.parent)
    assert result.returncode == 3
    assert "refusing to overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert keystore.read_bytes() == before


def test_show_needs_no_passphrase_and_prints_json(keystore: Path) -> None:
    result = schakel("keys", "show", "--json", cwd=keystore.parent, passphrase=None)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["name"] == "Kerkelijk Bezoekwerk"
    assert len(shown["fingerprint"].split()) == 8


def test_fingerprint_is_eight_groups_of_five_digits(keystore: Path) -> None:
    result = schakel("keys", "fingerprint", cwd=keystore.parent, passphrase=None)
    groups = result.stdout.split()
    assert result.returncode == 0 and len(groups) == 8
    assert all(len(g) == 5 and g.isdigit() for g in groups)


def test_bundle_round_trip_with_spoken_fingerprint(keystore: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    assert schakel("keys", "export-bundle", "--out", str(bundle), cwd=keystore.parent).returncode == 0
    spoken = schakel("keys", "fingerprint", cwd=keystore.parent).stdout.strip()
    ok = schakel("keys", "verify-bundle", str(bundle), "--fingerprint", spoken, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "fingerprint matches" in ok.stdout


def test_bundle_with_misheard_fingerprint_is_untrusted(keystore: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    schakel("keys", "export-bundle", "--out", str(bundle), cwd=keystore.parent)
    spoken = schakel("keys", "fingerprint", cwd=keystore.parent).stdout.split()
    spoken[3] = f"{(int(spoken[3]) + 1) % 100000:05d}"
    result = schakel("keys", "verify-bundle", str(bundle), "--fingerprint", " ".join(spoken), cwd=tmp_path)
    assert result.returncode == 4
    assert "what to do: compare the fingerprint again" in result.stderr


def test_tampered_bundle_is_refused(keystore: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    schakel("keys", "export-bundle", "--out", str(bundle), cwd=keystore.parent)
    data = json.loads(bundle.read_text())
    data["signed"]["name"] = "Politie"
    bundle.write_text(json.dumps(data))
    result = schakel("keys", "verify-bundle", str(bundle), cwd=tmp_path)
    assert result.returncode == 4 and "Traceback" not in result.stderr


def test_wrong_passphrase_is_a_clear_refusal(keystore: Path) -> None:
    before = keystore.read_bytes()
    result = schakel("keys", "export-bundle", cwd=keystore.parent, passphrase="not the passphrase")
    assert result.returncode == 3
    assert "wrong passphrase" in result.stderr and "Traceback" not in result.stderr
    assert keystore.read_bytes() == before


def test_missing_keystore_is_a_clear_refusal(tmp_path: Path) -> None:
    result = schakel("keys", "show", "--keystore", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert result.returncode in (1, 3) and "Traceback" not in result.stderr
    assert "nope.json" in result.stderr


def test_garbage_bundle_is_malformed_not_a_crash(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text('{"signed": ')
    result = schakel("keys", "verify-bundle", str(bundle), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not a valid Schakel object" in result.stderr


def test_rotate_keeps_the_retired_key_and_writes_a_record(tmp_path: Path) -> None:
    assert schakel("keys", "generate", "--name", "MEE", "--kdf", "interactive", cwd=tmp_path).returncode == 0
    old_id = json.loads(schakel("keys", "show", "--json", cwd=tmp_path).stdout)["key_id"]
    result = schakel("keys", "rotate", "--reason", "laptop replaced", "--record", "rotation.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    new_id = json.loads(schakel("keys", "show", "--json", cwd=tmp_path).stdout)["key_id"]
    assert new_id != old_id
    record = json.loads((tmp_path / "rotation.json").read_text())
    assert record["signed"]["old"] == old_id and len(record["signatures"]) == 2
    assert (tmp_path / f"schakel-keystore.json.retired-{old_id[:8]}").exists()


@pytest.mark.parametrize("command", [[], ["keys"], ["keys", "generate"], ["keys", "show"],
                                     ["keys", "fingerprint"], ["keys", "export-bundle"],
                                     ["keys", "verify-bundle"], ["keys", "rotate"], ["demo"]])
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = schakel(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 3


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert schakel("keys", "generate", cwd=tmp_path).returncode == 2
