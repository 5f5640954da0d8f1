"""The page checks a reader may run on another core (``schakel.protocol.pagecheck``,
``schakel.client.pagecheck``): one verdict per event, the same whether the worker process
or the reader's own process computes it, and the reader's own checks still decide."""

from __future__ import annotations

import asyncio
import copy
import sys
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schakel.client.pagecheck import WORKER, PageChecker
from schakel.protocol import envelopes
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import CaseKey, Signer
from schakel.protocol.encoding import b64e
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import Event
from schakel.protocol.pagecheck import CheckedEvent, check_event, check_page

NETWORK, CASE = b64e(b"n" * 16), b64e(b"c" * 16)
AUTHOR, STRANGER = Signer(b"\x01" * 32), Signer(b"\x02" * 32)
KEY = CaseKey(b"\x03" * 32)


def _event(seq: int, signer: Signer = AUTHOR, **changes: Any) -> dict[str, Any]:
    event_id = b64e(bytes([seq]) * 16)
    ciphertext = envelopes.encrypt_json(
        KEY, {"kind": "note", "text": f"Bezoek {seq}."},
        envelopes.event_context(NETWORK, CASE, event_id, version=1), nonce=bytes([seq]) * 24)
    fields: dict[str, Any] = dict(
        network=NETWORK, case=CASE, event=event_id, author=signer.key_id,
        acting_user="wijkteam-1", seq=seq, case_key_version=1, ciphertext=ciphertext,
        created=format_timestamp(datetime(2026, 12, 7, 9, seq % 60, tzinfo=UTC)),
        prev=None if seq == 1 else b64e(b"p" * 32))
    fields.update(changes)
    return Event(**fields).sign(signer)


def _page() -> list[Any]:
    """Good events, events that lie in each way check_event sees, and items that are not
    events (None for those)."""
    good = _event(1)
    altered = _event(2)
    altered["signed"]["acting_user"] = "iemand-anders"       # signature no longer covers it
    swapped = _event(3)
    swapped["signatures"] = copy.deepcopy(good["signatures"])  # another event's signature
    shapeless = _event(4)
    del shapeless["signed"]["seq"]                           # not a valid event
    twice = _event(5)
    twice["signatures"].append({"keyid": STRANGER.key_id, "sig": twice["signatures"][0]["sig"]})
    stranger = _event(6, signer=STRANGER)                    # no member holds this key
    return [{"kind": "event", "case": CASE, "envelope": e}
            for e in (good, altered, swapped, shapeless, twice, stranger)] + [
        {"kind": "header", "case": CASE, "envelope": {}}, "not an item"]


def test_check_event_verdicts_name_what_is_wrong() -> None:
    keys = {AUTHOR.key_id: AUTHOR.verify_key}
    verdicts = check_page(_page(), {k: v.raw for k, v in keys.items()})
    good = verdicts[0]
    assert good is not None and good.event is not None and good.shape is good.signature is None
    assert good.canonical == canonical_json(_page()[0]["envelope"])
    assert [(v.shape, v.signature, v.event is None) for v in verdicts[1:6] if v is not None] == [
        (None, "bad_signature", True), (None, "bad_signature", True),
        ("malformed", None, True), (None, "bad_signature", True),
        (None, "unknown_author", True)]
    assert verdicts[6:] == [None, None]
    assert check_event(_page()[0]["envelope"], keys) == good


async def test_worker_and_this_process_give_the_same_verdicts() -> None:
    """The same page through the worker process and through this process."""
    keys = {AUTHOR.key_id: AUTHOR.verify_key}
    worker, here = PageChecker(enabled=True), PageChecker(enabled=False)
    try:
        await worker.start()
        from_worker = await worker.submit(_page(), keys, more=False)
        assert worker.pages_in_worker == 1
        from_here = await here.submit(_page(), keys, more=True)
        assert here.pages_in_worker == 0
    finally:
        await worker.close()
        await here.close()
    assert from_worker == from_here
    assert all(v is None or isinstance(v, CheckedEvent) for v in from_worker)


