"""The witness service (docs/protocol.md §17.4, c2sp.org/tlog-witness): the real aiohttp app
on a real SQLite file, real Ed25519 keys and a real Merkle log; the CLI in a subprocess.

Each refusal the specification names has its test; the inconsistent checkpoints a split
view produces are refused with 422 and recorded with their reason."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import SignatureError
from schakel.protocol.merkle import EMPTY_ROOT, consistency_proof, root_hash
from schakel.protocol.note import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    Note,
    NoteVerifier,
    b64_std,
    parse_note,
    sign_note,
    verify_checkpoint,
)
from schakel.server.witness import keys as witness_keys
from schakel.server.witness.app import WitnessContext, make_app
from schakel.server.witness.rules import Refusal, parse_add_checkpoint
from schakel.server.witness.store import KeyReplaced, WitnessStore

ORIGIN = "schakel/audit/netwerk-noord"
T0 = 1_790_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@dataclass
class Log:
    """A transparency log: entries, a signing key, checkpoints and proofs."""

    origin: str
    signer: Signer
    entries: list[bytes]

    @classmethod
    def new(cls, origin: str = ORIGIN) -> Log:
        return cls(origin, Signer.generate(), [])

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.origin, ED25519, self.signer.verify_key)

    def grow(self, n: int) -> Log:
        self.entries += [f"entry {len(self.entries) + i}".encode() for i in range(n)]
        return self

    def checkpoint(self, size: int | None = None, *, root: bytes | None = None,
                   signer: Signer | None = None) -> str:
        size = len(self.entries) if size is None else size
        cp = Checkpoint(self.origin, size, root if root is not None
                        else root_hash(self.entries[:size]))
        text = cp.text()
        return Note(text, (sign_note(text, self.origin, signer or self.signer),)).format()

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.entries) if new is None else new
        return consistency_proof(self.entries[:new], old) if 0 < old < new else []


def body(old: int, proof: list[bytes], note: str) -> bytes:
    return (f"old {old}\n" + "".join(b64_std(h) + "\n" for h in proof) + "\n" + note).encode()


def _witness_key(tmp_path: Path, name: str = "witness.gemeente.example/w1") -> witness_keys.WitnessKey:
    return witness_keys.create(tmp_path, name, environ={})


async def start(aiohttp_client: Any, tmp_path: Path, log: Log | None = None,
                key: witness_keys.WitnessKey | None = None) -> tuple[Any, WitnessContext]:
    store = WitnessStore.open(tmp_path)
    if log is not None:
        store.add_log(log.verifier.vkey(), T0)
    key = key or (witness_keys.load(tmp_path, environ={})
                  if (tmp_path / witness_keys.KEYSTORE_FILE).exists() else _witness_key(tmp_path))
    ctx = WitnessContext(store, key, Clock())
    return await aiohttp_client(make_app(ctx)), ctx


async def submit(client: Any, old: int, proof: list[bytes], note: str) -> tuple[int, str, str]:
    resp = await client.post("/add-checkpoint", data=body(old, proof, note))
    return resp.status, await resp.text(), resp.headers.get("Content-Type", "")


async def cosigned(client: Any, ctx: WitnessContext, log: Log, old: int = 0) -> str:
    """Submit the log's current checkpoint from ``old``; assert it is cosigned; the line."""
    note = log.checkpoint()
    status, text, _ = await submit(client, old, log.proof(old), note)
    assert status == 200, text
    return text


# --- cosigning ------------------------------------------------------------------------------

