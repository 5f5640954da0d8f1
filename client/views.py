"""What the client library hands back: plain dataclasses, no behaviour.

They hold what this partner *verified and could read*; nothing in them came from the
server unchecked.  Every view has ``to_json()`` for the command line's ``--json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr}
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


class _View:
    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (fields marked ``repr=False`` -- secrets -- are left out)."""
        out: dict[str, Any] = _json(self)
        return out


@dataclass
class EventView(_View):
    """One event of a case as this partner verified it.  ``plaintext`` is None when
    the partner does not hold the case-key version the event was written under
    (history before it joined, or a case it was never given)."""

    seq: int
    event: str
    author: str
    author_name: str
    created: str
    plaintext: dict[str, Any] | None
    case_key_version: int = 1
    status: str | None = None
    #: The reason code of the network-policy rule this event breaks (docs/protocol.md §7),
    #: or None.  A breaking event is still shown: the anonymous layer is a shared record.
    breach: str | None = None


@dataclass
class PolicyBreach(_View):
    """An event that breaks a rule of the network policy every reader checks
    (docs/protocol.md §7: "informal where possible"), found when the case was folded."""

    seq: int
    event: str
    author: str
    author_name: str
    reason: str
    message: str


@dataclass
class CaseView(_View):
    """A case (or consult) folded from its verified events.

    ``state`` is the anonymous layer: the intake fields (``age_band``,
    ``neighbourhood``, ``domains``, ``severity``, ``care_status``, ``source``,
    ``complex``, ``summary``) and the lists ``analysis``, ``actions``, ``feedback``
    and ``notes``, each entry with its ``seq``, ``author`` and ``created``.
    ``audience``: the members of a subset case (ADR 0031), None when the whole core reads
    it.  ``readable``: this partner holds the case's current case key (it reads new
    events and may write).  ``breaches``: the events this partner could read that
    break the network policy's action rules, in order (each also marked on its
    :class:`EventView`)."""

    network: str
    case: str
    kind: str
    owner: str
    status: str
    created: str
    readable: bool
    state: dict[str, Any]
    events: list[EventView]
    case_key_version: int
    epoch: int = 1
    breaches: list[PolicyBreach] = field(default_factory=list)
    audience: tuple[str, ...] | None = None


@dataclass
class SignalTicket(_View):
    """What a signaller keeps to read the status of its signal later.  The receipt
    token is shown once by the server; ``reply_secret`` is the one-time box key the
    coordinator's messages are sealed to (only for a signaller without a home; a
    partner keeps it in its state as secret ``signal-reply``)."""

    network: str
    signal: str
    receipt: str = field(repr=False)
    server: str
    sent: str
    anonymous: bool = False
    reply_secret: str | None = field(default=None, repr=False)

    def to_file(self) -> dict[str, Any]:
        """Everything, secrets included, for a ticket file the signaller keeps."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_file(cls, value: dict[str, Any]) -> "SignalTicket":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in names})


@dataclass
class SignalStatus(_View):
    """The status a signaller reads with its receipt (flow 3 step 4); ``messages``
    are the coordinator's messages opened with the reply key."""

    status: str
    updated: str
    messages: list[str] = field(default_factory=list)
    network: str | None = None
    signal: str | None = None


@dataclass
class ReceivedSignal(_View):
    """A signal as the coordinator opened it (content checked against the signal)."""

    network: str
    signal: str
    source: str
    received: str
    status: str
    content: dict[str, Any]
    sender: str | None = None
    hints: list[str] = field(default_factory=list)


@dataclass
class Released(_View):
    """Identity released to this partner: class -> identity fields.  Only after the
    inclusion receipt (``receipt_index``, the audit entry) verified."""

    network: str
    case: str
    classes: dict[str, dict[str, Any]]
    receipt_index: int


@dataclass
class DutyReport(_View):
    """What :meth:`schakel.client.partner.Partner.duties` did.  Lists of ids (cases,
    ``case:member`` pairs, instructions, invocations); ``rotated`` are the owned cases
    whose identity was sealed under new class keys (ADR 0011)."""

    network: str
    backfilled: list[str] = field(default_factory=list)
    rekeyed: list[str] = field(default_factory=list)
    reshared: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    #: The network removed this partner: only its purge instructions were executed.
    removed: bool = False


@dataclass
class SyncResult(_View):
    """One :meth:`Partner.sync`: ``items`` feed items verified and stored, the new
    ``cursor``, the ``cases`` touched, the ``epochs`` newly received."""

    network: str
    items: int
    cursor: str
    cases: list[str] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    duties: DutyReport | None = None


@dataclass
class AuditVerification(_View):
    """The audit log as verified up to the latest head: ``size`` entries under
    ``root`` (base64url), ``checked`` entries recomputed and proven included,
    ``erased`` entries whose body was erased after retention (commitment proven).
    ``witnessed_by``: where the policy names witnesses, each witness that cosigned the
    checkpoint of ``size`` and when (RFC 3339), in name order; empty otherwise."""

    network: str
    size: int
    root: str
    checked: int
    erased: int
    head_time: str | None
    witnessed_by: tuple[tuple[str, str], ...] = ()


@dataclass
class GrantSummary(_View):
    """One grant of identity under consent, from the audit log.  ``direction``:
    ``to-you`` (this partner is the grantee), ``by-you`` (this partner granted it) or
    ``other`` (the coordinator's or an auditor's view of another pair).  ``status``:
    ``granted`` (not yet received), ``released`` (the grantee received it) or
    ``release-refused`` (the last attempt was refused: ``refusal`` says why)."""

    grant: str
    case: str | None
    grantee: str | None
    grantor: str | None
    grantor_name: str | None
    classes: list[str]
    granted: str
    direction: str
    status: str
    released: str | None = None
    refusal: str | None = None


@dataclass
class InvocationSummary(_View):
    """One bemoeizorg invocation, from the audit log.  ``status``: ``refused`` (the
    server denied the invocation: ``refusal``), ``waiting-for-cosign``, ``cosigned``,
    ``released`` or ``reviewed``; ``reviews`` holds each auditor's outcome
    (``approved`` or ``questioned``).  Fields the log does not show this partner are
    None (a co-signer of another organisation sees only its co-sign)."""

    invocation: str
    case: str | None
    invoker: str | None
    invoker_name: str | None
    ground: str | None
    classes: list[str]
    invoked: str | None
    status: str
    cosigners: list[str] = field(default_factory=list)
    released: str | None = None
    reviews: list[str] = field(default_factory=list)
    refusal: str | None = None


@dataclass
class NetworkPlace(_View):
    """A network this partner trusts and its place in it, as verified at the last sync
    (read without a request).  ``role``: ``coordinator``, ``auditor`` (a current member
    with the auditor role), ``core``, ``shell``, ``former`` (its membership expired or
    was revoked), ``not-admitted`` (no membership for this key yet) or ``not-synced``
    (never synced: name and kind are not known yet)."""

    network: str
    name: str | None
    kind: str | None
    role: str
    ring: str | None = None
    party: str | None = None
    roles: list[str] = field(default_factory=list)


__all__ = ["EventView", "PolicyBreach", "CaseView", "SignalTicket", "SignalStatus",
           "ReceivedSignal",
           "Released", "DutyReport", "SyncResult", "AuditVerification", "GrantSummary",
           "InvocationSummary", "NetworkPlace"]
