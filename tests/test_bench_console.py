"""bench/bench_console.py at a tiny size (20 cases, 200 audit entries), so the script
cannot rot between benchmark runs: it builds its network on a real ``schakel serve``,
drives a real ``schakel console`` process and ``schakel audit verify``, and reports every
page and both verifications.  Nothing here is about time: only that the figures exist
and that the console showed and checked what the fixture holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_console  # noqa: E402

CASES, ENTRIES = 20, 200


def test_console_bench_runs_at_a_tiny_size_and_reports_every_page_and_both_verifications(
        tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    bench_console.main(["--cases", str(CASES), "--entries", str(ENTRIES), "--requests", "2",
                        "--warm-up", "0", "--rounds", "1", "--data", str(tmp_path / "data"),
                        "--result", str(out)])
    result = json.loads(out.read_text())
    assert result["fixture"]["held"] == CASES
    pages = result["pages"]
    assert set(pages) == {"cases", "cases_filtered", "cases_synced", "case", "signals",
                          "networks"}
    for row in pages.values():
        assert row["requests"] == 2 and row["p95_ms"] > 0 and row["bytes"] > 0
    assert pages["cases"]["rows_shown"] == pages["cases_synced"]["rows_shown"] == CASES
    # The filter asks for the first of the rotating problem domains: cases 0, 2, 5, 7, ...
    matching = sum(1 for i in range(CASES) if bench_console.DOMAINS[0][0] in
                   bench_console.DOMAINS[i % len(bench_console.DOMAINS)])
    assert pages["cases_filtered"]["rows_shown"] == matching
    audit = result["audit"]
    assert audit["entries"] >= ENTRIES
    assert audit["console_rounds"][0]["checked"] == audit["command_rounds"][0]["checked"]
    assert audit["ratio"] > 0
