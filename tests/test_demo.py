"""`schakel demo` (make demo) plays the mission and every one of its checks holds."""

from __future__ import annotations

from datetime import datetime, timezone

from client.demo import run
from tests.test_cli_keys import schakel


def test_demo_checks_all_hold() -> None:
    lines: list[str] = []
    narrator = run(lines.append, now=datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc))
    assert narrator.failures == []
    assert narrator.checks >= 19
    story = "\n".join(lines)
    # The refusals the mission promises are shown, not just claimed.
    for refusal in ("informal-class-not-allowed", "bemoeizorg exists only in oggz",
                    "phone number at characters", "bad_proof"):
        assert refusal in story


def test_demo_command_exits_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = schakel("demo", cwd=tmp_path, passphrase=None)
    assert result.returncode == 0, result.stderr
    assert "checks held" in result.stdout
