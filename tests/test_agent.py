"""The key agent (ADR 0023): real ``schakel agent`` processes, real keystores, real Unix
sockets.

How the one-unlock claim is measured: the twenty commands run with *no passphrase at
all* (no SCHAKEL_PASSPHRASE, an empty standard input for the prompt), so a command that
tried to unlock the keystore itself could not run Argon2id and would exit 3 -- the
control at the start shows exactly that.  The agent's own counter says it did one
Argon2id unlock and handed the key out twenty times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.commands.agent import parse_duration
from schakel.keys import KdfParams, KeystoreKey, PartnerKeys, load_keystore, save_keystore
from schakel.keys.agent import (
    MAX_MESSAGE_BYTES, AgentLocked, AgentStatus, AgentUnreachable, agent_status, fetch_key,
    stop_agent,
)
from schakel.keys.keystore import read_keystore_info, unlock_keystore_key
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import KeystoreError
from tests.cli_harness import PASSPHRASE, Org, _env, live_server, schakel

BOUND = 30.0    # seconds: a safety bound for a state change, never an assertion on speed


def wait_for(what: str, check: Any) -> Any:
    """Poll ``check()`` until it returns something truthy, at most :data:`BOUND` seconds."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def runtime() -> Iterator[dict[str, str]]:
    """A private runtime directory per test (short: a socket path has at most 107 bytes)."""
    base = tempfile.mkdtemp(prefix="sa-")
    try:
        yield {"XDG_RUNTIME_DIR": base}
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path) -> Org:
    """A home with a real keystore (the INTERACTIVE Argon2id level, to keep tests quick)."""
    org = Org("partner", tmp_path / "home")
    made = schakel("init", "--home", str(org.home), "--name", "Welzijn Amersfoort",
                   "--server", "http://127.0.0.1:9", "--acting-user", "a.jansen",
                   "--kdf", "interactive", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    return org


class RunningAgent:
    def __init__(self, process: subprocess.Popen[str], socket_path: Path, pid: int) -> None:
        self.process, self.socket, self.pid = process, socket_path, pid

    def status(self) -> AgentStatus:
        return agent_status(self.socket)


@contextmanager
def agent(org: Org, env: dict[str, str], *options: str) -> Iterator[RunningAgent]:
    """``schakel agent start --foreground`` for ``org``; stopped (SIGTERM) afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "schakel.cli", "agent", "start", "--foreground", "--home",
         str(org.home), *options], cwd=org.home.parent, env=_env(PASSPHRASE, env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        first = process.stdout.readline() if process.stdout else ""
        second = process.stdout.readline() if process.stdout else ""
        assert first.startswith("SCHAKEL_AGENT="), (first, process.stderr and process.stderr.read())
        path = Path(first.split("=", 1)[1].split(";", 1)[0])
        pid = int(second.strip().rstrip(";").rsplit(" ", 1)[1])
        assert pid == process.pid
        yield RunningAgent(process, path, pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=BOUND)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def raw(path: Path, data: bytes) -> dict[str, Any]:
    """Send raw bytes to the agent as a misbehaving peer of the same user would."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(BOUND)
        conn.connect(str(path))
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass                      # the agent may answer and close before we finish
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    value = json.loads(answer)
    assert isinstance(value, dict)
    return value


# --------------------------------------------------------------------------- one unlock


def test_twenty_partner_commands_with_the_agent_cost_one_argon2id_unlock(
        tmp_path: Path, runtime: dict[str, str]) -> None:
    server = live_server(tmp_path / "server-data")
    try:
        coord = Org("coordinator", tmp_path / "coord")
        made = schakel("init", "--home", str(coord.home), "--name", "Gemeente Amersfoort",
                       "--server", server.url, "--acting-user", "regie-1", "--json",
                       cwd=tmp_path)        # the default keystore: Argon2id MODERATE, 256 MiB
        assert made.returncode == 0, made.stderr
        covenant = tmp_path / "convenant.txt"
        covenant.write_text("Convenant: wij delen alleen wat nodig is.\n", encoding="utf-8")
        network = coord.json("network", "create", "--name", "Buurtnetwerk Soesterkwartier",
                             "--kind", "neighbourhood", "--covenant-file", str(covenant),
                             "--server-fingerprint", server.fingerprint)["network"]

        # The control: without the agent and without a passphrase a command cannot unlock.
        control = coord.run("whoami", passphrase=None, env=runtime)
        assert control.returncode == 3 and "no passphrase" in control.stderr

        with agent(coord, runtime) as running:
            assert running.status().unlocks == 1
            commands = [("whoami",), ("sync",), ("network", "list"), ("network", "show", network),
                        ("member", "list", network)] * 4
            for args in commands:
                result = coord.run(*args, passphrase=None, env=runtime)
                assert result.returncode == 0, (args, result.stderr)
                assert "passphrase" not in result.stderr.lower(), result.stderr
            state = running.status()
            assert (len(commands), state.unlocks, state.keys_served) == (20, 1, 20)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the socket


def test_the_agent_socket_is_0600_in_a_0700_directory_of_its_user(
        home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime) as running:
        folder = os.lstat(running.socket.parent)
        sock = os.lstat(running.socket)
        assert (folder.st_mode & 0o777, folder.st_uid) == (0o700, os.getuid())
        assert (sock.st_mode & 0o777, sock.st_uid) == (0o600, os.getuid())
        assert running.socket.parent == Path(runtime["XDG_RUNTIME_DIR"]) / "schakel"
        assert running.status().dumpable is False    # no ptrace, no /proc/PID/mem for others


PEER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.strerror})); sys.exit(0)
try:   # the agent may refuse and close before the request is sent
    s.sendall(json.dumps({"v": 1, "op": "key", "key_id": sys.argv[2], "salt": sys.argv[3]}).encode() + b"\\n")
