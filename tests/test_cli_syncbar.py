"""The progress line of ``schakel sync`` (cli/commands/syncbar.py): items so far, the
rate and the time left, redrawn on a terminal, a line per whole percent on a pipe.  The
command itself, on a real server: tests/test_cli_flows.py
(``test_sync_reports_and_shows_progress_when_asked``)."""

from __future__ import annotations

import io

from schakel.cli.commands.syncbar import SyncBar, describe, duration
from schakel.client import SyncProgress


def report(items: int, remaining: int, *, rate: float | None = 1850.0,
           eta: float | None = 3.2) -> SyncProgress:
    return SyncProgress(network="n", items=items, cursor=str(items), head=str(items + remaining),
                        remaining=remaining, items_per_s=rate, eta_s=eta, done=not remaining)


def test_the_line_shows_items_so_far_the_rate_and_the_time_left() -> None:
    line = describe("sync abcd1234", report(2500, 2500))
    assert line == ("sync abcd1234 [########--------]  50%  2,500/~5,000 items  "
                    "1,850 items/s  ~0:04 left")
    done = describe("sync abcd1234", report(5000, 0, eta=0.0))
    assert done.endswith("100%  5,000 items  1,850 items/s  0:00 left")
    unknown = describe("sync abcd1234", report(10, 10, rate=None, eta=None))
    assert unknown.endswith("10/~20 items  - items/s  --:-- left")


def test_durations_are_rounded_up_and_grow_hours() -> None:
    assert [duration(s) for s in (0, 0.2, 59.5, 61, 3600, 7325)] == \
        ["0:00", "0:01", "1:00", "1:01", "1:00:00", "2:02:05"]


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ended_when_done() -> None:
    out = io.StringIO()
    bar = SyncBar("sync n", out, terminal=True)
    for r in (report(10, 30), report(20, 20), report(40, 0, eta=0.0)):
        bar(r)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "items/s" in text and "~0:04 left" in text


def test_on_a_pipe_a_line_is_written_per_whole_percent() -> None:
    out = io.StringIO()
    bar = SyncBar("sync n", out, terminal=False)
    for r in (report(10, 990), report(11, 989), report(20, 980), report(1000, 0, eta=0.0)):
        bar(r)
    lines = out.getvalue().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == ["1", "2", "100"]
