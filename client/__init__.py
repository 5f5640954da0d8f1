"""Schakel client: the library a partner organisation's own software uses
(:class:`schakel.client.partner.Partner`, composed of services; ADR 0007, ADR 0019).  It
imports the protocol core and the keys, never the server or the command line (ADR 0018).

    from schakel.client import Partner, ServerMisbehaviour, ServerRefused

The names below are imported from their modules on first use (PEP 562), so that
``schakel.client.errors`` -- which the command line's error handler needs for every
refusal -- does not bring the whole library, aiohttp included, with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schakel.client.errors import (
        NotFound, ServerMisbehaviour, ServerRefused, ServerUnreachable,
    )
    from schakel.client.partner import Partner
    from schakel.client.progress import SyncProgress
    from schakel.client.views import (
        AuditVerification, CaseView, DutyReport, EventView, PolicyBreach, ReceivedSignal,
        Released, SignalStatus, SignalTicket, SyncResult,
    )

#: Each public name and the module that defines it.
_WHERE = {
    "Partner": "partner",
    "ServerMisbehaviour": "errors", "ServerRefused": "errors", "ServerUnreachable": "errors",
    "NotFound": "errors",
    "SyncProgress": "progress",
    **{name: "views" for name in ("AuditVerification", "CaseView", "DutyReport", "EventView",
                                  "PolicyBreach", "ReceivedSignal", "Released", "SignalStatus",
                                  "SignalTicket", "SyncResult")},
}

__all__ = ["Partner", "ServerMisbehaviour", "ServerRefused", "ServerUnreachable", "NotFound",
           "AuditVerification", "CaseView", "DutyReport", "EventView", "PolicyBreach",
           "ReceivedSignal", "Released", "SignalStatus", "SignalTicket", "SyncProgress",
           "SyncResult"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
