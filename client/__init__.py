"""Schakel client: the library a partner organisation's own software uses
(``schakel.client.partner.Partner``; ADR 0007).  It imports the protocol core and the keys,
never the server or the command line (ADR 0018).

    from schakel.client import Partner, ServerMisbehaviour, ServerRefused
"""

from schakel.client.errors import NotFound, ServerMisbehaviour, ServerRefused, ServerUnreachable
from schakel.client.views import (
    AuditVerification, CaseView, DutyReport, EventView, PolicyBreach, ReceivedSignal, Released,
    SignalStatus, SignalTicket, SyncResult,
)


def __getattr__(name: str) -> object:
    # Partner pulls in every flow module; importing it lazily keeps ``schakel.client.errors``
    # and ``schakel.client.views`` importable on their own (the CLI's error mapping, tests).
    if name == "Partner":
        from schakel.client.partner import Partner
        return Partner
    raise AttributeError(f"module 'client' has no attribute {name!r}")


__all__ = ["Partner", "ServerMisbehaviour", "ServerRefused", "ServerUnreachable", "NotFound",
           "AuditVerification", "CaseView", "DutyReport", "EventView", "PolicyBreach",
           "ReceivedSignal",
           "Released", "SignalStatus", "SignalTicket", "SyncResult"]
