"""structlog set-up for ``schakel serve``: one JSON object per line on stderr, with a UTC
timestamp and level.  Tracebacks are rendered as text (``format_exc_info``), never with
local variables, so a logged error cannot carry a request body.

One processor does what ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``,
``format_exc_info`` and ``JSONRenderer(sort_keys=True)`` did in a chain, with the same
output (every request logs a line: the chain's calls were a measurable share of a
request's CPU)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.processors import format_exc_info

#: structlog's ``add_log_level`` names.
_LEVELS = {"warn": "warning", "exception": "error"}


def _fallback(obj: Any) -> Any:
    """What ``JSONRenderer`` does with a value JSON cannot hold: ``__structlog__()``, else
    ``repr``."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


_encode = json.JSONEncoder(sort_keys=True, default=_fallback).encode


def render(logger: Any, method_name: str, event_dict: Any) -> str:
    """Level, ISO UTC timestamp (``...Z``), a traceback as text, then sorted-key JSON."""
    event_dict["level"] = _LEVELS.get(method_name, method_name)
    event_dict["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if "exc_info" in event_dict:
        event_dict = format_exc_info(logger, method_name, event_dict)
    return _encode(event_dict)


def configure_logging(stream: TextIO = sys.stderr) -> None:
    structlog.configure(processors=[render],
                        logger_factory=structlog.WriteLoggerFactory(file=stream),
                        cache_logger_on_first_use=True)


__all__ = ["configure_logging", "render"]
