"""The demo's narration: lines for a terminal, and the checks they count.

:class:`Tally` prints the story and counts its checks: every statement the demo makes
about what a party can or cannot do is a check, so the summary's count is the number of
claims actually tested.  :func:`printer` and :func:`marks_for` keep the narration
printable on any terminal.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

T = TypeVar("T")



@dataclass(frozen=True)
class Marks:
    """The symbols of the narration; ASCII when the terminal cannot print the others."""

    ok: str
    fail: str
    note: str
    rule: str


UNICODE = Marks(ok="✓", fail="✗", note="·", rule="─")
ASCII = Marks(ok="ok", fail="XX", note="-", rule="-")


def marks_for(stream: TextIO) -> Marks:
    """Unicode marks if ``stream`` can encode them, else ASCII (a cp1252 console, a pipe
    with LANG=C): a demo that crashes on its own check mark convinces nobody."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "".join((UNICODE.ok, UNICODE.fail, UNICODE.note, UNICODE.rule, "é–")).encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return ASCII
    return UNICODE


#: Stand-ins for the typographic characters the narration and the library's messages use.
_PLAIN = str.maketrans({"…": "...", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
                        "é": "e", "ë": "e", "ö": "o", "ï": "i"})


def printer(stream: TextIO) -> Callable[[str], None]:
    """A line printer for ``stream`` that never fails on a character the stream cannot
    encode: the demo's own text is transliterated, anything else becomes '?'."""
    encoding = getattr(stream, "encoding", None) or "ascii"

    def say(line: str) -> None:
        try:
            line.encode(encoding)
        except (LookupError, UnicodeEncodeError):
            line = line.translate(_PLAIN).encode(encoding, "replace").decode(encoding)
        print(line, file=stream, flush=True)

    return say


@dataclass
class Tally:
    """Prints the story and counts the checks.

    Every statement the demo makes about what a party can or cannot do goes through
    :meth:`check` (or :meth:`holds` / :meth:`refused`), so the summary's count is the
    number of claims that were actually tested, and :meth:`exit_code` is non-zero as soon
    as one of them did not hold.
    """

    say: Callable[[str], None]
    marks: Marks = UNICODE
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    refusals: int = 0

    @property
    def checks(self) -> int:
        return self.passed + len(self.failures)

    # ---------------------------------------------------------------- output

    def section(self, title: str) -> None:
        self.say("")
        self.say(f"{self.marks.rule * 2} {title}")

    def part(self, title: str) -> None:
        """The heading of one practice."""
        self.say("")
        self.say(f"{self.marks.rule * 4} {title} {self.marks.rule * max(4, 84 - len(title))}")

    def narrate(self, text: str, width: int = 92) -> None:
        """A paragraph of narration (what the report says), wrapped; not a check."""
        for line in textwrap.wrap(text, width=width):
            self.say(f"  | {line}")

    def note(self, text: str, who: str | None = None) -> None:
        """A line of narration that is not a check (what a party does or reads)."""
        self.say(f"  {self.marks.note} {f'[{who}] ' if who else ''}{text}")

    def check(self, ok: bool, what: str, *, why: str = "") -> bool:
        """Record one check; ``why`` is printed after a failure to help whoever debugs it."""
        if ok:
            self.passed += 1
            self.say(f"  {self.marks.ok} {what}")
        else:
            self.failures.append(what)
            self.say(f"  {self.marks.fail} {what}{f'  <-- {why}' if why else ''}")
        return ok

    # ---------------------------------------------------------------- checked actions

    async def holds(self, what: str, action: Callable[[], Any] | Awaitable[T]) -> Any:
        """Run ``action`` (a callable or an awaitable); it must succeed.  Returns its
        result, or None after recording the failure."""
        try:
            result = await _run(action)
        except Exception as exc:  # noqa: BLE001 -- every failure is a failed check, shown
            self.check(False, what, why=describe(exc))
            return None
        self.check(True, what)
        return result

    async def refused(self, what: str, action: Callable[[], Any] | Awaitable[Any], *,
                      reason: str | None = None, code: str | None = None,
                      error: type[BaseException] | tuple[type[BaseException], ...] | None = None,
                      ) -> BaseException | None:
        """Run ``action``; it must be refused (with ``reason``/``code``/``error`` when
        given).  The refusal's own words are printed: the point is to show them."""
        try:
            await _run(action)
        except Exception as exc:  # noqa: BLE001 -- judged below
            got_reason = _reason(exc)
            got_code = getattr(exc, "code", None)
            wrong = []
            if reason is not None and got_reason != reason:
                wrong.append(f"reason {got_reason!r}, expected {reason!r}")
            if code is not None and got_code != code:
                wrong.append(f"code {got_code!r}, expected {code!r}")
            if error is not None and not isinstance(exc, error):
                wrong.append(f"{type(exc).__name__}, expected {error}")
            label = got_reason or got_code or type(exc).__name__
            self.refusals += 0 if wrong else 1
            self.check(not wrong, f"{what}: refused ({label})",
                       why="; ".join(wrong) or describe(exc))
            message = getattr(exc, "message", None) or str(exc)
            if message and not wrong:
                self.say(f"      \"{short(message)}\"")
            return exc
        self.check(False, f"{what}: refused", why="it was allowed")
        return None

    # ---------------------------------------------------------------- the end

    def summary(self, elapsed: float) -> None:
        self.say("")
        if self.failures:
            self.say(f"{self.marks.fail} {len(self.failures)} of {self.checks} checks FAILED "
                     f"({elapsed:.1f} s):")
            for what in self.failures:
                self.say(f"    {self.marks.fail} {what}")
        else:
            self.say(f"{self.marks.ok} All {self.checks} checks held ({elapsed:.1f} s).")

    def exit_code(self) -> int:
        """0 only if at least one check ran and none failed."""
        return 0 if self.checks and not self.failures else 1


async def _run(action: Callable[[], Any] | Awaitable[Any]) -> Any:
    result = action() if callable(action) else action
    if inspect.isawaitable(result):
        result = await result
    return result


def _reason(exc: BaseException) -> str | None:
    details = getattr(exc, "details", None)
    if isinstance(details, dict):
        value = details.get("reason") or details.get("what")
        if isinstance(value, str):
            return value
    what = getattr(exc, "what", None)
    return what if isinstance(what, str) else None


def describe(exc: BaseException) -> str:
    """An exception in one line: its class, its error code if any, its message."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {short(message, 200)}"


def short(text: str, limit: int = 150) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Marks", "UNICODE", "ASCII", "marks_for", "printer", "Tally", "describe", "short"]
