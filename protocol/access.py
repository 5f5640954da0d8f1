"""The person's right of access through one contact point (docs/protocol.md §15.7;
design flow 10; ADR 0033): what the coordinator's client computes from a BSN and a date
of birth before it asks any server, and the rules of the report it builds.

Sans-I/O: strings and keys in, tokens and one exception out.

* :func:`check_bsn` and :func:`check_birth_date` validate what the person handed the
  contact point (the BSN's 11-proef, a real calendar date not in the future) *before*
  anything is derived from it.  Their errors never repeat the value.
* :func:`lookup_tokens` derives the blind-index tokens (protocol.md §3.6) of the person
  under every match key the coordinator holds -- one per epoch, since a case carries the
  tokens of the epoch it was created in.  Only the tokens leave the client; the BSN never
  does.
* :func:`epoch_of_match` says which epoch a server's match belongs to, so that a case
  matched only by the token of another epoch than its own -- a collision of truncated
  tokens -- is dropped before it reaches a report.
* :func:`mask_bsn` is the only form of the BSN a report carries.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from schakel.protocol import envelopes
from schakel.protocol.crypto import MatchKey
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError
from schakel.protocol.pii import passes_elfproef

#: Why a lookup is made; the server records it in the lookup's audit entry.
LOOKUP_PURPOSES = ("access-request",)
#: Tokens in one lookup request (protocol.md §15.7): 16 epochs' BSN and name-dob tokens.
MAX_LOOKUP_TOKENS = 32
#: Cases one lookup answer names at most (the bound of an audit entry's ``cases``).
MAX_LOOKUP_CASES = 500


@dataclass(frozen=True, kw_only=True)
class LookupToken:
    """One blind-index token of the person: its ``kind``, the ``epoch`` whose match key
    made it, and the token bytes."""

    epoch: int
    kind: envelopes.BlindKind
    token: bytes

    def to_json(self) -> dict[str, str]:
        """The ``blind-index-token`` sent to the server (protocol.md §C.2): no epoch."""
        return {"kind": self.kind, "token": b64e(self.token)}


def check_bsn(value: str) -> str:
    """The BSN as nine ASCII digits: spaces and dots are allowed between digits, an
    eight-digit BSN gets its leading zero back (§3.6), and the 11-proef must hold.
    The error never contains the value (it is a BSN or a typo of one)."""
    if not isinstance(value, str) or len(value) > 20:
        raise MalformedError("a BSN has 9 digits", details={"field": "bsn"})
    stripped = value.strip().replace(" ", "").replace(".", "")
    if not (stripped.isascii() and stripped.isdigit() and len(stripped) in (8, 9)):
        raise MalformedError("a BSN has 9 digits (8 when its leading zero was dropped)",
                             details={"field": "bsn"})
    digits = stripped.zfill(9)
    if not passes_elfproef(digits):
        raise MalformedError("this is not a valid BSN: it fails the 11-proef (a typing "
                             "error?)", details={"field": "bsn"})
    return digits


def check_birth_date(value: str, *, today: datetime.date) -> str:
    """A date of birth as ``YYYY-MM-DD``: a calendar date from 1850 up to ``today``."""
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError(value)
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise MalformedError("a date of birth is written YYYY-MM-DD and is a real date",
                             details={"field": "birth_date"}) from None
    if not datetime.date(1850, 1, 1) <= day <= today:
        raise MalformedError("a date of birth lies between 1850 and today",
                             details={"field": "birth_date"})
    return day.isoformat()


def mask_bsn(bsn: str) -> str:
    """The BSN as a report shows it: the last three digits only (``******333``)."""
    return "*" * 6 + check_bsn(bsn)[-3:]


def lookup_tokens(match_keys: Mapping[int, MatchKey], *, bsn: str, birth_date: str,
                  family_name: str | None = None, opslimit: int, memlimit: int,
                  size: int) -> list[LookupToken]:
    """The person's tokens under each epoch's match key (epochs in ascending order):
    ``bsn`` always; ``name-dob`` when a family name is given (it finds cases created with
    a name and a date of birth but no BSN).  ``bsn`` and ``birth_date`` must have passed
    :func:`check_bsn` and :func:`check_birth_date`.  At most :data:`MAX_LOOKUP_TOKENS`:
    a network with more epochs needs several lookups (the caller batches)."""
    values: list[tuple[envelopes.BlindKind, str]] = [("bsn", envelopes.normalise_bsn(bsn))]
    if family_name is not None:
        values.append(("name-dob", f"{envelopes.normalise_name(family_name)}|{birth_date}"))
    return [LookupToken(epoch=epoch, kind=kind,
                        token=envelopes.blind_index(key, kind, normalised, opslimit=opslimit,
                                                    memlimit=memlimit, size=size))
            for epoch, key in sorted(match_keys.items()) for kind, normalised in values]


def batches(tokens: Sequence[LookupToken]) -> list[list[LookupToken]]:
    """``tokens`` in lookups of at most :data:`MAX_LOOKUP_TOKENS`."""
    return [list(tokens[i:i + MAX_LOOKUP_TOKENS])
            for i in range(0, len(tokens), MAX_LOOKUP_TOKENS)]


def epoch_of_match(sent: Sequence[LookupToken], indexes: Iterable[int],
                   case_epoch: int) -> list[envelopes.BlindKind]:
    """The kinds of the tokens at ``indexes`` of ``sent`` that belong to ``case_epoch``
    (the epoch in the case's signed header, whose match key made its tokens).  Empty:
    the server's match is a collision, or a lie, and names no case of this person.
    An index outside ``sent`` is malformed."""
    kinds: list[envelopes.BlindKind] = []
    for i in indexes:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(sent):
            raise MalformedError("a match names a token that was not sent",
                                 details={"field": "tokens"})
        if sent[i].epoch == case_epoch and sent[i].kind not in kinds:
            kinds.append(sent[i].kind)
    return sorted(kinds)


__all__ = ["LOOKUP_PURPOSES", "MAX_LOOKUP_TOKENS", "MAX_LOOKUP_CASES", "LookupToken",
           "check_bsn", "check_birth_date", "mask_bsn", "lookup_tokens", "batches",
           "epoch_of_match"]
