"""A long sync says how far it has come, how fast it goes and how long the rest will take
(docs/protocol.md §14.3 "Sync" and §16.4 "Head and progress"; ADR 0026).

The meter (``schakel.client.progress``) is pure and is tested with a clock the test
moves; the rest runs real partners against the real server (tests/client_harness.py)
configured with sync pages of :data:`PAGE_SIZE` items, so a sync of a dozen items takes
several pages.  The command line's line: tests/test_cli_syncbar.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schakel.client import Partner, SyncProgress
from schakel.client.feed import Feed
from schakel.client.progress import WINDOW, SyncMeter
from schakel.client.wire import head_of
from schakel.server.config import Limits
from tests.client_harness import (
    COVENANT, admit, make_partner, network_policy, running_server, server_fingerprint,
)
from tests.server_harness import INTAKE

NOTE = {"kind": "note", "text": "Huisbezoek gepland met de wijkverpleging."}
#: The server's most items per sync page in these tests (a server may lower the 500).
PAGE_SIZE = 5


class Steps:
    """A clock for the meter that moves only when the test says so (seconds)."""

    def __init__(self, step: float = 1.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        now, self.now = self.now, self.now + self.step
        return now


class Still:
    """A clock the test moves by hand: :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pages(meter: SyncMeter, clock: Still, *, size: int, spacing: int, head: int,
          seconds: list[float]) -> list[SyncProgress]:
    """Feed ``meter`` one page of ``size`` items per entry of ``seconds`` (each taking
    that long), items ``spacing`` positions apart, the server naming ``head``."""
    reports, last = [], 0
    for took in seconds:
        clock.advance(took)
        first = last + spacing
        last = first + (size - 1) * spacing
        reports.append(meter.page(size, str(first), str(last), str(head)))
    return reports


# --------------------------------------------------------------------------- the meter


def test_meter_reports_items_growing_and_the_time_left_falling_to_done() -> None:
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    reports = pages(meter, clock, size=10, spacing=1, head=50, seconds=[2.0] * 5)
    assert [r.items for r in reports] == [10, 20, 30, 40, 50]
    assert [r.remaining for r in reports] == [40, 30, 20, 10, 0]
    assert [r.items_per_s for r in reports] == [5.0] * 5
    assert [r.eta_s for r in reports] == [8.0, 6.0, 4.0, 2.0, 0.0]
    assert [r.done for r in reports] == [False] * 4 + [True]
    assert [r.fraction for r in reports] == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_one_slow_page_does_not_swing_the_estimate() -> None:
    """The rate is the median of the last pages': one page ten times slower (a pause of
    the machine) leaves it where it was; the mean of the window would have halved it."""
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    before, slow = pages(meter, clock, size=10, spacing=1, head=1000,
                         seconds=[1.0] * (WINDOW - 1) + [10.0])[-2:]
    assert before.items_per_s == slow.items_per_s == 10.0
    assert slow.eta_s == before.eta_s - 1.0         # ten items fewer, at the same rate


