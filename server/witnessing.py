"""Each network's log as a C2SP checkpoint, and the cosignatures of the witnesses its policy
names (docs/protocol.md §17.5; c2sp.org/tlog-witness).

The server signs a checkpoint of a log (origin ``schakel/<log>/<network>``) with its log key
whenever it is asked for one: Ed25519 is deterministic, so the checkpoint of a size is the
same note every time, and only the cosignatures are stored.  A background task
(:func:`witness_task`) submits each network's newest checkpoint to every witness its policy
in force names, with a consistency proof from the size that witness cosigned last, and keeps
the cosignature line it answers: one row per (network, log, witness), the newest size that
witness cosigned, moved forward only.  A checkpoint whose size did not change is submitted
again once its cosignature is ``limits.witness_refresh`` seconds old, so that a client that
counts only recent cosignatures (the policy's ``max_age_hours``) keeps finding enough.

A witness that answers 409 with a size names the size it holds: the server proves
consistency from that size and submits once more.  A witness that holds a larger tree than
the log has, or that refuses a proof (422), has seen another history than this log: the task
logs it as an error (the operator must look; the witness keeps the evidence) and goes on.

Every request's failure is logged with the witness's name and the HTTP status only: no
checkpoint, no signature, no answer body beyond the witness's one-line reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from schakel.protocol.encoding import b64d
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.note import Note, NoteSignature, b64_std, parse_signature_line
from schakel.protocol.objects.network import WitnessRef, WitnessSettings
from schakel.protocol.witnessing import AUDIT, TRUST, sign_checkpoint
from schakel.server.audit import consistency_proof, head_at, latest_head
from schakel.server.errors import NotFound
from schakel.server.storage import Db
from schakel.server.trustlog import trust_consistency, trust_root, trust_size

if TYPE_CHECKING:
    from schakel.server.context import AppContext

#: The most bytes read of a witness's answer (a few signature lines, or a size).
MAX_ANSWER = 16 * 1024


# --------------------------------------------------------------------------- the logs

@dataclass(frozen=True)
class LogSource:
    """Where a log's signed sizes, roots and consistency proofs come from (``fn(db, network,
    ...)`` for ``Store.read``)."""

    latest: Callable[[Db, str], tuple[int, bytes] | None]
    root_at: Callable[[Db, str, int], bytes]
    consistency: Callable[[Db, str, int, int], list[bytes]]


def _head_root(envelope: Mapping[str, Any]) -> tuple[int, bytes]:
    signed = envelope["signed"]
    return int(signed["size"]), b64d(signed["root"], length=32)


def _audit_latest(db: Db, network: str) -> tuple[int, bytes] | None:
    head = latest_head(db, network)
    return None if head is None else _head_root(head)


def _audit_root_at(db: Db, network: str, size: int) -> bytes:
    return _head_root(head_at(db, network, size))[1]


def _trust_latest(db: Db, network: str) -> tuple[int, bytes] | None:
    size = trust_size(db, network)
    return None if size == 0 else (size, trust_root(db, network, size))


#: The logs whose checkpoints witnesses cosign, by name.
SOURCES: dict[str, LogSource] = {
    AUDIT: LogSource(_audit_latest, _audit_root_at, consistency_proof),
    TRUST: LogSource(_trust_latest, lambda db, network, size: trust_root(db, network, size),
                     trust_consistency),
}


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Cosigned:
    """The newest checkpoint size one witness cosigned for a log, and its signature line."""

    witness: str
    size: int
    time: int
    line: str


def cosignatures(db: Db, network: str, log: str) -> dict[str, Cosigned]:
    """``{witness name: Cosigned}`` of ``log`` of ``network``."""
    rows = db.execute("SELECT witness, size, time, line FROM witness_cosignatures"
                      " WHERE network = ? AND log = ?", (network, log)).fetchall()
    return {r[0]: Cosigned(r[0], int(r[1]), int(r[2]), r[3]) for r in rows}


def store_cosignature_txn(db: Db, network: str, log: str, cosigned: Cosigned) -> bool:
    """Keep ``cosigned`` unless a cosignature of a larger size is held (a slow answer must
    not move the record back); True when kept."""
    held = db.execute("SELECT size FROM witness_cosignatures WHERE network = ? AND log = ?"
                      " AND witness = ?", (network, log, cosigned.witness)).fetchone()
    if held is not None and int(held[0]) > cosigned.size:
        return False
    db.execute("INSERT INTO witness_cosignatures (network, log, witness, size, time, line)"
               " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (network, log, witness) DO UPDATE SET"
               " size = excluded.size, time = excluded.time, line = excluded.line",
               (network, log, cosigned.witness, cosigned.size, cosigned.time, cosigned.line))
    return True


# --------------------------------------------------------------------------- serving


def served_checkpoint(db: Db, network: str, log: str, log_signer: Any,
                      witnesses: WitnessSettings | None) -> str:
    """The checkpoint a client is given: of the largest size that ``quorum`` of the policy's
    witnesses cosigned (with their lines), else of the largest size any of them cosigned,
    else of the latest size, signed by the log key.  404 while the log is empty."""
    source = SOURCES[log]
    latest = source.latest(db, network)
    if latest is None:
        raise NotFound(f"the {log} log of this network is empty")
    size, root = latest
    lines: list[NoteSignature] = []
    if witnesses is not None:
        names = {w.verifier.name for w in witnesses.witnesses}
        held = [c for c in cosignatures(db, network, log).values() if c.witness in names]
        by_size: dict[int, list[Cosigned]] = {}
        for c in held:
            by_size.setdefault(c.size, []).append(c)
        quorate = [s for s, cs in by_size.items() if len(cs) >= witnesses.quorum]
        if quorate or by_size:
            size = max(quorate) if quorate else max(by_size)
            root = source.root_at(db, network, size)
            lines = [parse_signature_line(c.line) for c in by_size[size]]
    return sign_checkpoint(log, network, size, root, log_signer).with_signatures(lines).format()


# --------------------------------------------------------------------------- collecting


def submission(old: int, proof: list[bytes], note: Note) -> bytes:
    """An ``add-checkpoint`` request body (c2sp.org/tlog-witness)."""
    head = f"old {old}\n" + "".join(b64_std(p) + "\n" for p in proof)
    return (head + "\n" + note.format()).encode("utf-8")


class WitnessAnswer(Exception):
    """A witness's answer that is not a cosignature (its status and one-line reason)."""

    def __init__(self, status: int, reason: str, size: int | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason, self.size = status, reason, size


async def _post(http: aiohttp.ClientSession, witness: WitnessRef, body: bytes) -> str:
    url = witness.url.rstrip("/") + "/add-checkpoint"
    async with http.post(url, data=body, headers={"Content-Type": "text/plain"}) as answer:
        text = (await answer.content.read(MAX_ANSWER)).decode("utf-8", "replace")
        if answer.status == 200:
            return text
        size = None
        if answer.status == 409 and answer.content_type == "text/x.tlog.size":
            first = text.split("\n", 1)[0]
            size = int(first) if first.isdigit() and len(first) <= 20 else None
        raise WitnessAnswer(answer.status, text.split("\n", 1)[0][:200], size)


async def submit(ctx: "AppContext", http: aiohttp.ClientSession, network: str, log: str,
                 witness: WitnessRef, *, old: int, size: int, root: bytes) -> Cosigned:
    """Submit the checkpoint of ``size`` to ``witness`` with a proof from ``old`` (once more
    from the size a 409 names) and return its verified cosignature; raises
    :class:`WitnessAnswer` for any other answer, ``SignatureError`` for a line that does not
    verify."""
    source = SOURCES[log]
    note = sign_checkpoint(log, network, size, root, ctx.keys.log_signer)
    verifier = witness.verifier
    for attempt in (0, 1):
        proof = await ctx.store.read(source.consistency, network, old, size) if old else []
        try:
            text = await _post(http, witness, submission(old, proof, note))
        except WitnessAnswer as exc:
            if attempt == 0 and exc.status == 409 and exc.size is not None and \
                    0 <= exc.size <= size and exc.size != old:
                old = exc.size
                continue
            raise
        for line in text.split("\n"):
            if not line:
                continue
            try:
                sig = parse_signature_line(line)
            except MalformedError:
                continue
            if verifier.matches(sig):
                timestamp = verifier.verify(note.text, sig)
                assert timestamp is not None
                return Cosigned(verifier.name, size, timestamp, line)
        raise WitnessAnswer(200, "the answer holds no cosignature of this witness")
    raise AssertionError("unreachable")


async def collect(ctx: "AppContext", http: aiohttp.ClientSession,
                  only: str | None = None) -> list[dict[str, Any]]:
    """One pass: every network whose policy in force names witnesses (or only the network
    ``only``), every log, every witness whose cosignature is of an older size or older than
    ``witness_refresh``.  Returns what happened per submission (for the log and for
    tests)."""
    now = int(ctx.now().timestamp())
    refresh = ctx.config.limits.witness_refresh
    done: list[dict[str, Any]] = []
    for network, state in ctx.directory.networks():
        if only is not None and network != only:
            continue
        settings = state.policy.witnesses
        if settings is None:
            continue
        for log, source in SOURCES.items():
            latest = await ctx.store.read(source.latest, network)
            if latest is None:
                continue
            size, root = latest
            held = await ctx.store.read(cosignatures, network, log)
            due = [w for w in settings.witnesses
                   if (c := held.get(w.verifier.name)) is None or c.size < size
                   or now - c.time >= refresh]

            async def one(w: WitnessRef) -> dict[str, Any]:
                name = w.verifier.name
                c = held.get(name)
                outcome: dict[str, Any] = {"network": network, "log": log, "witness": name,
                                           "size": size}
                try:
                    got = await submit(ctx, http, network, log, w, old=c.size if c else 0,
                                       size=size, root=root)
                except WitnessAnswer as exc:
                    outcome.update(status=exc.status, reason=exc.reason)
                    if exc.status == 422 or (exc.size is not None and exc.size > size):
                        ctx.log.error("witness refused the log's checkpoint", network=network,
                                      log=log, witness=name, status=exc.status,
                                      reason=exc.reason, witness_size=exc.size, size=size)
                    else:
                        ctx.log.warning("witness did not cosign", network=network, log=log,
                                        witness=name, status=exc.status, reason=exc.reason)
                    return outcome
                except SignatureError:
                    ctx.log.error("witness answered a cosignature that does not verify",
                                  network=network, log=log, witness=name)
                    return {**outcome, "status": 200, "reason": "bad cosignature"}
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    ctx.log.warning("witness unreachable", network=network, log=log,
                                    witness=name, error=type(exc).__name__)
                    return {**outcome, "status": None, "reason": type(exc).__name__}
                await ctx.store.write(store_cosignature_txn, network, log, got)
                return {**outcome, "status": 200, "time": got.time}

            done.extend(await asyncio.gather(*(one(w) for w in due)))
    return done


async def collect_now(ctx: "AppContext", network: str) -> list[dict[str, Any]]:
    """A pass for ``network`` alone, at once (when a policy that names witnesses is put in
    force); what fails is logged as in a background pass and never fails the caller."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            return await collect(ctx, http, only=network)
    except Exception:
        ctx.log.exception("witness pass failed", network=network)
        return []


async def witness_task(ctx: "AppContext", interval: float) -> None:
    """Run :func:`collect` every ``interval`` seconds until cancelled; a failing pass is
    logged and the next one runs as usual.  Of several processes sharing a PostgreSQL
    database only the one that leads ``witnesses`` runs it (a witness is asked once per
    checkpoint, not once per process)."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            await asyncio.sleep(interval)
            try:
                if await ctx.store.leads("witnesses"):
                    await collect(ctx, http)
            except asyncio.CancelledError:
                raise
            except Exception:
                ctx.log.exception("witness pass failed")


__all__ = ["SOURCES", "Cosigned", "LogSource", "MAX_ANSWER", "WitnessAnswer", "collect",
           "collect_now", "cosignatures", "served_checkpoint", "store_cosignature_txn",
           "submission", "submit", "witness_task"]
