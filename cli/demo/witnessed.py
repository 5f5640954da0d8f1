"""A witness cosigns two networks' audit logs, and a forked log is caught
(docs/protocol.md §17; docs/roles/witness.md).

The municipality runs a witness (``schakel witness init`` / ``add-log`` / ``serve``, a
process of its own on its own port).  The coordinators of the first two networks the
practices founded put it in their policy (a new version, quorum 1); the server's background
task submits each log's checkpoint and keeps the cosignature; the auditors then believe each
log only on a checkpoint the witness cosigned.  Then the server's log key (taken from the
server's data directory, as an insider who took the key would) signs a checkpoint of another
history of the same size: the witness refuses it and records why, and a partner's client
shown it with the witness's real cosignature copied onto it refuses it too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from schakel.cli.demo.stage import Founded, Stage
from schakel.cli.serverprocess import free_port
from schakel.protocol.crypto import sha256
from schakel.protocol.errors import SignatureError
from schakel.protocol.note import parse_note
from schakel.protocol.witnessing import (
    AUDIT, LOGS, log_verifier, sign_checkpoint, verify_network_checkpoint,
)
from schakel.server.serverkeys import load_or_create
from schakel.server.witnessing import submission

NAME = "getuige.gemeente-amersfoort.example/schakel"
PASSPHRASE = "demo witness passphrase"


def _witness(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(PYTHONIOENCODING="utf-8", SCHAKEL_WITNESS_PASSPHRASE=PASSPHRASE)
    return subprocess.run([sys.executable, "-m", "schakel.cli", "--lang", "en", "witness",
                           *args, "--dir", str(data_dir)], env=env, text=True, encoding="utf-8",
                          capture_output=True, timeout=120)


async def _up(url: str, proc: subprocess.Popen[bytes]) -> bool:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.poll() is not None:
                return False
            try:
                async with http.get(url + "/" + "0" * 64 + "/checkpoint") as answer:
                    if answer.status == 404:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    return False


async def _cosigned(f: Founded, log: str, deadline: float) -> str | None:
    """The checkpoint of the network's ``log`` once it carries a cosignature (the server's
    background task submits every few seconds), else None at ``deadline``."""
    conn = f.coordinator.p.session.conn
    while time.monotonic() < deadline:
        text = (await conn.get(f"/v1/networks/{f.network}/{log}/checkpoint"))["checkpoint"]
        if len(parse_note(text).signatures) > 1:
            return str(text)
        await asyncio.sleep(0.5)
    return None


async def witnessed(s: Stage) -> None:
    """Act: the municipality's witness cosigns two networks' logs; a forked log is caught."""
    t = s.t
    networks = s.networks[:2]
    if not networks:
        return
    t.section("A witness cosigns the networks' audit and trust logs; a forked log is caught")
    data_dir = s.homes.parent / "witness"
    made = _witness(data_dir, "init", "--name", NAME, "--json")
    if not t.check(made.returncode == 0, "the municipality creates its witness: its own "
                   "key, its own data directory (`schakel witness init`)", why=made.stderr):
        return
    vkey = json.loads(made.stdout)["vkey"]
    t.note(f"its verifier key, for the networks' policies: {vkey}", who="gemeente")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(SCHAKEL_WITNESS_PASSPHRASE=PASSPHRASE)
    log = open(s.homes.parent / "witness.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "witness", "serve", "--dir",
                             str(data_dir), "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not t.check(await _up(url, proc), f"`schakel witness serve` answers at {url}"):
            return
        await _witness_networks(s, networks, data_dir, vkey, url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _witness_networks(s: Stage, networks: list[Founded], data_dir: Path, vkey: str,
                            url: str) -> None:
    t = s.t
    log_key = networks[0].coordinator.p.networks.verified(networks[0].network).server_log
    for f in networks:
        for log in LOGS:
            added = _witness(data_dir, "add-log", "--vkey",
                             log_verifier(log, f.network, log_key).vkey())
            t.check(added.returncode == 0, f"{f.name}: the witness adds the network's {log} "
                    f"log (origin schakel/{log}/{f.network[:8]}…, the server's log key)",
                    why=added.stderr)
        policy = dict(f.coordinator.p.networks.verified(f.network).policy)
        policy["witnesses"] = {"quorum": 1, "max_age_hours": 24,
                               "witnesses": [{"vkey": vkey, "url": url}]}
        version = await t.holds(f"{f.name}: {f.coordinator.name} puts the witness in the "
                                f"policy (a new version, quorum 1, cosignatures at most 24 "
                                f"hours old)", f.coordinator.p.networks.change_policy(
                                    f.network, policy))
        if version is not None:
            t.note(f"policy version {version} in force", who=f.coordinator.name)
    deadline = time.monotonic() + 60
    texts = {}
    for f in networks:
        for log in LOGS:
            text = await _cosigned(f, log, deadline)
            if log == AUDIT:
                texts[f.network] = text
            if t.check(text is not None, f"{f.name}: the server submitted the {log} log's "
                       f"checkpoint and keeps the witness's cosignature"):
                assert text is not None
                t.note(text.split("\n\n")[0].replace("\n", " | "), who="checkpoint")
        v = await t.holds(f"{f.name}: {f.auditor.name} verifies the log and believes its "
                          f"head only with the witness's cosignature",
                          f.auditor.p.audit.verify(f.network))
        if v is not None:
            t.check(v.checked + v.erased == v.size and
                    [name for name, _ in v.witnessed_by] == [NAME],
                    f"size {v.size}: every entry checked against the head the witness "
                    f"cosigned ({', '.join(when for _, when in v.witnessed_by)})",
                    why=f"witnessed by {v.witnessed_by}")
    f = networks[0]
    real = texts.get(f.network)
    if real is None:
        return
    await _fork(s, f, real, url, log_key)


async def _fork(s: Stage, f: Founded, real: str, url: str, log_key: object) -> None:
    """The server's log key signs another history of the same size; the witness and a
    client both refuse it."""
    t = s.t
    checked = verify_network_checkpoint(real, log=AUDIT, network=f.network,
                                        log_key=log_key, witnesses=None,  # type: ignore[arg-type]
                                        now=int(time.time()))
    keys, _ = load_or_create(s.server_data)
    other_root = sha256(b"another history of " + checked.root)
    fork = sign_checkpoint(AUDIT, f.network, checked.size, other_root, keys.log_signer)
    t.note(f"someone with the server's log key signs a checkpoint of another history: size "
           f"{checked.size}, another root", who="attacker")
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/add-checkpoint",
                             data=submission(checked.size, [], fork)) as answer:
            status, reason = answer.status, (await answer.text()).strip()
    t.check(status == 422, f"the witness refuses it (HTTP {status}): \"{reason}\"",
            why=f"HTTP {status}")
    data_dir = s.homes.parent / "witness"
    listed = _witness(data_dir, "refused", "--json")
    records = json.loads(listed.stdout)["refused"] if listed.returncode == 0 else []
    t.check(any(int(r.get("size", -1)) == checked.size for r in records),
            "and records it with its reason (`schakel witness refused`): evidence for the "
            "coordinator and the auditors", why=listed.stderr or str(records))
    copied = fork.with_signatures(parse_note(real).signatures[1:]).format()
    tv = f.auditor.p.networks.verified(f.network)
    await t.refused(f"{f.auditor.name}'s client, shown the forked checkpoint with the witness's "
                    f"real cosignature copied onto it",
                    lambda: verify_network_checkpoint(
                        copied, log=AUDIT, network=f.network, log_key=tv.server_log,
                        witnesses=tv.policies[-1].policy.witnesses, now=int(time.time())),
                    error=SignatureError)


__all__ = ["witnessed"]
