"""Schakel client: the library a partner organisation's own software uses
(:class:`schakel.client.partner.Partner`, composed of services; ADR 0007, ADR 0019).  It
imports the protocol core and the keys, never the server or the command line (ADR 0018).

    from schakel.client import Partner, ServerMisbehaviour, ServerRefused
"""

from schakel.client.errors import NotFound, ServerMisbehaviour, ServerRefused, ServerUnreachable
from schakel.client.partner import Partner
from schakel.client.progress import SyncProgress
from schakel.client.views import (
    AuditVerification, CaseView, DutyReport, EventView, PolicyBreach, ReceivedSignal, Released,
    SignalStatus, SignalTicket, SyncResult,
)

__all__ = ["Partner", "ServerMisbehaviour", "ServerRefused", "ServerUnreachable", "NotFound",
           "AuditVerification", "CaseView", "DutyReport", "EventView", "PolicyBreach",
           "ReceivedSignal", "Released", "SignalStatus", "SignalTicket", "SyncProgress",
           "SyncResult"]