def test_a_lasting_slowdown_is_followed_within_the_window() -> None:
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    reports = pages(meter, clock, size=10, spacing=1, head=1000,
                    seconds=[1.0] * WINDOW + [2.0] * (WINDOW // 2 + 1))
    assert reports[WINDOW - 1].items_per_s == 10.0
    assert reports[-1].items_per_s == 5.0


def test_the_items_left_are_estimated_from_how_densely_positions_are_filled() -> None:
    """Positions are row ids shared with other networks and with cases a shell partner
    does not see: items every third position leave a third of the positions to read."""
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    [report] = pages(meter, clock, size=10, spacing=3, head=330, seconds=[1.0])
    assert report.cursor == "30" and report.remaining == 100 and report.eta_s == 10.0


def test_a_head_that_moves_during_the_sync_raises_the_estimate_and_the_sync_still_ends() -> None:
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    first = pages(meter, clock, size=10, spacing=1, head=20, seconds=[1.0])[0]
    clock.advance(1.0)
    moved = meter.page(10, "11", "20", "40")        # new items arrived meanwhile
    clock.advance(1.0)
    last = meter.page(10, "21", "30", "40")
    clock.advance(1.0)
    done = meter.page(10, "31", "40", "40")
    assert (first.remaining, moved.remaining, last.remaining, done.remaining) == (10, 20, 10, 0)
    assert [r.head for r in (first, moved, last, done)] == ["20", "40", "40", "40"]
    assert not moved.done and done.done and done.fraction == 1.0 and done.items == 40


def test_a_lower_head_on_a_later_page_is_not_believed() -> None:
    """The head only grows in the reports: a server naming a lower one later cannot end
    the sync early (an empty page still does, :meth:`SyncMeter.end`)."""
    clock = Still()
    meter = SyncMeter("n", "0", clock=clock)
    pages(meter, clock, size=10, spacing=1, head=40, seconds=[1.0])
    lowered = meter.page(10, "11", "20", "20")
    assert lowered.head == "40" and not lowered.done and lowered.remaining == 20
    assert meter.end().done


def test_without_measurable_time_there_is_no_rate_and_no_time_left() -> None:
    meter = SyncMeter("n", "0", clock=Still())
    report = meter.page(10, "1", "10", "20")
    assert report.items_per_s is None and report.eta_s is None and report.remaining == 10


def test_an_empty_feed_is_done_at_once() -> None:
    report = SyncMeter("n", "17", clock=Still()).end()
    assert (report.items, report.remaining, report.cursor, report.head) == (0, 0, "17", "17")
    assert report.done and report.fraction == 1.0 and report.eta_s == 0.0


def test_a_progress_report_cannot_be_done_with_items_left() -> None:
    with pytest.raises(ValueError):
        SyncProgress(network="n", items=1, cursor="1", head="2", remaining=1, items_per_s=None,
                     eta_s=None, done=True)


@pytest.mark.parametrize("page", [
    {"cursor": "10"},                           # no head
    {"cursor": "10", "head": 12},               # not a string
    {"cursor": "10", "head": "-12"},
    {"cursor": "10", "head": "1" * 17},         # longer than a cursor can be
    {"cursor": "10", "head": "9"},              # before the page's own cursor
])
def test_a_head_that_is_not_a_position_at_or_after_the_cursor_is_refused(
        page: dict[str, object]) -> None:
    assert head_of(page, "10") is None


def test_a_head_at_or_after_the_cursor_is_taken() -> None:
    assert head_of({"head": "10"}, "10") == "10" and head_of({"head": "11"}, "10") == "11"


# --------------------------------------------------------------------------- real partners


@dataclass
class Net:
    network: str
    coord: Partner
    reader: Partner
    shell: Partner
    case: str


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    """A coordinator with a case, a core member (the reader) and a shell partner, all
    synced, on a server whose sync pages hold at most :data:`PAGE_SIZE` items."""
    async with running_server(tmp_path, limits=Limits(max_page=PAGE_SIZE)) as url:
        coord = await make_partner(tmp_path, url, "coordinator")
        reader = await make_partner(tmp_path, url, "reader")
        shell = await make_partner(tmp_path, url, "shell")
        try:
            network = await coord.networks.create(
                name="Buurtnetwerk Test", kind="neighbourhood", covenant=COVENANT,
                server_fingerprint=server_fingerprint(url), policy=network_policy("neighbourhood"))
            await admit(coord, network, reader, ring="core", party="formal")
            await admit(coord, network, shell, ring="shell", party="formal")
            case = await coord.cases.create(network, INTAKE)
            for p in (coord, reader, shell):
                await p.sync(network)
            yield Net(network, coord, reader, shell, case)
        finally:
            for p in (coord, reader, shell):
                await p.close()


async def notes(net: Net, count: int, case: str | None = None) -> None:
    for _ in range(count):
        await net.coord.cases.add_event(net.network, case or net.case, NOTE)


async def test_sync_reads_past_a_server_page_smaller_than_the_clients(net: Net) -> None:
    """A server may serve fewer items per page than the client asks (docs/protocol.md
    §14.3); a short page is then not the end of the feed: the client reads on to the head
    the server names, and one sync brings everything."""
    await notes(net, 2 * PAGE_SIZE + 2)
    result = await net.reader.sync(net.network)
    assert result.items == 2 * PAGE_SIZE + 2
    assert len(net.reader.cases.get(net.network, net.case).events) == 2 * PAGE_SIZE + 3


async def test_progress_is_reported_once_per_page_with_the_estimate_falling_to_done(
        net: Net) -> None:
    """Through the real server, with a clock that moves one second per page: items grow by
    a page each time, the items and the time left fall, the last report is done."""
    await notes(net, 2 * PAGE_SIZE + 2)
    seen: list[SyncProgress] = []
    feed = Feed(net.reader.session, timer=Steps(1.0))
    result = await feed.pull(net.network, progress=seen.append)
    total = 2 * PAGE_SIZE + 2
    assert result.items == total
    assert [r.items for r in seen] == [PAGE_SIZE, 2 * PAGE_SIZE, total]
    assert [r.remaining for r in seen] == [total - PAGE_SIZE, total - 2 * PAGE_SIZE, 0]
    assert [r.items_per_s for r in seen] == [PAGE_SIZE / 1.0] * 3
    assert [r.eta_s for r in seen] == [(total - PAGE_SIZE) / PAGE_SIZE, 2 / PAGE_SIZE, 0.0]
    assert {r.head for r in seen} == {result.cursor} and seen[-1].cursor == result.cursor
    assert [r.done for r in seen] == [False, False, True] and seen[-1].fraction == 1.0


async def test_progress_follows_a_head_that_moves_during_the_sync(net: Net) -> None:
    """New events arrive while the reader syncs (its callback, a coroutine, waits for the
    coordinator to add them after the first page): the head grows, the sync reads them in
    the same run, and the last report is done at the new head.  The feed works ahead: while
    page N is folded, page N+1 is checked and page N+2 asked for, so the new head is named
    by the fourth page of four, the first asked for after the events arrived."""
    await notes(net, 4 * PAGE_SIZE)
    seen: list[SyncProgress] = []

    async def progress(p: SyncProgress) -> None:
        seen.append(p)
        if len(seen) == 1:
            await notes(net, 3)

    result = await net.reader.sync(net.network, progress=progress)
    assert result.items == 4 * PAGE_SIZE + 3
    assert [r.items for r in seen] == sorted({r.items for r in seen})      # strictly growing
    assert int(seen[-1].head) > int(seen[0].head) and seen[-1].head == result.cursor
    assert seen[-1].done and seen[-1].items == result.items and seen[-1].fraction == 1.0
    assert len(net.reader.cases.get(net.network, net.case).events) == 4 * PAGE_SIZE + 4


async def test_a_sync_with_nothing_new_reports_done_once(net: Net) -> None:
    seen: list[SyncProgress] = []
    result = await net.reader.sync(net.network, progress=seen.append)
    assert result.items == 0 and len(seen) == 1
    assert seen[0].done and seen[0].items == 0 and seen[0].fraction == 1.0


async def test_a_shell_partners_head_is_the_newest_item_it_may_read(net: Net) -> None:
    """The head tells a shell partner nothing its own later pages would not: the position
    of the newest item of the cases shared with it, not the newest of the network (which
    would show when the core works on cases it cannot see)."""
    await net.coord.cases.share(net.network, net.case, net.shell.key_id, reason="hulp")
    other = await net.coord.cases.create(net.network, INTAKE)
    await notes(net, 2 * PAGE_SIZE, case=other)
    conn, path = net.shell.session.conn, f"/v1/networks/{net.network}/sync"
    full = await conn.get(path, {"after": "0", "limit": 1})
    seen = await conn.get(path, {"after": "0", "limit": 500})
    core = await net.reader.session.conn.get(path, {"after": "0", "limit": 1})
    newest_shared = seen["items"][-1]["cursor"]
    assert len(full["items"]) == 1 and full["head"] == newest_shared == seen["head"]
    assert int(core["head"]) > int(newest_shared)
    assert all(i["case"] == net.case for i in seen["items"])
