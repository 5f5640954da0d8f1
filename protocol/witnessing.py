"""A network's logs as C2SP checkpoints, and the witness quorum a client requires
(docs/protocol.md §17.5).

The server's log key (``genesis.server.log``) signs, besides its JSON ``tree-head`` objects,
a checkpoint note for each log of a network: the origin ``schakel/<log>/<network>`` (``log``
is ``audit``, or ``trust`` for the trust log, which has no JSON head: §15.8), the size and
the root of the same RFC 6962 tree.  The note text starts with the origin, never with
``schakel/v1/``, so no note is a message the key signs for the protocol's JSON objects
(§2.2).  A network whose policy names witnesses is believed only on
a checkpoint that at least ``quorum`` of them cosigned at most ``max_age_hours`` ago.

Pure: the caller passes the time (POSIX seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from schakel.protocol.crypto import Signer, VerifyKey
from schakel.protocol.errors import MalformedError, ProtocolError
from schakel.protocol.note import (
    ED25519, Checkpoint, Note, NoteSignature, NoteVerifier, parse_note, parse_signature_line,
    sign_note, verify_checkpoint,
)

if TYPE_CHECKING:        # the policy part; importing it would load the schemas (jsonschema)
    from schakel.protocol.objects.network import WitnessSettings

#: The logs of a network: the audit log (§15.1) and the trust log of its chain objects
#: (§15.8), whose checkpoints the network's witnesses cosign.
AUDIT = "audit"
TRUST = "trust"
LOGS = (AUDIT, TRUST)
#: Seconds a cosignature's time may lie ahead of the verifier's clock (as a request's, §10.8).
MAX_FUTURE = 300


class NotWitnessedError(ProtocolError):
    """A checkpoint signed by the log but cosigned by fewer of the policy's witnesses than its
    quorum, counting only cosignatures at most ``max_age_hours`` old: the witnesses may be
    unreachable for the server, or the server keeps this reader from the log's newest state."""

    code = "not_witnessed"
    status_hint = 503


def origin(log: str, network: str) -> str:
    """The checkpoint origin (and note key name) of a network's log."""
    if log not in LOGS:
        raise MalformedError(f"unknown log {log!r}")
    return f"schakel/{log}/{network}"


def log_verifier(log: str, network: str, log_key: VerifyKey) -> NoteVerifier:
    """The note verifier of the server's log key for one log of ``network``."""
    return NoteVerifier(origin(log, network), ED25519, log_key)


def checkpoint_text(log: str, network: str, size: int, root: bytes) -> str:
    return Checkpoint(origin(log, network), size, root).text()


def sign_checkpoint(log: str, network: str, size: int, root: bytes, log_signer: Signer) -> Note:
    """The checkpoint of ``log`` at ``size``/``root``, signed by the log key (Ed25519 is
    deterministic: the same checkpoint is signed the same way every time)."""
    text = checkpoint_text(log, network, size, root)
    return Note(text, (sign_note(text, origin(log, network), log_signer),))


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    """A network checkpoint whose log signature verified, with the witnesses that cosigned it
    in time (``{name: POSIX time}``; empty when the policy names none)."""

    size: int
    root: bytes
    cosigned: dict[str, int]


def verify_network_checkpoint(note: str | bytes | Note, *, log: str, network: str,
                              log_key: VerifyKey, witnesses: WitnessSettings | None,
                              now: int) -> VerifiedCheckpoint:
    """Verify a checkpoint of ``log`` of ``network``: a note signed by the log key under its
    origin (``SignatureError``, ``MalformedError``), a checkpoint without extension lines; with
    ``witnesses``, cosigned by ``quorum`` of them, each cosignature dated no later than ``now``
    + :data:`MAX_FUTURE` and no earlier than ``now`` - ``max_age_hours`` (else
    :class:`NotWitnessedError`).  A line of a named witness that does not verify is a
    ``SignatureError``: a forged cosignature, never merely uncounted."""
    parsed = note if isinstance(note, Note) else parse_note(note)
    verifiers = witnesses.verifiers if witnesses is not None else ()
    checked = verify_checkpoint(parsed, log_verifier(log, network, log_key), verifiers, quorum=0)
    if checked.checkpoint.extensions:
        raise MalformedError("a network checkpoint has no extension lines")
    cosigned = dict(checked.cosigned)
    if witnesses is not None:
        oldest = now - witnesses.max_age_hours * 3600
        fresh = {name: t for name, t in cosigned.items() if oldest <= t <= now + MAX_FUTURE}
        if len(fresh) < witnesses.quorum:
            raise NotWitnessedError(
                f"the checkpoint of size {checked.checkpoint.size} is cosigned by {len(fresh)} "
                f"of the {witnesses.quorum} witnesses the policy requires (cosignatures at most "
                f"{witnesses.max_age_hours} hours old)",
                details={"cosigned": len(fresh), "quorum": witnesses.quorum,
                         "size": checked.checkpoint.size})
        cosigned = fresh
    return VerifiedCheckpoint(checked.checkpoint.size, checked.checkpoint.root, cosigned)


def cosignatures_of(lines: str, witnesses: WitnessSettings) -> list[NoteSignature]:
    """The signature lines of a witness's ``add-checkpoint`` answer that belong to one of
    ``witnesses`` (by name and key hash); others are ignored (c2sp.org/tlog-witness).  Not
    verified here: :func:`verify_network_checkpoint` does that with the note."""
    if not isinstance(lines, str) or not lines.endswith("\n"):
        raise MalformedError("an add-checkpoint answer is signature lines ending in a newline")
    sigs = [parse_signature_line(line) for line in lines[:-1].split("\n")]
    known = witnesses.verifiers
    return [s for s in sigs if any(v.matches(s) for v in known)]


__all__ = ["AUDIT", "TRUST", "LOGS", "MAX_FUTURE", "NotWitnessedError", "VerifiedCheckpoint",
           "checkpoint_text", "cosignatures_of", "log_verifier", "origin", "sign_checkpoint",
           "verify_network_checkpoint"]