except BrokenPipeError:
    pass
data = b""
try:
    while chunk := s.recv(4096):
        data += chunk
except ConnectionResetError:   # refused and closed with our request unread
    print(json.dumps({"reset": True})); sys.exit(0)
print(data.decode())
"""


def _as_nobody(*args: str) -> dict[str, Any]:
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c", PEER, *args], capture_output=True,
                            text=True, timeout=BOUND)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None
                    or not Path("/usr/bin/python3").exists(),
                    reason="needs root and setpriv to run a peer as another user (nobody)")
def test_a_peer_of_another_uid_is_refused_even_when_the_socket_is_opened_up(
        home: Org, runtime: dict[str, str]) -> None:
    info = read_keystore_info(home.home / "keystore.json")
    with agent(home, runtime) as running:
        ask = (str(running.socket), info.key_id, b64e(info.salt))
        # The directory (0700) keeps another user from even reaching the socket ...
        assert _as_nobody(*ask) == {"connect": "Permission denied"}
        # ... and were it opened up by mistake, SO_PEERCRED still refuses the peer.
        for folder in (running.socket.parent, running.socket.parent.parent):
            os.chmod(folder, 0o711)
        os.chmod(running.socket, 0o666)
        answer = _as_nobody(*ask)
        # The refusal, or the reset of a connection closed with the request unread: no key.
        assert answer == {"reset": True} or (answer["ok"] is False
                                             and answer["error"]["code"] == "refused")
        assert "key" not in answer
        os.chmod(running.socket.parent, 0o700)
        state = running.status()
        assert (state.refused_peers, state.keys_served) == (1, 0)


def test_a_command_refuses_an_agent_socket_in_a_directory_others_can_reach(
        home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime) as running:
        os.chmod(running.socket.parent, 0o755)
        try:
            result = home.run("whoami", env=runtime)
        finally:
            os.chmod(running.socket.parent, 0o700)
        assert result.returncode == 0, result.stderr        # fell back to the passphrase
        assert "no key from the agent" in result.stderr and "must be 0700" in result.stderr
        assert running.status().keys_served == 0


def test_agent_start_refuses_a_runtime_directory_of_another_mode(
        home: Org, runtime: dict[str, str]) -> None:
    folder = Path(runtime["XDG_RUNTIME_DIR"]) / "schakel"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    result = home.run("agent", "start", "--foreground", env=runtime)
    assert result.returncode == 1
    assert "mode 0755" in result.stderr and "must be 0700" in result.stderr
    assert list(folder.iterdir()) == []


# --------------------------------------------------------------------------- forgetting


def test_the_agent_forgets_the_key_after_its_idle_ttl_and_a_command_asks_again(
        home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime, "--ttl", "1s", "--max-ttl", "1h") as running:
        assert running.status().unlocked
        wait_for("the idle ttl", lambda: not running.status().unlocked)
        without = home.run("whoami", passphrase=None, env=runtime)
        assert without.returncode == 3
        assert "holds no key" in without.stderr and "asking for the passphrase" in without.stderr
        again = home.run("whoami", env=runtime)       # the passphrase arms the agent again
        assert again.returncode == 0, again.stderr
        assert "the agent keeps the key again" in again.stderr
        state = running.status()
        assert (state.unlocks, state.keys_served) == (2, 0)


def test_the_agent_forgets_the_key_at_its_max_ttl_even_while_it_is_used(
        home: Org, runtime: dict[str, str]) -> None:
    info = read_keystore_info(home.home / "keystore.json")
    with agent(home, runtime, "--ttl", "1h", "--max-ttl", "2s") as running:
        def used_until_forgotten() -> bool:
            try:
                fetch_key(running.socket, info)       # every use resets the idle timer
            except AgentLocked:
                return True
            return False

        wait_for("the maximum lifetime", used_until_forgotten)
        state = running.status()
        assert not state.unlocked and state.forgets_at is None and state.keys_served >= 1


def test_agent_status_shows_when_it_forgets_and_agent_stop_ends_it(
        home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime, "--ttl", "10m", "--max-ttl", "1h") as running:
        shown = json.loads(home.ok("agent", "status", "--json", env=runtime))
        assert shown["unlocked"] is True and shown["unlocks"] == 1
        assert shown["forgets_at"] and (shown["ttl_seconds"], shown["max_ttl_seconds"]) == (600, 3600)
        assert "key" not in shown and "salt" not in shown
        stopped = home.run("agent", "stop", env=runtime)
        assert stopped.returncode == 0 and "stopped and forgot the key" in stopped.stderr
        assert running.process.wait(timeout=BOUND) == 0
        assert not running.socket.exists()
        gone = home.run("agent", "status", env=runtime)
        assert gone.returncode == 1 and "no agent" in gone.stderr


def test_a_stale_socket_is_named_the_command_falls_back_and_start_replaces_it(
        home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime) as running:
        os.kill(running.pid, signal.SIGKILL)          # no chance to remove its socket
        running.process.wait(timeout=BOUND)
        assert running.socket.exists()
        result = home.run("whoami", env=runtime)
        assert result.returncode == 0, result.stderr
        assert "stale socket" in result.stderr and "asking for the passphrase" in result.stderr
        with agent(home, runtime) as second:
            assert second.socket == running.socket and second.status().unlocks == 1
            assert "removed the stale socket" in (second.process.stderr.readline()
                                                  if second.process.stderr else "")
    # and `agent stop` cleans up a stale socket too
    with agent(home, runtime) as third:
        os.kill(third.pid, signal.SIGKILL)
        third.process.wait(timeout=BOUND)
        stopped = home.run("agent", "stop", env=runtime)
        assert stopped.returncode == 0 and "removed the stale socket" in stopped.stderr
        assert not third.socket.exists()


def test_a_wrong_agent_socket_in_the_environment_is_named_and_the_command_falls_back(
        home: Org, runtime: dict[str, str], tmp_path: Path) -> None:
    not_a_socket = tmp_path / "agent.sock"
    not_a_socket.write_text("", encoding="utf-8")
    for where in (tmp_path / "absent.sock", not_a_socket):
        result = home.run("whoami", env={**runtime, "SCHAKEL_AGENT": str(where)})
        assert result.returncode == 0, result.stderr
        assert "no key from the agent" in result.stderr and str(where) in result.stderr


def test_a_second_agent_for_the_same_home_is_refused(home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime) as running:
        second = home.run("agent", "start", "--foreground", env=runtime)
        assert second.returncode == 1 and f"pid {running.pid}" in second.stderr
        assert running.status().unlocked


def test_agent_start_in_the_background_prints_shell_syntax_for_eval(
        home: Org, runtime: dict[str, str]) -> None:
    started = home.run("agent", "start", env=runtime)
    assert started.returncode == 0, started.stderr
    assignment, echo = started.stdout.splitlines()
    assert assignment.startswith("SCHAKEL_AGENT=") and assignment.endswith("; export SCHAKEL_AGENT;")
    path = assignment.split("=", 1)[1].split(";", 1)[0]
    try:
        env = {**runtime, "SCHAKEL_AGENT": path}
        result = home.run("whoami", passphrase=None, env=env)   # found through the variable
        assert result.returncode == 0, result.stderr
        assert agent_status(Path(path)).keys_served == 1
    finally:
        stopped = home.run("agent", "stop", env=runtime)
    assert stopped.returncode == 0, stopped.stderr
    assert echo.startswith("echo schakel agent pid ")
    wait_for("the background agent to remove its socket", lambda: not Path(path).exists())


# --------------------------------------------------------------------------- the wire


SLOW_STOP = """
import sys, time
from pathlib import Path
from schakel.keys.agent import POLL, Agent, bind, run
from schakel.keys.keystore import read_keystore_info

