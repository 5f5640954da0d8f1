"""Schakel client: the partner library (``client.partner.Partner``) and the ``schakel``
command line (``client.cli``).  ADR 0007.

    from client import Partner, ServerMisbehaviour, ServerRefused
"""

from client.errors import NotFound, ServerMisbehaviour, ServerRefused, ServerUnreachable
from client.views import (
    AuditVerification, CaseView, DutyReport, EventView, PolicyBreach, ReceivedSignal, Released,
    SignalStatus, SignalTicket, SyncResult,
)


def __getattr__(name: str) -> object:
    # Partner pulls in every flow module; importing it lazily keeps ``client.errors``
    # and ``client.views`` importable on their own (the CLI's error mapping, tests).
    if name == "Partner":
        from client.partner import Partner
        return Partner
    raise AttributeError(f"module 'client' has no attribute {name!r}")


__all__ = ["Partner", "ServerMisbehaviour", "ServerRefused", "ServerUnreachable", "NotFound",
           "AuditVerification", "CaseView", "DutyReport", "EventView", "PolicyBreach",
           "ReceivedSignal",
           "Released", "SignalStatus", "SignalTicket", "SyncResult"]
