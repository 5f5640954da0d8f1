"""What a witness decides about an ``add-checkpoint`` request (docs/protocol.md §17.4,
c2sp.org/tlog-witness).  Pure: bytes and the witness's stored state in, a decision or one
:class:`Refusal` out; the store (:mod:`schakel.server.witness.store`) runs
:func:`check_consistency` and the update in one transaction, the app answers.

The checks, in the order the specification gives them:

1. the body parses: ``old <size>``, at most 63 proof lines, an empty line, a checkpoint
   note (400 ``malformed``);
2. the origin is a log the witness knows (404 ``unknown-origin``);
3. the log's key signed it, and no line of that key fails (403 ``bad-signature``);
4. ``old`` is not above the checkpoint's size (400 ``old-above-size``);
5. ``old`` is the size of the latest checkpoint cosigned for the origin, or 0 (409
   ``old-size-mismatch``, the body the latest size);
6. a size-0 checkpoint has the empty tree's root (422 ``empty-root-mismatch``); old 0 takes
   no proof (422 ``proof-with-old-zero``); equal sizes have equal roots (422
   ``fork-at-same-size``); otherwise the RFC 9162 consistency proof verifies (422
   ``proof-does-not-verify``).

A refusal at step 6 of a checkpoint the log's key signed is evidence of a split view: the
store records it with its reason (``Refusal.evidence``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schakel.protocol.errors import MalformedError, ProofError, SignatureError
from schakel.protocol.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from schakel.protocol.note import (
    Checkpoint,
    Note,
    NoteVerifier,
    b64_std_decode,
    parse_checkpoint,
    parse_note,
    verify_note,
)

#: The most bytes an add-checkpoint body may have: 64 proof lines and a full note fit.
MAX_BODY = 64 * 1024
#: The most consistency-proof lines a client may send (c2sp.org/tlog-witness).
MAX_PROOF_LINES = 63
#: Content type of a 409 answer's body, the latest cosigned size.
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


class Refusal(Exception):
    """A request the witness refuses: an HTTP ``status``, a stable ``reason`` code and a
    one-line ``message``.  ``evidence``: the checkpoint was signed by the log's key but is
    inconsistent with what the witness cosigned (recorded)."""

    def __init__(self, status: int, reason: str, message: str, *, evidence: bool = False,
                 size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.evidence = evidence
        #: For 409: the size of the latest cosigned checkpoint.
        self.size = size


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed add-checkpoint request."""

    old: int
    proof: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class Latest:
    """The latest checkpoint the witness cosigned for an origin."""

    size: int
    root: bytes


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body (step 1); :class:`Refusal` 400 ``malformed``."""
    if len(body) > MAX_BODY:
        raise Refusal(413, "too-large", f"the body is larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "malformed", "the body is not UTF-8") from None
    head, sep, rest = text.partition("\n\n")
    if not sep:
        raise Refusal(400, "malformed", "the body has no empty line before the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise Refusal(400, "malformed",
                      "the first line is 'old <size>', a decimal without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, "malformed", f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = tuple(b64_std_decode(line, "consistency proof", length=HASH_SIZE)
                      for line in lines[1:])
        note = parse_note(rest)
        checkpoint = parse_checkpoint(note.text)
    except MalformedError as exc:
        raise Refusal(400, "malformed", str(exc)) from None
    old = int(match.group(1))
    if old >= 1 << 64:
        raise Refusal(400, "malformed", "the old size is above 2^64-1")
    return AddCheckpoint(old, proof, note, checkpoint)


def check_signature(request: AddCheckpoint, log: NoteVerifier | None) -> None:
    """Steps 2-4: a known origin (404), signed by the log's key (403), old <= size (400)."""
    if log is None:
        raise Refusal(404, "unknown-origin",
                      f"this witness does not witness the log {request.checkpoint.origin}")
    try:
        verify_note(request.note, [log])
    except SignatureError:
        raise Refusal(403, "bad-signature",
                      "no valid signature of the log's key on the checkpoint") from None
    if request.old > request.checkpoint.size:
        raise Refusal(400, "old-above-size", "the old size is above the checkpoint's size")


def check_consistency(request: AddCheckpoint, latest: Latest | None) -> None:
    """Steps 5-6 against the latest cosigned checkpoint (None: never cosigned one).  Run
    in the same transaction as the update that follows it (the specification's race)."""
    stored = latest.size if latest is not None else 0
    if request.old != stored:
        raise Refusal(409, "old-size-mismatch",
                      f"the latest checkpoint this witness cosigned has size {stored}",
                      size=stored)
    checkpoint = request.checkpoint
    if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
        raise Refusal(422, "empty-root-mismatch",
                      "a checkpoint of size 0 has the root of the empty tree", evidence=True)
    if request.old == 0:
        if request.proof:
            raise Refusal(422, "proof-with-old-zero",
                          "a consistency proof from size 0 is empty", evidence=True)
        return
    assert latest is not None
    if checkpoint.size == latest.size:
        if checkpoint.root != latest.root:
            raise Refusal(422, "fork-at-same-size",
                          f"another root for size {latest.size} than the one cosigned",
                          evidence=True)
        if request.proof:
            raise Refusal(422, "proof-does-not-verify",
                          "a consistency proof between equal sizes is empty")
        return
    try:
        verify_consistency(latest.size, checkpoint.size, latest.root, checkpoint.root,
                           list(request.proof))
    except (ProofError, MalformedError):
        raise Refusal(422, "proof-does-not-verify",
                      f"the consistency proof from size {latest.size} to {checkpoint.size} "
                      f"does not verify against the cosigned root", evidence=True) from None


def monitoring_note(request: AddCheckpoint, log: NoteVerifier, cosignature: str) -> str:
    """The note the monitoring endpoint serves: the checkpoint with the log's signature
    lines (which verified) and the witness's cosignature line."""
    own = "".join(sig.line() for sig in request.note.signatures if log.matches(sig))
    return request.note.text + "\n" + own + cosignature


__all__ = [
    "MAX_BODY",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "Latest",
    "Refusal",
    "check_consistency",
    "check_signature",
    "monitoring_note",
    "parse_add_checkpoint",
]
