"""Errors of the client library (ADR 0007, "Verification").

Two things can go wrong with a server, and the client tells them apart because a
person must act differently on each:

* :class:`ServerRefused` -- the server said no (a 4xx/5xx answer with the ``error``
  object of docs/protocol.md §A.3).  The refusal is the server's to make: a policy,
  a conflict, an unknown case.  ``code``, ``status``, ``details`` and ``message``
  are the server's own.
* :class:`ServerMisbehaviour` -- the server (or someone between it and the client)
  handed over something that does not verify: a forged member, a swapped ciphertext,
  a dropped event, a rolled-back audit log, a hidden audit entry.  ``what`` is the stable
  short name of the ADR 0007 table (``audit-entry-missing``: ADR 0010); the client records it in its local state *before* it raises, so the
  evidence outlives the process.

:class:`ServerUnreachable` is the third case: no answer at all after the bounded
retries (the CLI's exit code 5).  :class:`NotFound` is a local lookup of something
this partner never synced.
"""

from __future__ import annotations

from typing import Any

from schakel.protocol.errors import ProtocolError

#: The stable names of ADR 0007's misbehaviour table (and nothing else).
MISBEHAVIOURS: frozenset[str] = frozenset({
    "genesis-untrusted", "member-key-substituted", "bad-signature", "context-mismatch",
    "ciphertext-swapped", "event-replayed", "event-reordered", "event-missing",
    "audit-rollback", "audit-fork", "audit-entry-rewritten", "audit-entry-missing",
    "receipt-missing", "receipt-invalid", "policy-untrusted", "rotation-untrusted",
    # The trust log (docs/protocol.md §15.8, §16.3; ADR 0048).
    "trust-log-rollback", "trust-log-fork", "trust-log-rewritten", "chain-withheld",
    "chain-not-logged",
})


class ServerRefused(ProtocolError):
    """A non-2xx answer.  ``code`` is the server's wire code (``conflict``,
    ``policy_violation``, ...), not this class's: callers branch on it."""

    code = "server_refused"

    def __init__(self, code: str, status: int, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code          # instance attribute: the server's code
        self.status = status
        self.status_hint = status

    def __repr__(self) -> str:
        return f"ServerRefused({self.status} {self.code}: {self.message})"


class ServerMisbehaviour(ProtocolError):
    """The server handed over something that does not verify (ADR 0007 table)."""

    code = "server_misbehaviour"
    status_hint = 502

    def __init__(self, what: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        if what not in MISBEHAVIOURS:
            raise ValueError(f"unknown misbehaviour {what!r}")
        super().__init__(f"{what}: {message}", details={"what": what, **(details or {})})
        self.what = what

    def __repr__(self) -> str:
        return f"ServerMisbehaviour({self.what}: {self.message})"


class ServerUnreachable(ProtocolError):
    """No answer from the server after the bounded retries (connection refused,
    timeouts, 503 while it shuts down)."""

    code = "server_unreachable"
    status_hint = 503


class NotFound(ProtocolError):
    """Something this partner does not hold locally (a case it never synced)."""

    code = "not_found"
    status_hint = 404


__all__ = ["MISBEHAVIOURS", "ServerRefused", "ServerMisbehaviour", "ServerUnreachable",
           "NotFound"]
