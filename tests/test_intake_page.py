"""The intake page as the server serves it (server/routes/intake.py; docs/protocol.md §14.3
"Intake page"; ADR 0038): which networks have one, the security headers on every file of
it, what the files may and may not contain, and the vendored libsodium.js against its
version note.  The real application on a real SQLite file (tests/server_harness.py); what
the page does in a browser is tests/test_intake_browser.py.  One rule per test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from schakel.keys import issue_policy
from schakel.server.routes.intake import ASSETS, CONTENT_SECURITY_POLICY
from tests.server_harness import (
    Caller, FakeClock, InProcessServer, Network, assert_status, network_policy, register,
    server_keys,
)

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "server" / "static"
PAGE_FILES = [("/intake/{network}", "intake.html", "text/html"),
              *[(path, name, kind) for path, name, kind, _ in ASSETS]]


@pytest.fixture
async def caller(tmp_path: Path) -> AsyncIterator[Caller]:
    server = InProcessServer(tmp_path / "server", FakeClock())
    c = await server.start()
    try:
        yield c
    finally:
        await server.stop()


async def network(caller: Caller, *, anonymous_signals: bool) -> Network:
    net = Network(await server_keys(caller), caller.clock,
                  policy=network_policy("neighbourhood", anonymous_signals=anonymous_signals))
    await register(caller, net, epoch=False)
    return net


def page(net: Network) -> str:
    return f"/intake/{net.id}"


async def test_a_network_that_takes_anonymous_signals_has_an_intake_page(caller: Caller) -> None:
    net = await network(caller, anonymous_signals=True)
    reply = await caller.get(page(net))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<html lang="nl">' in reply.raw


async def test_a_network_without_anonymous_signals_has_no_intake_page(caller: Caller) -> None:
    """A page would invite signals the intake refuses (403 anonymous-signals-disabled): the
    address answers as for a network that does not exist."""
    net = await network(caller, anonymous_signals=False)
    reply = await caller.get(page(net))
    assert (reply.status, reply.code) == (404, "not_found")
    assert b"<html" not in reply.raw


async def test_an_unknown_network_has_no_intake_page_and_a_bad_id_is_malformed(
        caller: Caller) -> None:
    assert (await caller.get("/intake/AAAAAAAAAAAAAAAAAAAAAA")).code == "not_found"
    assert (await caller.get("/intake/not-an-id")).code == "malformed"


async def test_a_policy_that_stops_anonymous_signals_closes_the_page_from_the_next_request(
        caller: Caller) -> None:
    net = await network(caller, anonymous_signals=True)
    assert (await caller.get(page(net))).status == 200
    version2 = issue_policy(net.coordinator.keys, network=net.id, version=2,
                            issued=caller.clock.now() + timedelta(seconds=1),
                            policy=network_policy("neighbourhood", anonymous_signals=False))
    caller.clock.advance(2)
    assert_status(await caller.post(net.path("/policies"), net.coordinator,
                                    {"policy": version2}), 201)
    assert (await caller.get(page(net))).code == "not_found"


@pytest.mark.parametrize(("path", "name", "media_type"), PAGE_FILES,
                         ids=[name for _, name, _ in PAGE_FILES])
async def test_every_file_of_the_page_carries_the_security_headers(
        caller: Caller, path: str, name: str, media_type: str) -> None:
    """The page, its style sheet and its scripts: the strict Content-Security-Policy
    (this origin only, no inline script, no framing, no native form submission),
    nosniff, no referrer; the file as it is in the package, with its media type."""
    net = await network(caller, anonymous_signals=True)
    reply = await caller.get(path.replace("{network}", net.id))
    assert reply.status == 200
    assert reply.raw == (STATIC / name).read_bytes()
    assert reply.headers["Content-Type"] == f"{media_type}; charset=utf-8"
    csp = {d.split(" ", 1)[0]: d.split(" ", 1)[1]
           for d in reply.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"      # no 'unsafe-inline'/'unsafe-eval'
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["form-action"] == "'none'"
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["X-Frame-Options"] == "DENY"


def test_the_page_has_no_inline_script_or_style_and_no_outside_address() -> None:
    """What the policy forbids is not in the page either: no inline script, event handler
    attribute or style, no address of another site (no CDN); the scripts it loads are the
    served files."""
    html = (STATIC / "intake.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts)
    assert [re.search(r'src="([^"]+)"', attrs)[1] for attrs, _ in scripts] == [
        "/intake/static/vendor/libsodium.js", "/intake/static/vendor/libsodium-wrappers.js",
        "/intake/static/intake.js"]
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    for name in ("intake.js", "intake.css"):
        assert not re.search(r"https?://", (STATIC / name).read_text(encoding="utf-8"))


def test_the_concern_field_has_no_name_so_no_native_submission_carries_it() -> None:
    """Should the script not run, a native submission of the form would put the text in
    the address: the policy forbids form submissions (form-action 'none'), and the text
    fields have no name, so they would not be part of one anyway."""
    html = (STATIC / "intake.html").read_text(encoding="utf-8")
    for tag in re.findall(r"<(?:textarea|input|select)\b[^>]*>", html):
        if 'type="radio"' not in tag:
            assert " name=" not in tag, tag


def test_the_page_meets_the_wcag_basics() -> None:
    """lang="nl", a label for every field, a legend for the radio group, a status region
    for progress and an alert region for refusals."""
    html = (STATIC / "intake.html").read_text(encoding="utf-8")
    assert '<html lang="nl">' in html
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    fields = re.findall(r'<(?:textarea|input|select)\b[^>]*\bid="([^"]+)"', html)
    assert fields and set(fields) <= labelled, set(fields) - labelled
    assert "<legend>" in html
    assert 'role="status"' in html and 'role="alert"' in html


def test_the_vendored_libsodium_is_the_version_its_note_names() -> None:
    """Each vendored file has the SHA-256 its note (server/static/vendor/README.md)
    records for the npm release, and the licence travels with it."""
    note = (STATIC / "vendor" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([0-9.]+) \| `[^`]+` \| `([0-9a-f]{64})` \|$",
                      note, re.M)
    assert {r[0] for r in rows} == {"libsodium.js", "libsodium-wrappers.js"}
    for name, package, version, digest in rows:
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest, name
        assert f"`{package}@{version}`" in note
    licence = (STATIC / "vendor" / "LICENSE").read_text(encoding="utf-8")
    assert "Permission to use, copy, modify, and/or distribute this software" in licence
