"""structlog set-up for ``schakel serve``: one JSON object per line on stderr, with a UTC
timestamp and level.  Tracebacks are rendered as text (``format_exc_info``), never with
local variables, so a logged error cannot carry a request body."""

from __future__ import annotations

import sys
from typing import TextIO

import structlog


def configure_logging(stream: TextIO = sys.stderr) -> None:
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(sort_keys=True)],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True)


__all__ = ["configure_logging"]