async def test_a_consistent_checkpoint_is_cosigned_and_the_cosignature_verifies(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(5)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    first = await cosigned(client, ctx, log)
    log.grow(6)
    line = await cosigned(client, ctx, log, old=5)
    assert line.startswith("— witness.gemeente.example/w1 ") and line.endswith("\n")
    note = parse_note(log.checkpoint())
    witnessed = verify_checkpoint(parse_note(note.format() + line), log.verifier,
                                  [ctx.key.verifier], quorum=1)
    assert witnessed.checkpoint.size == 11
    assert witnessed.cosigned[ctx.key.name] > T0
    # the first cosignature is over the first checkpoint, not this one
    with pytest.raises(SignatureError):
        verify_checkpoint(parse_note(note.format() + first), log.verifier,
                          [ctx.key.verifier], quorum=1)


async def test_the_monitoring_endpoint_serves_the_latest_cosigned_checkpoint(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(3)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    path = f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"
    assert (await client.get(path)).status == 404
    await cosigned(client, ctx, log)
    resp = await client.get(path)
    assert resp.status == 200
    served = parse_note(await resp.text())
    witnessed = verify_checkpoint(served, log.verifier, [ctx.key.verifier], quorum=1)
    assert witnessed.checkpoint.size == 3
    # only the log's and the witness's lines: another key's line on the submission is dropped
    assert [s.name for s in served.signatures] == [ORIGIN, ctx.key.name]


async def test_an_unknown_key_line_on_the_submission_is_ignored(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(3)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    other = Signer.generate()
    note = parse_note(log.checkpoint())
    extra = sign_note(note.text, "someone.else/log", other)
    status, text, _ = await submit(client, 0, [], note.with_signatures([extra]).format())
    assert status == 200, text


async def test_resubmitting_the_cosigned_checkpoint_is_cosigned_again(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(4)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    await cosigned(client, ctx, log, old=4)


async def test_an_empty_log_is_cosigned_with_the_empty_root(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new()
    client, ctx = await start(aiohttp_client, tmp_path, log)
    assert root_hash([]) == EMPTY_ROOT
    await cosigned(client, ctx, log)


# --- refusals -------------------------------------------------------------------------------

async def test_unknown_origin_is_refused_404(aiohttp_client: Any, tmp_path: Path) -> None:
    known, unknown = Log.new().grow(2), Log.new("schakel/audit/elders").grow(2)
    client, _ctx = await start(aiohttp_client, tmp_path, known)
    status, text, ctype = await submit(client, 0, [], unknown.checkpoint())
    assert status == 404 and text.startswith("unknown-origin: ") and ctype.startswith("text/plain")


async def test_no_signature_of_the_log_key_is_refused_403(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(2)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    impostor = log.checkpoint(signer=Signer.generate())     # same name, other key hash
    status, text, _ = await submit(client, 0, [], impostor)
    assert status == 403 and text.startswith("bad-signature: ")


async def test_a_bad_signature_of_the_log_key_is_refused_403(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(2)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    good = parse_note(log.checkpoint())
    sig = good.signatures[0]
    bad = type(sig)(sig.name, sig.key_hash, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    # a good line and a bad line of the same key: the note is refused
    status, text, _ = await submit(client, 0, [], Note(good.text, (sig, bad)).format())
    assert status == 403 and text.startswith("bad-signature: ")
    assert ctx.store.refused() == []


async def test_old_above_size_is_refused_400(aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(2)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    status, text, _ = await submit(client, 3, [], log.checkpoint())
    assert status == 400 and text.startswith("old-above-size: ")


@pytest.mark.parametrize("raw", [
    b"old 01\n\n", b"old -1\n\n", b"old 1", b"olds 1\n\n", b"\xff\xfe\n\n",
    b"old 0\nnot base64!\n\n", b"old 0\nAAAA\n\n",
    b"old 0\n\nnot a note\n",
    b"old 0\n\norigin\n1\nAAAA\n\n\xe2\x80\x94 origin AAAAAAAA\n",
], ids=["leading-zero", "negative", "no-newline", "bad-keyword", "not-utf8",
        "proof-not-base64", "proof-short-hash", "not-a-note", "short-root"])
async def test_a_malformed_request_is_refused_400(aiohttp_client: Any, tmp_path: Path,
                                                  raw: bytes) -> None:
    client, _ctx = await start(aiohttp_client, tmp_path, Log.new())
    resp = await client.post("/add-checkpoint", data=raw)
    assert resp.status == 400
    assert (await resp.text()).startswith("malformed: ")


async def test_more_than_63_proof_lines_are_refused_400(aiohttp_client: Any,
                                                        tmp_path: Path) -> None:
    log = Log.new().grow(2)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    status, text, _ = await submit(client, 1, [b"\0" * 32] * 64, log.checkpoint())
    assert status == 400 and "63" in text


async def test_a_body_above_64_kib_is_refused_413(aiohttp_client: Any, tmp_path: Path) -> None:
    client, _ctx = await start(aiohttp_client, tmp_path, Log.new())
    resp = await client.post("/add-checkpoint", data=b"old 0\n" + b"A" * (64 * 1024))
    assert resp.status == 413


async def test_old_other_than_the_cosigned_size_is_refused_409_with_the_size(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(5)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    log.grow(3)
    status, text, ctype = await submit(client, 0, [], log.checkpoint())
    assert (status, text, ctype) == (409, "5\n", "text/x.tlog.size")
    status, text, ctype = await submit(client, 3, log.proof(3), log.checkpoint())
    assert (status, text, ctype) == (409, "5\n", "text/x.tlog.size")
    assert ctx.store.refused() == []          # a stale old size is no evidence


async def test_a_proof_with_old_zero_is_refused_422(aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(4)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    status, text, _ = await submit(client, 0, log.proof(2), log.checkpoint())
    assert status == 422 and text.startswith("proof-with-old-zero: ")


async def test_a_size_zero_checkpoint_without_the_empty_root_is_refused_422(
        aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new()
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    status, text, _ = await submit(client, 0, [], log.checkpoint(0, root=b"\x07" * 32))
    assert status == 422 and text.startswith("empty-root-mismatch: ")


async def test_a_fork_at_the_cosigned_size_is_refused_422_and_recorded(
        aiohttp_client: Any, tmp_path: Path) -> None:
    """LS-52: the log shows a second view at the same size; the witness does not cosign it."""
    log = Log.new().grow(6)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    fork = Log(log.origin, log.signer, list(log.entries))
    fork.entries[2] = b"another entry 2"
    forked = fork.checkpoint()
    status, text, ctype = await submit(client, 6, [], forked)
    assert status == 422 and ctype.startswith("text/plain")
    assert text.startswith("fork-at-same-size: ") and text.count("\n") == 1
    [row] = ctx.store.refused()
    assert row["reason"] == "fork-at-same-size" and row["origin"] == ORIGIN
    assert (row["old_size"], row["size"], row["checkpoint"]) == ("6", "6", forked)
    assert ctx.store.latest(ORIGIN).root == root_hash(log.entries)


async def test_a_later_checkpoint_whose_proof_does_not_connect_is_refused_422_and_recorded(
        aiohttp_client: Any, tmp_path: Path) -> None:
    """LS-52: a larger tree that does not extend the cosigned one (a rewritten entry)."""
    log = Log.new().grow(6)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    fork = Log(log.origin, log.signer, list(log.entries)).grow(4)
    fork.entries[1] = b"rewritten entry 1"
    proof = fork.proof(6)
    status, text, _ = await submit(client, 6, proof, fork.checkpoint())
    assert status == 422 and text.startswith("proof-does-not-verify: ")
    [row] = ctx.store.refused()
    assert (row["reason"], row["old_size"], row["size"]) == ("proof-does-not-verify", "6", "10")
    assert row["proof"] == "".join(b64_std(h) + "\n" for h in proof)
    assert ctx.store.latest(ORIGIN).size == 6
    # the honest continuation is still cosigned
    log.grow(4)
    await cosigned(client, ctx, log, old=6)


async def test_two_inconsistent_checkpoints_the_second_is_refused_and_recorded(
        aiohttp_client: Any, tmp_path: Path) -> None:
    """LS-52: the server gives two views; whichever reaches the witness second is refused."""
    log = Log.new().grow(3)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    view_a = Log(log.origin, log.signer, list(log.entries)).grow(2)
    view_b = Log(log.origin, log.signer, list(log.entries) + [b"b3", b"b4"])
    assert (await submit(client, 3, view_a.proof(3), view_a.checkpoint()))[0] == 200
    status, _text, _ = await submit(client, 5, [], view_b.checkpoint())
    assert status == 422
    [row] = ctx.store.refused()
    assert row["reason"] == "fork-at-same-size" and row["checkpoint"] == view_b.checkpoint()


async def test_a_replayed_cosignature_of_another_checkpoint_does_not_verify(
        aiohttp_client: Any, tmp_path: Path) -> None:
    """LS-53: a cosignature moved onto another checkpoint, or with another time, fails."""
    log = Log.new().grow(3)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    line = await cosigned(client, ctx, log)
    other = Log(log.origin, log.signer, list(log.entries)).grow(1).checkpoint()
    with pytest.raises(SignatureError):
        verify_checkpoint(parse_note(other + line), log.verifier, [ctx.key.verifier], quorum=1)
    sig = parse_note(log.checkpoint() + line).signatures[1]
    later = (int.from_bytes(sig.signature[:8], "big") + 1).to_bytes(8, "big")
    moved = type(sig)(sig.name, sig.key_hash, later + sig.signature[8:])
    with pytest.raises(SignatureError):
        verify_checkpoint(Note(parse_note(log.checkpoint()).text,
                               (parse_note(log.checkpoint()).signatures[0], moved)),
                          log.verifier, [ctx.key.verifier], quorum=1)


# --- state ----------------------------------------------------------------------------------

async def test_a_restarted_witness_keeps_its_state(aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(4)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    fork = Log(log.origin, log.signer, [b"x"] * 4)
    assert (await submit(client, 4, [], fork.checkpoint()))[0] == 422
    await client.close()

    client, ctx2 = await start(aiohttp_client, tmp_path)
    assert ctx2.key.vkey == ctx.key.vkey
    assert (await submit(client, 0, [], log.checkpoint()))[:2] == (409, "4\n")
    assert [r["reason"] for r in ctx2.store.refused()] == ["fork-at-same-size"]
    log.grow(2)
    await cosigned(client, ctx2, log, old=4)


async def test_concurrent_submissions_never_roll_back(aiohttp_client: Any,
                                                      tmp_path: Path) -> None:
    """c2sp.org/tlog-witness's race: of submissions from the same old size, one is cosigned
    and the others get 409; the stored size never goes down."""
    log = Log.new().grow(1)
    client, ctx = await start(aiohttp_client, tmp_path, log)
    await cosigned(client, ctx, log)
    log.grow(40)
    stored = 1
    for _round in range(6):
        sizes = sorted({stored + k for k in (1, 2, 3, 5, 8, 13)} & set(range(stored + 1, 42)))
        if not sizes:
            break
        answers = await asyncio.gather(*(
            submit(client, stored, log.proof(stored, n), log.checkpoint(n)) for n in sizes))
        winners = [n for n, (status, _, _) in zip(sizes, answers) if status == 200]
        assert len(winners) == 1, answers
        losers = [a for a in answers if a[0] != 200]
        assert all(a[:2] == (409, f"{winners[0]}\n") for a in losers), answers
        latest = ctx.store.latest(ORIGIN)
        assert latest.size == winners[0] > stored
        stored = latest.size


async def test_two_witness_processes_on_one_file_never_roll_back(aiohttp_client: Any,
                                                                 tmp_path: Path) -> None:
    """Two apps (two connections) on the same SQLite file: BEGIN IMMEDIATE serialises them."""
    log = Log.new().grow(30)
    a, ctx_a = await start(aiohttp_client, tmp_path, log)
    b, _ctx_b = await start(aiohttp_client, tmp_path)
    answers = await asyncio.gather(*(
        submit(client, 0, [], log.checkpoint(n)) for n, client in
        zip(range(10, 30, 2), [a, b] * 5)))
    assert sum(1 for s, _, _ in answers if s == 200) == 1
    size = ctx_a.store.latest(ORIGIN).size
    assert all(ans[:2] == (409, f"{size}\n") for ans in answers if ans[0] != 200)


# --- the command line -----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _schakel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "schakel.cli", "--lang", "en", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_cli_inits_adds_a_log_serves_and_cosigns(tmp_path: Path) -> None:
    env = {**os.environ, "SCHAKEL_DEBUG": "1"}
    data = tmp_path / "w"
    done = _schakel("witness", "init", "--dir", str(data), "--name", "ggd.example/w1",
                    "--json", env=env)
    assert done.returncode == 0, done.stderr
    vkey = json.loads(done.stdout)["vkey"]
    witness = NoteVerifier("ggd.example/w1", COSIGNATURE_V1,
                           witness_keys.load(data, environ={}).signer.verify_key)
    assert vkey == witness.vkey()
    log = Log.new().grow(7)
    done = _schakel("witness", "add-log", "--dir", str(data), "--vkey", log.verifier.vkey(),
                    env=env)
    assert done.returncode == 0, done.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "witness", "serve", "--dir",
                             str(data), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/{'0' * 64}/checkpoint", timeout=1)
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.05)
        req = urllib.request.Request(f"{url}/add-checkpoint",
                                     data=body(0, [], log.checkpoint()), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            line = resp.read().decode()
        verify_checkpoint(parse_note(log.checkpoint() + line), log.verifier, [witness],
                          quorum=1)
        fork = Log(log.origin, log.signer, [b"y"] * 7).checkpoint()
        req = urllib.request.Request(f"{url}/add-checkpoint", data=body(7, [], fork),
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 422
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "ggd.example/w1" in out
    assert witness_keys.load(data, environ={}).signer.export_seed().hex() not in out + err
    shown = _schakel("witness", "show", "--dir", str(data), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    shown_doc = json.loads(shown.stdout)
    assert shown_doc["vkey"] == vkey
    assert [(c["origin"], c["size"]) for c in shown_doc["checkpoints"]] == [(ORIGIN, 7)]
    refused_doc = _schakel("witness", "refused", "--dir", str(data), "--json", env=env)
    assert [r["reason"] for r in json.loads(refused_doc.stdout)["refused"]] == [
        "fork-at-same-size"]
    text = _schakel("witness", "refused", "--dir", str(data), env=env)
    assert "fork-at-same-size" in text.stdout


async def test_a_chunked_body_above_64_kib_is_refused_413(aiohttp_client: Any,
                                                          tmp_path: Path) -> None:
    client, _ctx = await start(aiohttp_client, tmp_path, Log.new())

    async def chunks() -> Any:
        for _ in range(20):
            yield b"A" * 4096

    resp = await client.post("/add-checkpoint", data=chunks())
    assert resp.status == 413


async def test_a_chunked_body_is_read_whole(aiohttp_client: Any, tmp_path: Path) -> None:
    log = Log.new().grow(3)
    client, _ctx = await start(aiohttp_client, tmp_path, log)
    data = body(0, [], log.checkpoint())

    async def chunks() -> Any:
        for i in range(0, len(data), 7):
            yield data[i:i + 7]
            await asyncio.sleep(0)

    resp = await client.post("/add-checkpoint", data=chunks())
    assert resp.status == 200, await resp.text()


@given(st.binary(max_size=600), st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_parse_add_checkpoint_raises_only_refusals(head: bytes, tail: bytes) -> None:
    """Arbitrary bytes, and arbitrary bytes around a real request, are a 400 or 413 refusal
    or a request; nothing else escapes the parser."""
    real = body(0, [b"\1" * 32], Log.new().grow(2).checkpoint())
    for data in (head, head + real, real[: len(head) % len(real)] + tail, real + tail):
        try:
            parse_add_checkpoint(data)
        except Refusal as refusal:
            assert refusal.status in (400, 413)


def test_a_log_witnessed_under_one_key_is_not_given_another_silently(tmp_path: Path) -> None:
    """`add-log` of an origin the witness knows under another key is refused: a witness
    that took any key for an origin it witnesses would cosign whatever the new key signs
    (a server that swapped its log key, or a coordinator tricked into passing one on).
    With ``replace`` (the operator confirmed the new key out of band) it is taken."""
    store = WitnessStore.open(tmp_path)
    try:
        first, second = Log.new(), Log.new()
        assert first.verifier.name == second.verifier.name
        store.add_log(first.verifier.vkey(), T0)
        store.add_log(first.verifier.vkey(), T0)              # the same key again: fine
        with pytest.raises(KeyReplaced):
            store.add_log(second.verifier.vkey(), T0)
        assert store.log(ORIGIN) == first.verifier
        store.add_log(second.verifier.vkey(), T0, replace=True)
        assert store.log(ORIGIN) == second.verifier
    finally:
        store.close()