class SlowToAnswerStop(Agent):
    def answer(self, request):
        answer = super().answer(request)
        if request.op == "stop":
            time.sleep(5 * POLL)     # the loop sees `stopping` before this thread sends
        return answer

keystore = Path(sys.argv[1])
listener, _ = bind(Path(sys.argv[2]))
print("listening", flush=True)
run(listener, Path(sys.argv[2]), SlowToAnswerStop(home=keystore.parent, keystore=keystore,
    info=read_keystore_info(keystore), ttl=60, max_ttl=60))
"""


def test_the_agent_answers_stop_before_it_exits(home: Org, runtime: dict[str, str]) -> None:
    path = Path(runtime["XDG_RUNTIME_DIR"]) / "schakel" / "slow.sock"
    process = subprocess.Popen([sys.executable, "-c", SLOW_STOP, str(home.home / "keystore.json"),
                                str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout and process.stdout.readline() == "listening\n"
        stop_agent(path)             # raises when the process exits under the answer
        assert process.wait(timeout=BOUND) == 0
        assert not path.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_malformed_or_oversized_requests_are_refused_and_the_agent_keeps_serving(
        home: Org, runtime: dict[str, str]) -> None:
    info = read_keystore_info(home.home / "keystore.json")
    with agent(home, runtime) as running:
        for data in (b"not json\n", b"[1]\n", b'{"v": 2, "op": "status"}\n',
                     b'{"v": 1, "op": "shell"}\n', b'{"v": 1, "op": "status", "x": 1}\n',
                     b'{"v": 1, "op": "key", "key_id": "' + info.key_id.encode() + b'"}\n',
                     b'{"v": 1, "op": "key", "key_id": 5, "salt": "AAAA"}\n',
                     b'{"v":1,"op":"status"}\n{"v":1,"op":"status"}\n',
                     b"{" * MAX_MESSAGE_BYTES + b"\n"):
            answer = raw(running.socket, data)
            assert answer["ok"] is False and answer["error"]["code"] == "malformed", data[:40]
        try:       # the agent reads no further than its bound, answers and hangs up
            answer = raw(running.socket, b"x" * 100_000)
        except ConnectionResetError:
            pass   # with our bytes unread, the hang-up may reach us as a reset first
        else:
            assert answer["error"]["code"] == "malformed"
        other = raw(running.socket, json.dumps(
            {"v": 1, "op": "key", "key_id": "A" * 43, "salt": b64e(info.salt)}).encode() + b"\n")
        assert other["error"]["code"] == "other-keystore" and "key" not in other
        wrong = raw(running.socket, json.dumps(
            {"v": 1, "op": "add", "key_id": info.key_id, "salt": b64e(info.salt),
             "key": b64e(bytes(32))}).encode() + b"\n")
        assert wrong["error"]["code"] == "bad-key"
        state = running.status()
        assert state.unlocked and (state.unlocks, state.keys_served) == (1, 0)
        assert fetch_key(running.socket, info).secret == unlock_keystore_key(
            home.home / "keystore.json", PASSPHRASE).secret


def test_a_silent_peer_does_not_block_the_agent(home: Org, runtime: dict[str, str]) -> None:
    with agent(home, runtime) as running:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(running.socket))         # sends nothing
            assert wait_for("the agent to answer past the silent peer",
                            lambda: running.status().unlocked)


def test_a_key_from_the_agent_for_an_older_keystore_is_not_used(
        home: Org, runtime: dict[str, str]) -> None:
    keystore = home.home / "keystore.json"
    with agent(home, runtime) as running:
        keys = load_keystore(keystore, PASSPHRASE)
        save_keystore(keystore, keys, "another passphrase!", name="Welzijn Amersfoort",
                      kdf=KdfParams.INTERACTIVE, overwrite=True)   # a new salt
        result = home.run("whoami", env={**runtime, "SCHAKEL_PASSPHRASE": "another passphrase!"})
        assert result.returncode == 0, result.stderr
        assert "no key from the agent" in result.stderr and "other-keystore" in result.stderr
        assert running.status().keys_served == 0


# --------------------------------------------------------------------------- units


def test_a_keystore_key_opens_its_own_keystore_without_argon2id_and_no_other(
        tmp_path: Path) -> None:
    keys = PartnerKeys.generate()
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    for path in (first, second):
        save_keystore(path, keys, PASSPHRASE, name="Org", kdf=KdfParams.INTERACTIVE)
    key = unlock_keystore_key(first, PASSPHRASE)
    assert load_keystore(first, key).key_id == keys.key_id
    assert "secret" not in repr(key) and key.secret.hex() not in repr(key)
    with pytest.raises(KeystoreError, match="another keystore"):
        load_keystore(second, key)                        # same keys, other salt
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        load_keystore(first, KeystoreKey(key.salt, bytes(32)))
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        unlock_keystore_key(first, "not the passphrase")


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("8h", 28800),
                                            ("1h30m", 5400), ("168h", 604800)])
def test_agent_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "15 minutes", "-5", "169h", "1.5h", "m"])
def test_agent_durations_out_of_bounds_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_no_agent_answers_at_an_absent_socket(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, PartnerKeys.generate(), PASSPHRASE, name="Org", kdf=KdfParams.INTERACTIVE)
    with pytest.raises(AgentUnreachable, match="no agent socket"):
        fetch_key(tmp_path / "none.sock", read_keystore_info(path))
