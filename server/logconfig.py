"""structlog set-up for ``schakel serve``: one JSON object per line on stderr, with a UTC
timestamp and level.  Tracebacks are rendered as text (``format_exc_info``), never with
local variables, so a logged error cannot carry a request body.

One processor does what ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``,
``format_exc_info`` and ``JSONRenderer(sort_keys=True)`` did in a chain, with the same
output (every request logs a line: the chain's calls were a measurable share of a
request's CPU).

:class:`LineLogger` writes the lines: a line that cannot be written (the disk of the log
file full, an I/O error) is dropped instead of raised, so that logging never ends a
request, the store's writer thread or the server; the first line written afterwards is
preceded by one that says how many were dropped."""

from __future__ import annotations

import json
import os
import sys
import threading
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


class LineLogger:
    """structlog's logger for :func:`render`'s lines: one line per event on ``stream``.

    Each line is one ``write(2)`` on the stream's file descriptor (Python's buffer would
    keep a line that failed and fail again at exit); a line that cannot be written is
    counted and dropped, never raised.  A stream without a descriptor (a test's
    ``StringIO``) is written and flushed instead."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._fd: int | None
        try:
            self._fd = stream.fileno()
            stream.flush()
        except (OSError, ValueError):     # io.UnsupportedOperation is both
            self._fd = None
        self._torn = False                # a line was cut short: start the next on its own
        self.dropped = 0

    def msg(self, message: str) -> None:
        with self._lock:
            lines = message + "\n"
            if self.dropped:
                lines = render(None, "warning", {"event": "log lines dropped",
                                                 "lines": self.dropped}) + "\n" + lines
            if self._torn:
                lines = "\n" + lines
            try:
                self._write(lines.encode("utf-8"))
            except (OSError, ValueError):     # a full disk, an I/O error, a closed stream
                self.dropped += 1
            else:
                self.dropped, self._torn = 0, False

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._stream.write(data.decode("utf-8"))
            self._stream.flush()
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except OSError:
                self._torn = self._torn or len(view) < len(data)
                raise

    log = debug = info = warn = warning = error = err = critical = exception = msg
    fatal = failure = msg


def configure_logging(stream: TextIO = sys.stderr) -> LineLogger:
    """Log :func:`render`'s lines to ``stream`` through one :class:`LineLogger`."""
    logger = LineLogger(stream)
    structlog.configure(processors=[render], logger_factory=lambda *args: logger,
                        cache_logger_on_first_use=True)
    return logger


__all__ = ["LineLogger", "configure_logging", "render"]
