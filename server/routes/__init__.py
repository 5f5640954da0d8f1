"""The HTTP routes, one module per resource; each module's ``routes`` table declares its
routes next to their thin handlers (``server/registry.py``)."""

from __future__ import annotations

from schakel.server.disclosure import routes as disclosure
from schakel.server.referrals import routes as referrals
from schakel.server.registry import RouteTable
from schakel.server.routes import (
    audit, cases, intake, lookups, members, networks, ops, signals, sync, trust,
)

#: Every route table, in the order the OpenAPI document lists them.
TABLES: tuple[RouteTable, ...] = (ops.routes, networks.routes, members.routes, cases.routes,
                                  sync.routes, signals.routes, audit.routes, trust.routes,
                                  disclosure.routes, lookups.routes, referrals.routes,
                                  intake.routes)

__all__ = ["TABLES"]