async def test_the_worker_imports_only_the_protocol() -> None:
    """The worker is a Python of its own running the page check: not this program again,
    not the client library, the server or the HTTP stack."""
    probe = WORKER + "\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith(("
    probe += "'schakel.client', 'schakel.server', 'schakel.cli', 'aiohttp', 'tests'))))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.strip() == b"[]", out


async def test_a_dead_worker_leaves_the_page_to_this_process() -> None:
    """The worker process is killed: the page it was given is checked here, with the same
    verdicts, and the worker is not used again."""
    keys = {AUTHOR.key_id: AUTHOR.verify_key}
    checker = PageChecker()
    try:
        await checker.start()
        proc = checker._proc
        assert proc is not None
        proc.kill()
        proc.wait()
        verdicts = await checker.submit(_page(), keys, more=True)
        assert checker.pages_in_worker == 1
        again = await checker.submit(_page(), keys, more=True)
    finally:
        await checker.close()
    assert verdicts == again == check_page(_page(), {AUTHOR.key_id: AUTHOR.verify_key.raw})
    assert checker.pages_in_worker == 1


async def test_a_page_left_with_the_worker_is_not_read_as_the_next_one() -> None:
    """A sync that stops while the worker holds its page (the answer is not waited for):
    the exchange finishes on its own thread, and the next page the worker checks gets its
    own verdicts, not the page left behind."""
    keys = {AUTHOR.key_id: AUTHOR.verify_key}
    left, next_page = _page()[:3], _page()[3:]
    checker = PageChecker()
    try:
        await checker.start()
        pending = checker.submit(left, keys, more=True)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        while not checker._worker_ready():           # the left page's exchange ends
            await asyncio.sleep(0.01)
        verdicts = await checker.submit(next_page, keys, more=True)
    finally:
        await checker.close()
    assert checker.pages_in_worker == 2
    assert verdicts == check_page(next_page, {AUTHOR.key_id: AUTHOR.verify_key.raw})


async def test_a_page_asked_for_while_the_worker_is_busy_is_checked_here() -> None:
    keys = {AUTHOR.key_id: AUTHOR.verify_key}
    checker = PageChecker()
    try:
        await checker.start()
        first = checker.submit(_page(), keys, more=True)
        second = checker.submit(_page(), keys, more=True)
        assert second.done(), "the second page waited for the worker"
        assert await first == await second
    finally:
        await checker.close()
    assert checker.pages_in_worker == 1


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
               max_size=40),
       st.integers(min_value=1, max_value=10**6), st.booleans())
def test_the_envelope_bytes_made_from_the_signed_bytes_are_its_canonical_json(
        acting_user: str, seq: int, closed: bool) -> None:
    """What a reader stores and hashes is made from the signed part's canonical bytes (the
    ones the signature covers) and equals RFC 8785 of the whole envelope (quotes and
    backslashes in a field, one or two signatures)."""
    envelope = _event(min(seq, 250), acting_user=acting_user,
                      **({"status": "closed"} if closed else {}))
    if seq > 200:
        envelope["signatures"].append({"keyid": STRANGER.key_id,
                                       "sig": envelope["signatures"][0]["sig"]})
    unverified = Event.unverified(envelope)
    assert unverified.canonical() == canonical_json(envelope)
    assert unverified.canonical_signed() == canonical_json(envelope["signed"])


def test_a_change_to_the_envelope_after_its_schema_passed_is_not_believed() -> None:
    """The signature is checked over the bytes made when the schemas passed, and the event
    is built from them: a dict changed in between (by the program holding it) changes
    neither what is verified nor what is built."""
    envelope = _event(2)
    unverified = Event.unverified(envelope)
    envelope["signed"]["acting_user"] = "iemand-anders"
    event = unverified.verify([AUTHOR.verify_key])
    assert event.acting_user == "wijkteam-1"
    assert unverified.canonical() != canonical_json(envelope)
