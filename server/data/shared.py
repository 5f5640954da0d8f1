"""What several server processes on one PostgreSQL database share besides the protocol's
data (ADR 0052): the replay cache and the token buckets of anonymous signal intake.

Each function is one statement, run by :meth:`schakel.server.pgstore.PgStore.record`
outside the group commit: it commits on its own and atomically, so two processes that
race for the same nonce or the same bucket's last token never both win.  PostgreSQL's SQL
(``LEAST``, ``GREATEST``): a SQLite server keeps both in memory (server/auth.py,
server/ratelimit.py).
"""

from __future__ import annotations

from schakel.server.storage import Db


def remember_nonce(db: Db, keyid: str, nonce: str, until: int, now: int) -> bool:
    """Remember ``(keyid, nonce)`` until ``until``; False when it is remembered already
    (a replay).  An entry whose time passed and that was not yet forgotten is taken over."""
    row = db.execute(
        "INSERT INTO replay_nonces (keyid, nonce, until) VALUES (?, ?, ?)"
        " ON CONFLICT (keyid, nonce) DO UPDATE SET until = excluded.until"
        " WHERE replay_nonces.until < ? RETURNING 1", (keyid, nonce, until, now)).fetchone()
    return row is not None


def forget_nonces(db: Db, now: int) -> int:
    """Forget every entry whose time passed; how many."""
    return db.execute("DELETE FROM replay_nonces WHERE until < ?", (now,)).rowcount


def take_token(db: Db, network: str, source: str, rate: int, now: float, hour: float
               ) -> float | None:
    """Spend one token of ``(network, source)``'s bucket (``rate`` tokens, refilled at
    ``rate`` per ``hour`` seconds; a new bucket is full).  Returns the tokens left, or
    None when the bucket holds less than one (nothing is spent)."""
    row = db.execute(
        "INSERT INTO intake_buckets (network, source, tokens, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (network, source) DO UPDATE SET"
        " tokens = LEAST(?, intake_buckets.tokens"
        " + GREATEST(0.0, excluded.at - intake_buckets.at) * ? / ?) - 1.0, at = excluded.at"
        " WHERE LEAST(?, intake_buckets.tokens"
        " + GREATEST(0.0, excluded.at - intake_buckets.at) * ? / ?) >= 1.0"
        " RETURNING tokens",
        (network, source, float(rate) - 1.0, now, float(rate), float(rate), hour,
         float(rate), float(rate), hour)).fetchone()
    return None if row is None else float(row[0])


def bucket_tokens(db: Db, network: str, source: str, rate: int, now: float, hour: float
                  ) -> float:
    """The tokens ``(network, source)``'s bucket holds at ``now`` (for ``retry_after``)."""
    row = db.execute("SELECT tokens, at FROM intake_buckets WHERE network = ? AND source = ?",
                     (network, source)).fetchone()
    if row is None:
        return float(rate)
    return min(float(rate), float(row[0]) + max(0.0, now - float(row[1])) * rate / hour)


def forget_full_buckets(db: Db, now: float, hour: float) -> int:
    """Forget buckets untouched for an hour or more (full again: as good as new)."""
    return db.execute("DELETE FROM intake_buckets WHERE at < ?", (now - hour,)).rowcount


__all__ = ["bucket_tokens", "forget_full_buckets", "forget_nonces", "remember_nonce",
           "take_token"]
