"""A coordinator puts a witness in the network's policy from the command line, and the
witness's operator adds the network's log (docs/protocol.md §17.5; docs/roles/witness.md).

Real ``schakel`` subprocesses against a real ``schakel serve`` (tests/cli_harness.py) and a
real ``schakel witness serve`` process, as the coordinator and the municipality run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schakel.cli.serverprocess import free_port
from tests.test_cli_flows import World, create_network, init_all, served

PASSPHRASE = "witness passphrase"


def witness_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(SCHAKEL_LANG="en", SCHAKEL_WITNESS_PASSPHRASE=PASSPHRASE)
    return subprocess.run([sys.executable, "-m", "schakel.cli", "witness", *args, "--dir",
                           str(data_dir)], env=env, text=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served(tmp_path_factory, "cli-witnesses") as w:
        init_all(w, (w.coord, "Gemeente Amersfoort, regie"))
        w.network = create_network(w)["network"]
        yield w


@pytest.fixture(scope="module")
def witness(world: World) -> Iterator[tuple[str, str, Path]]:
    """A running witness: its verifier key, its URL and its data directory."""
    data_dir = world.root / "witness"
    made = witness_cli(data_dir, "init", "--name", "getuige.amersfoort.example/schakel",
                       "--json")
    assert made.returncode == 0, made.stderr
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(SCHAKEL_WITNESS_PASSPHRASE=PASSPHRASE)
    proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "witness", "serve", "--dir",
                             str(data_dir), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield json.loads(made.stdout)["vkey"], f"http://127.0.0.1:{port}", data_dir
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_network_show_gives_the_log_keys_a_witness_adds(world: World,
                                                          witness: tuple[str, str, Path]) -> None:
    """`network show` names the verifier key of the network's audit log (origin
    schakel/audit/<network>, the server's log key); the witness's operator adds it."""
    shown = world.coord.json("network", "show", world.network)
    [audit, *_] = shown["log_vkeys"]
    assert audit.startswith(f"schakel/audit/{world.network}+")
    for vkey in shown["log_vkeys"]:
        added = witness_cli(witness[2], "add-log", "--vkey", vkey)
        assert added.returncode == 0, added.stderr
    listed = witness_cli(witness[2], "show", "--json")
    assert audit in listed.stdout


def test_a_witness_put_in_the_policy_cosigns_and_the_log_verifies_with_it(
        world: World, witness: tuple[str, str, Path]) -> None:
    """`network policy --witness VKEY URL` signs a new policy version naming the witness
    (quorum: all given); the server then collects its cosignature, and `audit verify`
    believes the log on the witnessed checkpoint; `network show` names the witness."""
    vkey, url, _ = witness
    changed = world.coord.json("network", "policy", world.network, "--witness", vkey, url)
    assert changed["version"] == 2
    deadline = time.monotonic() + 60
    while True:
        verified = world.coord.run("audit", "verify", world.network)
        if verified.returncode == 0 or time.monotonic() > deadline:
            break
        assert verified.returncode == 4 and "witness" in verified.stderr, verified.stderr
        time.sleep(1)
    assert verified.returncode == 0, verified.stderr
    table = world.coord.ok("network", "show", world.network)
    assert "1 of getuige.amersfoort.example/schakel" in table


def test_a_quorum_above_the_witnesses_given_is_refused_before_the_passphrase(
        world: World, witness: tuple[str, str, Path]) -> None:
    vkey, url, _ = witness
    result = world.coord.run("network", "policy", world.network, "--witness", vkey, url,
                             "--quorum", "2", passphrase=None, stdin="")
    assert result.returncode == 2 and "quorum" in result.stderr
    assert "Passphrase" not in result.stderr
