"""The progress line of ``schakel sync``: how far the sync has come, how fast it goes
and how long the rest will take, from the library's
:class:`~schakel.client.progress.SyncProgress` after each page.

On a terminal one line is redrawn in place; on a pipe or a file (when --progress asks
for it) a line is written each time the whole percentage changes, so a log shows the
course of a long sync in at most a hundred lines.  Standard error only: --json output on
standard output stays clean.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from schakel.cli.i18n import _, number

if TYPE_CHECKING:  # the library is imported when a command runs, so --help stays fast
    from schakel.client.progress import SyncProgress

#: Characters of the bar itself.
WIDTH = 16


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``2:05:00``: seconds rounded up, so 0:00 only when none left."""
    whole = int(-(-seconds // 1))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def describe(label: str, p: SyncProgress) -> str:
    """``sync 1a2b3c4d [########--------]  50%  2,500/~5,000 items  1,850 items/s  ~0:02
    left``; when done, the items without an estimate and ``0:00 left``.  In Dutch
    (:mod:`schakel.cli.i18n`): ``… 2.500/~5.000 items  1.850 items/s  nog ~0:02``."""
    percent = int(p.fraction * 100)
    filled = int(p.fraction * WIDTH)
    count = number(p.items) if p.done else f"{number(p.items)}/~{number(p.items + p.remaining)}"
    rate = "-" if p.items_per_s is None else number(p.items_per_s)
    left = "--:--" if p.eta_s is None else ("" if p.done else "~") + duration(p.eta_s)
    return f"{label} [{'#' * filled}{'-' * (WIDTH - filled)}] {percent:3d}%  " + _(
        "{count} items  {rate} items/s  {left} left").format(count=count, rate=rate, left=left)


class SyncBar:
    """Called with each :class:`~schakel.client.progress.SyncProgress` of one network's
    sync; writes to ``file`` as a terminal line redrawn in place (``terminal``) or as
    log lines (module docstring)."""

    def __init__(self, label: str, file: TextIO, *, terminal: bool) -> None:
        self.label = label
        self.file = file
        self.terminal = terminal
        self._shown = 0          # characters of the line on the terminal now
        self._percent = -1       # the percentage of the last log line

    def __call__(self, p: SyncProgress) -> None:
        line = describe(self.label, p)
        if self.terminal:
            line = line[:max(20, shutil.get_terminal_size().columns - 1)]
            self.file.write("\r" + line + " " * max(0, self._shown - len(line)))
            self._shown = len(line)
            if p.done:
                self.close()
        elif int(p.fraction * 100) != self._percent:
            self._percent = int(p.fraction * 100)
            self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        """End the terminal line (a sync that stopped half way leaves its last line)."""
        if self.terminal and self._shown:
            self.file.write("\n")
            self.file.flush()
            self._shown = 0


@contextmanager
def sync_bar(label: str, wanted: bool | None) -> Iterator[SyncBar | None]:
    """A :class:`SyncBar` on standard error when it is a terminal, or when the user
    asked with --progress (``wanted``); None when there is to be none."""
    terminal = sys.stderr.isatty()
    if not (wanted if wanted is not None else terminal):
        yield None
        return
    bar = SyncBar(label, sys.stderr, terminal=terminal)
    try:
        yield bar
    finally:
        bar.close()


__all__ = ["WIDTH", "duration", "describe", "SyncBar", "sync_bar"]
