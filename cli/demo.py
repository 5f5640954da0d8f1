"""``schakel demo``: two networks from the report, played against a real server.

The demo starts ``schakel serve`` as a child process on a free loopback port, gives
every organisation its own home directory (keystore, ``client.json``, ``state.db``)
and plays issue 5's scenario through the public client library (:class:`schakel.client.Partner`):
real keys, real signed requests, real verification.  It narrates what each party sees
and what it cannot see, and every claim is a *check*: the demo exits 0 only if every
check held, so ``make demo`` doubles as an end-to-end test a newcomer can read.

The networks come from the report (../shared/seed, §4.2): "Buurtnetwerk 55+
Soesterkwartier" (Amersfoort; an open core with volunteers, consent is decisive) and
"Lokaal Zorgnetwerk Woningvervuiling" (after Rotterdam's oggz network; a closed core and
the bemoeizorg exception), played here in one city so that a case can be referred
from one to the other for aftercare — the wall between networks the report names as a
reason people fall through.  Every person and address in it is invented.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp

from schakel.client.partner import Partner
from schakel.client.signals import anonymous_signal, anonymous_status
from schakel.keys import KdfParams
from schakel.protocol import pii
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ProtocolError
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.disclosure import Grant

T = TypeVar("T")

#: One passphrase for every demo home, so `--serve` can tell you one SCHAKEL_PASSPHRASE.
#: A demo value: real homes each get their own (docs/roles/).
PASSPHRASE = "schakel demo passphrase, not a secret"
#: Seconds to wait for the child server's /healthz.
SERVER_START_TIMEOUT = 30.0


# =========================================================================== narration


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
            self.check(False, what, why=_describe(exc))
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
                       why="; ".join(wrong) or _describe(exc))
            message = getattr(exc, "message", None) or str(exc)
            if message and not wrong:
                self.say(f"      \"{_short(message)}\"")
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


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {_short(message, 200)}"


def _short(text: str, limit: int = 150) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# =========================================================================== the server


def free_port() -> int:
    """A free loopback port (the child binds it a moment later; :meth:`DemoServer.start`
    retries once if another process took it in between)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_digit_off(fingerprint: str) -> str:
    """``fingerprint`` with its last digit changed: a misheard or another server's."""
    return fingerprint[:-1] + str((int(fingerprint[-1]) + 1) % 10)


class DemoServer:
    """``schakel server init`` then ``schakel serve`` as child processes, as an operator
    runs them: the same server partners would use, with its log in ``server.log`` next to
    its data directory.  ``fingerprint`` is the server fingerprint ``server init``
    printed, which the operator gives the coordinator."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.fingerprint = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}

    def init(self) -> str:
        """``schakel server init --data DIR --json``: create the server's keys and return
        the server fingerprint it printed."""
        result = subprocess.run(
            [sys.executable, "-m", "schakel.cli", "server", "init", "--data", str(self.data),
             "--json"], env=self._env(), text=True, capture_output=True,
            stdin=subprocess.DEVNULL, timeout=SERVER_START_TIMEOUT * 4)
        if result.returncode != 0:
            raise RuntimeError(f"schakel server init failed: {result.stderr.strip()}")
        self.fingerprint = str(json.loads(result.stdout)["fingerprint"])
        return self.fingerprint

    def _spawn(self) -> None:
        self.port = free_port()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "schakel.cli", "serve", "--data", str(self.data),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
                start_new_session=True)

    async def start(self) -> str:
        """Run ``server init`` (once), start the server and wait until ``/healthz``
        answers 200; returns its URL."""
        if not self.fingerprint:
            self.init()
        for attempt in range(2):
            self._spawn()
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            async with aiohttp.ClientSession() as session:
                while time.monotonic() < deadline:
                    assert self.proc is not None
                    if self.proc.poll() is not None:
                        break
                    try:
                        async with session.get(self.url + "/healthz",
                                               timeout=aiohttp.ClientTimeout(total=2)) as resp:
                            if resp.status == 200:
                                return self.url
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        pass
                    await asyncio.sleep(0.1)
            self.stop()
            if attempt == 0 and self.proc is not None and self.proc.returncode not in (None, 0):
                continue  # the port was taken between free_port() and the bind: once more
        raise RuntimeError(f"schakel serve did not come up; its log:\n{self.tail()}")

    def tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (the server lets writes in progress commit), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# =========================================================================== the cast

NEIGHBOURHOOD = "Buurtnetwerk 55+ Soesterkwartier"
OGGZ = "Lokaal Zorgnetwerk Woningvervuiling"
COVENANTS = {
    NEIGHBOURHOOD: ("Convenant Buurtnetwerk 55+ Soesterkwartier. Wij bespreken casussen "
                    "anoniem; namen delen wij alleen met toestemming van de bewoner, en alleen "
                    "met wie ze nodig heeft."),
    OGGZ: ("Convenant Lokaal Zorgnetwerk Woningvervuiling. Bemoeizorg alleen op een grond "
           "uit het beleid, met schriftelijke onderbouwing, vier ogen en toetsing achteraf."),
}

#: The isolated elderly man of the neighbourhood network (invented).
MAN = {"name": {"given_names": "Hendrik", "family_name": "de Vries"},
       "address": {"street": "Soesterweg", "house_number": "12", "postcode": "3812 AB",
                   "city": "Amersfoort"},
       "official": {"bsn": "111222333", "date_of_birth": "1946-05-04"}}
MAN_INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
              "domains": ["loneliness", "self-care"], "severity": "medium",
              "care_status": "avoids-care", "source": "anonymous-signal", "complex": False,
              "summary": "Woont alleen sinds zijn vrouw overleed, komt de deur nauwelijks uit "
                         "en eet slecht. Wil wel bezoek, geen 'instanties'."}
#: The tenant of the polluted house (invented).
TENANT = {"name": {"given_names": "Karel", "family_name": "Brouwer"},
          "address": {"street": "Van Asch van Wijckstraat", "house_number": "40",
                      "postcode": "3811 LP", "city": "Amersfoort"}}
TENANT_INTAKE = {"kind": "intake", "age_band": "55-64", "neighbourhood": "Soesterkwartier",
                 "domains": ["housing-pollution", "self-neglect"], "severity": "acute",
                 "care_status": "avoids-care", "source": "partner", "complex": True,
                 "summary": "Ernstige woningvervuiling: stank in het trappenhuis, ongedierte, "
                            "huurder doet niet open. Buren klagen; brandgevaar."}
CONSULT_INTAKE = {"kind": "intake", "age_band": "85+", "neighbourhood": "Soesterkwartier",
                  "domains": ["self-care"], "severity": "low", "care_status": "misses-care",
                  "source": "partner", "complex": False,
                  "summary": "Consultatieve vraag: een mevrouw vergeet haar medicijnen en wil "
                             "geen hulp van buiten. Hoe krijgen we haar in beeld zonder haar "
                             "te overvallen?"}
#: Social work's first draft of the man's intake: his name and his daughter's number in it.
DRAFT_SUMMARY = ("Meneer de Vries woont alleen sinds zijn vrouw overleed en eet slecht. "
                 "Dochter: 06-12345678.")
DRIVER_CONCERN = ("Ik rij voor de vrijwillige vervoersdienst. Een oudere meneer aan de "
                  "Soesterweg laat al weken niemand binnen, de brievenbus puilt uit en hij "
                  "zegt dat hij niet meer eet.")
JUSTIFICATION = ("Huurder reageert al zes weken niet op brieven of huisbezoek; stank en "
                 "ongedierte in het trappenhuis, brandweer meldt brandgevaar. Zonder naam en "
                 "adres kan het bemoeizorgteam niet langsgaan.")


@dataclass
class Org:
    """One organisation: its home directory and, once created, its :class:`Partner`."""

    slug: str
    name: str
    acting_user: str
    partner: Partner | None = None

    @property
    def p(self) -> Partner:
        if self.partner is None:
            raise RuntimeError(f"{self.name} has no home yet")
        return self.partner


def _org(slug: str, name: str, acting_user: str) -> Any:
    return field(default_factory=lambda: Org(slug, name, acting_user))


@dataclass
class Cast:
    """Every organisation of the two networks (the housing corporation and the privacy
    officer serve both, each with one home)."""

    welzijn: Org = _org("welzijn", "Welzijn Amersfoort", "opbouwwerker-soesterkwartier")
    maatschappelijk_werk: Org = _org("maatschappelijk-werk", "Maatschappelijk Werk Amersfoort",
                                     "mw-casemanager-1")
    thuiszorg: Org = _org("thuiszorg", "Thuiszorg Amersfoort", "wijkverpleging-1")
    mee: Org = _org("mee", "MEE Amersfoort", "clientondersteuner-1")
    bezoekwerk: Org = _org("bezoekwerk", "Kerkelijk Bezoekwerk Soesterkwartier",
                           "bezoekwerk-coordinator")
    vrijwilligers: Org = _org("vrijwilligers", "Vrijwilligerscentrale Amersfoort",
                              "vrijwilligers-1")
    woningcorporatie: Org = _org("woningcorporatie", "Woningcorporatie Eemland Wonen",
                                 "huismeester-1")
    huisarts: Org = _org("huisarts", "Huisartsenpraktijk Soesterkwartier",
                         "praktijkondersteuner-1")
    privacy: Org = _org("privacy", "Privacyfunctionaris Gemeente Amersfoort", "privacy-officer-1")
    ggd: Org = _org("ggd", "GGD regio Utrecht", "ggd-regie-oggz")
    bemoeizorg: Org = _org("bemoeizorg", "GGD Bemoeizorgteam", "bz-arts-1")
    politie: Org = _org("politie", "Politie Basisteam Amersfoort", "wijkagent-1")
    verslavingszorg: Org = _org("verslavingszorg", "Verslavingszorg Amersfoort", "outreach-1")

    def all(self) -> list[Org]:
        return [getattr(self, f.name) for f in fields(self)]


# =========================================================================== the scenario


class Scenario:
    """Issue 5's scenario against a running server, one method per section.

    Each organisation acts only through its own :class:`schakel.client.Partner` (its own home,
    keys and verified state): what a party is shown reading is what its client decrypted
    and verified, and what it is shown not reading is a refusal or an absence checked
    here."""

    def __init__(self, tally: Tally, server: str, homes: Path, server_data: Path,
                 server_fingerprint: str) -> None:
        self.t, self.server, self.homes, self.server_data = tally, server, homes, server_data
        self.server_fingerprint = server_fingerprint
        self.c = Cast()
        self.nb = ""              # network ids, once founded
        self.oggz = ""
        self.man_case = ""
        self.tenant_case = ""
        self.consult_case = ""
        self.referred_case = ""
        self.releases: list[str] = []          # the basis of each identity release seen
        self.logs: dict[str, int] = {}         # network name -> audit log size verified

    async def play(self) -> None:
        await self.create_homes()
        await self.found_neighbourhood()
        await self.consult()
        await self.driver_signal()
        await self.elderly_man()
        await self.found_oggz()
        await self.housing_pollution()
        await self.referral()
        await self.audit()
        self.server_holds_no_plaintext()

    async def close(self) -> None:
        for org in self.c.all():
            if org.partner is not None:
                try:
                    await org.partner.close()
                except Exception:  # noqa: BLE001 -- closing after a failure must not hide it
                    pass

    # ------------------------------------------------------------------ homes

    async def create_homes(self) -> None:
        self.t.section("0. Every organisation creates its own home: keys, keystore, local state")
        for org in self.c.all():
            org.partner = await Partner.create(
                self.homes / org.slug, PASSPHRASE, name=org.name, server=self.server,
                acting_user=org.acting_user, kdf=KdfParams.INTERACTIVE)
        self.t.check(len({o.p.key_id for o in self.c.all()}) == len(self.c.all()),
                     f"{len(self.c.all())} organisations, each with its own key pair in its own "
                     f"home ({self.homes})")

    # ------------------------------------------------------------------ helpers

    async def join(self, network: str, coordinator: Org, org: Org, *, ring: str, party: str,
                   roles: tuple[str, ...] = (),
                   before_trust: Callable[[], Awaitable[None]] | None = None) -> None:
        """The covenant ceremony for one partner: the coordinator checks the partner's
        bundle and admits it; the partner configures the coordinator's fingerprint it
        heard aloud, accepts the covenant and syncs (verifying the genesis and the chain)."""
        kind = "shell" if ring == "shell" else "core"
        what = (f"{org.name} joins as {kind}, {party}"
                f"{', roles: ' + ', '.join(roles) if roles else ''}")

        async def ceremony() -> None:
            await coordinator.p.networks.admit(network, org.p.bundle(), ring=ring, party=party,
                                      roles=roles, fingerprint=org.p.fingerprint)
            if before_trust is not None:
                await before_trust()
            org.p.trust(network, coordinator.p.fingerprint)
            await org.p.networks.accept_covenant(network, COVENANTS[self.name_of(network)])
            await org.p.sync(network)

        await self.t.holds(what, ceremony)

    def name_of(self, network: str) -> str:
        return NEIGHBOURHOOD if network == self.nb else OGGZ

    async def sync(self, network: str, *orgs: Org) -> None:
        for org in orgs:
            await org.p.sync(network)

    def readable_case(self, org: Org, network: str, case: str) -> Any:
        """The case as ``org`` holds it, or None when it holds nothing readable."""
        try:
            view = org.p.cases.get(network, case)
        except Exception:  # noqa: BLE001 -- "does not hold it" is the answer here
            return None
        return view if view.readable else None

    # ------------------------------------------------------------------ 1. neighbourhood

    async def found_neighbourhood(self) -> None:
        t, w = self.t, self.c.welzijn
        t.section(f"1. {NEIGHBOURHOOD}: the coordinator founds the network")
        t.note(f"the server's operator gives the server fingerprint that `schakel server init` "
               f"printed: {self.server_fingerprint}", w.name)
        await t.refused("founding the network with a server fingerprint of one wrong digit "
                        "(another server's keys would not have it either)",
                        lambda: w.p.networks.create(
                            name=NEIGHBOURHOOD, kind="neighbourhood",
                            covenant=COVENANTS[NEIGHBOURHOOD],
                            server_fingerprint=_one_digit_off(self.server_fingerprint)),
                        code="untrusted_key")
        self.nb = await w.p.networks.create(name=NEIGHBOURHOOD, kind="neighbourhood",
                                           covenant=COVENANTS[NEIGHBOURHOOD],
                                           server_fingerprint=self.server_fingerprint)
        t.note(f"network {self.nb}: the server's log and gate keys, checked against the "
               f"server fingerprint, are in its signed genesis", w.name)
        t.note(f"reads its fingerprint aloud at the covenant ceremony: {w.p.fingerprint}", w.name)
        t.note("the policy: consent is decisive; informal partners get at most name, address "
               "and contact; no bemoeizorg", w.name)
        await t.refused("a bundle swapped on its way to the coordinator (the fingerprint read "
                        "aloud does not match)",
                        lambda: w.p.networks.admit(self.nb, self.c.mee.p.bundle(), ring="core",
                                          party="formal",
                                          fingerprint=self.c.thuiszorg.p.fingerprint),
                        code="untrusted_key")
        for org, ring, party, roles in (
                (self.c.maatschappelijk_werk, "core", "formal", ("professional-secrecy",)),
                (self.c.thuiszorg, "core", "formal", ()),
                (self.c.mee, "core", "formal", ()),
                (self.c.bezoekwerk, "core", "informal", ()),
                (self.c.vrijwilligers, "core", "informal", ()),
                (self.c.woningcorporatie, "shell", "formal", ()),
                (self.c.privacy, "shell", "formal", ("auditor",))):
            await self.join(self.nb, w, org, ring=ring, party=party, roles=roles)
        await self.join(self.nb, w, self.c.huisarts, ring="shell", party="formal",
                        before_trust=self._wrong_fingerprint)
        await w.p.sync(self.nb)
        members = await t.holds("the coordinator lists the members, each verified up to its key",
                                lambda: w.p.networks.members(self.nb))
        if members is not None:
            core = sum(1 for m in members if m["ring"] == "core" and m["current"])
            shell = sum(1 for m in members if m["ring"] == "shell" and m["current"])
            t.check((core, shell) == (6, 3), f"{core} core partners (the coordinator included) and "
                                             f"{shell} shell partners")
        await t.refused("the volunteer centre tries to accept an older covenant text",
                        lambda: self.c.vrijwilligers.p.networks.accept_covenant(
                            self.nb, COVENANTS[NEIGHBOURHOOD] + " (concept 2012)"),
                        code="context_mismatch")

    async def _wrong_fingerprint(self) -> None:
        """A second workstation of the GP's practice (a copy of its home, before it trusted
        the network) is configured with the wrong fingerprint — the GGD's, a real one of
        another coordinator.  Its client must refuse the genesis the server hands it, and
        must refuse to swap the anchor afterwards."""
        t = self.t
        copy = self.homes / "huisarts-tweede-werkplek"
        shutil.copytree(self.homes / self.c.huisarts.slug, copy)
        second = await Partner.open(copy, PASSPHRASE)
        try:
            second.trust(self.nb, self.c.ggd.p.fingerprint)
            await t.refused("a workstation configured with another coordinator's fingerprint "
                            "syncs the network", lambda: second.sync(self.nb),
                            reason="genesis-untrusted")
            await t.refused("...nor can it quietly replace the anchor afterwards",
                            lambda: second.trust(self.nb, self.c.welzijn.p.fingerprint),
                            code="untrusted_key")
        finally:
            await second.close()
            shutil.rmtree(copy, ignore_errors=True)

    # ------------------------------------------------------------------ 2. consult

    async def consult(self) -> None:
        t = self.t
        t.section("2. An anonymous consult: home care asks the network for advice")
        self.consult_case = await t.holds(
            "home care posts a consultative question (anonymous layer only, no identity)",
            lambda: self.c.thuiszorg.p.cases.consult(self.nb, CONSULT_INTAKE))
        await self.sync(self.nb, self.c.bezoekwerk, self.c.mee)
        view = self.readable_case(self.c.bezoekwerk, self.nb, self.consult_case)
        t.check(view is not None and view.kind == "consult" and view.state.get("summary")
                == CONSULT_INTAKE["summary"],
                "the church visiting service (informal, core) reads the question")
        if view is not None:
            t.note(f"reads: {view.state['age_band']}, {', '.join(view.state['domains'])}, "
                   f"\"{_short(view.state['summary'], 70)}\"", self.c.bezoekwerk.name)
        await t.holds("MEE answers on the consult with a note",
                      lambda: self.c.mee.p.cases.add_event(self.nb, self.consult_case, {
                          "kind": "note", "text": "Via de huisarts een 'toevallig' huisbezoek "
                                                  "van de praktijkondersteuner plannen."}))
        await t.holds("the coordinator shares the consult with the GP's practice (shell)",
                      lambda: self.c.welzijn.p.cases.share(self.nb, self.consult_case,
                                                   self.c.huisarts.p.key_id,
                                                   reason="medicatievraag"))
        await self.sync(self.nb, self.c.huisarts)
        view = self.readable_case(self.c.huisarts, self.nb, self.consult_case)
        t.check(view is not None and len(view.state.get("notes", [])) == 1,
                "the GP's practice now reads the consult and MEE's note")

    # ------------------------------------------------------------------ 3. signal

    async def driver_signal(self) -> None:
        t, w = self.t, self.c.welzijn
        t.section("3. A volunteer driver's anonymous signal, and the feedback he reads back")
        flyer = w.p.bundle()["signed"]          # the coordinator's public keys, on paper
        t.note("has no keys and no account: only the coordinator's public box key from the "
               "network's flyer", "volunteer driver")
        ticket = await t.holds(
            "the driver sends an anonymous signal, sealed to the coordinator; he keeps a receipt",
            lambda: anonymous_signal(self.server, self.nb, flyer["box"], DRIVER_CONCERN,
                                     urgency="medium",
                                     signaller_kind="volunteer-driver"))
        signals = await t.holds("the coordinator opens its signals",
                                lambda: w.p.signals.received(self.nb))
        mine = [s for s in signals or [] if ticket is not None and s.signal == ticket.signal]
        t.check(bool(mine) and mine[0].content.get("concern") == DRIVER_CONCERN
                and mine[0].sender is None,
                "the coordinator reads the concern; the server and the coordinator do not know "
                "who sent it")
        await t.refused("the church visiting service tries to list the network's signals",
                        lambda: self.c.bezoekwerk.p.signals.received(self.nb), error=ProtocolError)
        if ticket is None:
            return
        await t.holds("the coordinator answers: taken up, with a message sealed to the driver",
                      lambda: w.p.signals.feedback(self.nb, ticket.signal, "taken-up",
                                           "Dank u wel! Maatschappelijk werk gaat langs; u hoort "
                                           "niets over hem, maar er wordt voor hem gezorgd."))
        status = await t.holds("the driver reads the status with his receipt",
                               lambda: anonymous_status(self.server, ticket, flyer["sign"]))
        if status is not None:
            t.check(status.status == "taken-up" and any("gaat langs" in m for m in status.messages),
                    f"he sees \"{status.status}\" and the coordinator's message")

    # ------------------------------------------------------------------ 4. the man

    async def elderly_man(self) -> None:
        t, mw, church = self.t, self.c.maatschappelijk_werk, self.c.bezoekwerk
        t.section("4. Social work brings in the isolated man, with his consent")
        draft = {**MAN_INTAKE, "summary": DRAFT_SUMMARY}
        await self.sync(self.nb, self.c.welzijn)
        before = len(self.c.welzijn.p.cases.all(self.nb))
        refusal = await t.refused("the PII guard reads the anonymous layer before anything is "
                                  "sent", lambda: mw.p.cases.create(self.nb, draft, identity=MAN),
                                  code="policy_violation")
        self._show_where(refusal, DRAFT_SUMMARY, mw)
        await self.sync(self.nb, self.c.welzijn)
        t.check(len(self.c.welzijn.p.cases.all(self.nb)) == before,
                "nothing reached the server: the coordinator's sync finds no new case")
        t.note("writes \"woont alleen\" without his name and moves the number out of the story "
               "(both are in the sealed identity)", mw.name)
        self.man_case = await t.holds(
            "the case is created: anonymous intake, identity sealed per class",
            lambda: mw.p.cases.create(self.nb, MAN_INTAKE, identity=MAN))
        await self.sync(self.nb, church, self.c.thuiszorg, self.c.huisarts, self.c.welzijn)
        view = self.readable_case(church, self.nb, self.man_case)
        t.check(view is not None and view.state.get("age_band") == "75-84",
                "the church visiting service reads the anonymous layer")
        if view is not None:
            t.note(f"reads: {view.state['age_band']}, {view.state['neighbourhood']}, "
                   f"{', '.join(view.state['domains'])}, {view.state['care_status']}", church.name)
        t.check(not church.p.identity.get(self.nb, self.man_case),
                "...but not who he is: it holds no identity before a release")
        await t.holds("it offers a weekly visit (an informal action on the case)",
                      lambda: self._church_action())
        await self._formal_help(self.c.thuiszorg)
        t.check(self.readable_case(self.c.huisarts, self.nb, self.man_case) is None,
                "the GP's practice (shell) holds nothing of a case that was not shared with it")
        await t.refused("the GP's practice asks the server for the case anyway",
                        lambda: self.c.huisarts.p.session.conn.get(
                            f"/v1/networks/{self.nb}/cases/{self.man_case}"), code="forbidden")

        consent = await t.holds(
            "he agrees: social work records his consent (name, address, BSN; formal and "
            "informal partners; one year)",
            lambda: mw.p.disclosure.record_consent(
                self.nb, self.man_case, classes=("name", "address", "official"),
                parties=("formal", "informal"), purpose="bezoek en afstemming van zorg",
                valid_days=365, evidence=b"toestemmingsformulier, ondertekend 2026"))
        grant = await t.holds("the coordinator grants the visiting service name and address",
                              lambda: self.c.welzijn.p.disclosure.grant(
                                  self.nb, self.man_case, consent=consent,
                                  grantee=church.p.key_id, classes=("name", "address"),
                                  reason="wekelijks bezoek"))
        released = await t.holds("the visiting service releases them (audit entry first, "
                                 "receipt verified)", lambda: church.p.disclosure.release(self.nb, grant))
        if released is not None:
            self.releases.append("consent")
            name, address = released.classes.get("name", {}), released.classes.get("address", {})
            t.check(name == MAN["name"] and address == MAN["address"],
                    f"it now reads: {name.get('given_names')} {name.get('family_name')}, "
                    f"{address.get('street')} {address.get('house_number')}")
        t.check("official" not in church.p.identity.get(self.nb, self.man_case),
                "it does not hold his BSN or date of birth")
        t.check(not self.c.welzijn.p.identity.get(self.nb, self.man_case),
                "the coordinator granted it but holds no identity itself: granting is not reading")
        await t.refused(
            "the coordinator grants the visiting service his BSN too (its own client says no)",
            lambda: self.c.welzijn.p.disclosure.grant(self.nb, self.man_case, consent=consent,
                                         grantee=church.p.key_id, classes=("official",),
                                         reason="aanvraag voorziening"),
            reason="informal-class-not-allowed")
        if consent is not None:
            await self._server_refuses_official(consent)

    def _show_where(self, refusal: BaseException | None, text: str, org: Org) -> None:
        """What the refusal shows the writer: each finding's kind and place, and the
        summary with placeholders (docs/protocol.md §8.2)."""
        details = getattr(refusal, "details", None) or {}
        found = [pii.Finding(kind=f["kind"], start=f["start"], end=f["end"])
                 for f in details.get("findings") or [] if f.get("path") == "summary"]
        for f in found:
            self.t.note(f"is shown: {f.label} at \"{text[f.start:f.end]}\" \u2192 "
                        f"{f.placeholder}", org.name)
        rewrite = pii.redact(text, found) if found else text
        self.t.check(bool(found) and "06-12345678" not in rewrite and "[telefoon]" in rewrite,
                     f"the refusal says where and what, and suggests: \"{_short(rewrite, 90)}\"")

    async def _church_action(self) -> int:
        return await self.c.bezoekwerk.p.cases.add_event(self.nb, self.man_case, {
            "kind": "action", "description": "Wekelijks bezoek door een vrijwilliger.",
            "help_type": "informal", "relation": "complementary",
            "by": self.c.bezoekwerk.p.key_id})

    async def _formal_help(self, care: Org) -> None:
        """Informal where possible, professional where necessary: a formal action says why
        informal help is not possible, in words, and every member's client judges it again
        when it reads the case (docs/protocol.md §7)."""
        t = self.t
        nursing = {"kind": "action", "description": "Wijkverpleging komt twee keer per week.",
                   "help_type": "formal", "relation": "complementary", "by": care.p.key_id}
        await t.refused("home care adds formal help with 'nvt' as the reason informal help is "
                        "not possible",
                        lambda: care.p.cases.add_event(self.nb, self.man_case,
                                                 {**nursing, "informal_not_possible": "nvt"}),
                        reason="formal-action-reason-says-nothing")
        await t.holds("...and with the reason in words (an open leg wound needs a nurse)",
                      lambda: care.p.cases.add_event(self.nb, self.man_case, {
                          **nursing, "informal_not_possible": "Open been vraagt wondzorg door "
                                                              "een verpleegkundige."}))
        await self.sync(self.nb, self.c.welzijn)
        view = self.readable_case(self.c.welzijn, self.nb, self.man_case)
        t.check(view is not None and len(view.state["actions"]) == 2 and not view.breaches,
                "the coordinator's client judges both actions again as it reads the case: "
                "informal and formal help combined, no policy breach")

    async def _server_refuses_official(self, consent: str) -> None:
        """The client refused early and sent nothing.  A client that skips the check (an
        old version, a hostile one) meets the server's own ``policy.decide``, which
        writes the denial to the audit log before it answers."""
        t, w = self.t, self.c.welzijn
        grant = Grant(network=self.nb, grant=b64e(random_bytes(16)), case=self.man_case,
                      grantee=self.c.bezoekwerk.p.key_id, classes=("official",),
                      basis={"kind": "consent", "consent": consent},
                      acting_user=w.p.acting_user, at=format_timestamp(w.p.session.now()),
                      reason="aanvraag voorziening").sign(w.p.session.keys.signer)
        refusal = await t.refused(
            "a client that skips that check sends the grant anyway: the server refuses it too",
            lambda: w.p.session.conn.post(f"/v1/networks/{self.nb}/grants", {"grant": grant}),
            reason="informal-class-not-allowed")
        index = (getattr(refusal, "details", None) or {}).get("audit_index")
        entries = await t.holds("the coordinator reads the audit log, each entry verified",
                                lambda: w.p.audit.entries(self.nb))
        denial = [e for e in entries or [] if e.get("index") == index]
        t.check(bool(denial) and denial[0]["entry"].get("action") == "deny"
                and denial[0]["entry"].get("reason") == "informal-class-not-allowed",
                f"the refusal is audit entry {index}: action deny, reason "
                f"informal-class-not-allowed, written before the answer")

    # ------------------------------------------------------------------ 5. oggz

    async def found_oggz(self) -> None:
        t, g = self.t, self.c.ggd
        t.section(f"5. {OGGZ}: the GGD founds an oggz network")
        self.oggz = await g.p.networks.create(name=OGGZ, kind="oggz", covenant=COVENANTS[OGGZ],
                                             server_fingerprint=self.server_fingerprint)
        t.note(f"network {self.oggz}; fingerprint {g.p.fingerprint}", g.name)
        t.note("the policy: a closed, professional core; bemoeizorg on grounds "
               "housing-pollution, severe-self-neglect, ... with four eyes", g.name)
        for org, ring, party, roles in (
                (self.c.bemoeizorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
                (self.c.woningcorporatie, "core", "formal", ()),
                (self.c.politie, "core", "formal", ()),
                (self.c.verslavingszorg, "core", "formal", ("bemoeizorg", "professional-secrecy")),
                (self.c.privacy, "shell", "formal", ("auditor",))):
            await self.join(self.oggz, g, org, ring=ring, party=party, roles=roles)

    async def housing_pollution(self) -> None:
        t, wc, bz = self.t, self.c.woningcorporatie, self.c.bemoeizorg
        t.section("6. Severe housing pollution: bemoeizorg, four eyes, and the auditor's review")
        self.tenant_case = await t.holds(
            "the housing corporation reports the house as a case (identity sealed)",
            lambda: wc.p.cases.create(self.oggz, TENANT_INTAKE, identity=TENANT))
        await self.sync(self.oggz, self.c.politie, bz, self.c.verslavingszorg, self.c.ggd)
        view = self.readable_case(self.c.politie, self.oggz, self.tenant_case)
        t.check(view is not None and view.state.get("severity") == "acute"
                and not self.c.politie.p.identity.get(self.oggz, self.tenant_case),
                "the police read the anonymous layer (acute, housing pollution), not the identity")
        await t.refused("the police try to invoke bemoeizorg",
                        lambda: self.c.politie.p.disclosure.invoke_bemoeizorg(
                            self.oggz, self.tenant_case, ground="housing-pollution",
                            justification=JUSTIFICATION),
            reason="bemoeizorg-role-required")
        await t.refused("the bemoeizorg team tries a ground that is not in the policy",
                        lambda: bz.p.disclosure.invoke_bemoeizorg(self.oggz, self.tenant_case,
                                                       ground="overlast-vermoeden",
                                                       justification=JUSTIFICATION),
                        reason="bemoeizorg-ground-invalid")
        invocation = await t.holds(
            "the bemoeizorg team invokes it: ground housing-pollution, a written justification "
            "sealed to the auditors",
            lambda: bz.p.disclosure.invoke_bemoeizorg(self.oggz, self.tenant_case,
                                           ground="housing-pollution",
                                           justification=JUSTIFICATION))
        if invocation is None:
            return
        await t.refused("it asks for the identity before anyone co-signed",
                        lambda: bz.p.disclosure.bemoeizorg_release(self.oggz, invocation),
                        reason="bemoeizorg-four-eyes-required")
        await t.refused("it tries to co-sign its own invocation",
                        lambda: bz.p.disclosure.cosign(self.oggz, invocation),
                        reason="bemoeizorg-same-person-cosign")
        await t.holds("a second person with the role, the addiction care outreach worker, "
                      "co-signs (four eyes)",
                      lambda: self.c.verslavingszorg.p.disclosure.cosign(self.oggz, invocation,
                                                            case=self.tenant_case))
        released = await t.holds("the team releases the identity (audited: emergency, "
                                 "review required)",
                                 lambda: bz.p.disclosure.bemoeizorg_release(self.oggz, invocation))
        if released is not None:
            self.releases.append("bemoeizorg")
            name = released.classes.get("name", {})
            t.check(released.classes.get("address") == TENANT["address"]
                    and name == TENANT["name"],
                    f"the team reads: {name.get('given_names')} {name.get('family_name')}, "
                    f"{TENANT['address']['street']} {TENANT['address']['house_number']}")
        t.check(not self.c.politie.p.identity.get(self.oggz, self.tenant_case),
                "the police still hold no identity")
        feed = await t.holds("the GGD coordinator reads its notifications",
                             lambda: self.c.ggd.p.session.conn.get(
                                 f"/v1/networks/{self.oggz}/notifications"))
        kinds = {i.get("kind") for i in (feed or {}).get("items", [])
                 if i.get("invocation") == invocation}
        t.check({"bemoeizorg", "bemoeizorg-release"} <= kinds,
                "...which tell it of the invocation and of the release",
                why=f"kinds {sorted(kinds)}")
        answer = await t.holds("the GGD coordinator fetches the invocation",
                               lambda: self.c.ggd.p.session.conn.get(
                                   f"/v1/networks/{self.oggz}/bemoeizorg/{invocation}"))
        if answer is not None:
            sealed_to = [j.get("auditor") for j in
                         answer["invocation"]["signed"].get("justification", [])]
            t.check(sealed_to == [self.c.privacy.p.key_id],
                    "...but its justification is sealed to the auditor alone: the GGD holds no "
                    "key to it")
        text = await t.holds("the privacy officer opens the justification sealed to it",
                             lambda: self.c.privacy.p.disclosure.justification(self.oggz, invocation))
        if text is not None:
            t.check(text == JUSTIFICATION, f"it reads: \"{_short(text, 90)}\"")
        await t.holds("and records its review: approved",
                      lambda: self.c.privacy.p.disclosure.review(
                          self.oggz, invocation, approved=True,
                          note="De grond en de onderbouwing passen bij het convenant."))

    # ------------------------------------------------------------------ 7. referral

    async def referral(self) -> None:
        t, g = self.t, self.c.ggd
        t.section("7. After the clean-up: a referral to the neighbourhood network for aftercare")
        await self.join(self.nb, self.c.welzijn, g, ring="core", party="formal")
        consent = await t.holds(
            "the tenant agrees to aftercare: the GGD records consent naming the neighbourhood "
            "coordinator",
            lambda: g.p.disclosure.record_consent(self.oggz, self.tenant_case, classes=("name", "address"),
                                       partners=(self.c.welzijn.p.key_id,),
                                       purpose="nazorg via het buurtnetwerk", valid_days=180,
                                       evidence=b"mondelinge toestemming, vastgelegd door GGD"))
        self.referred_case = await t.holds(
            "the GGD refers the case: its anonymous state is re-encrypted into the "
            "neighbourhood network",
            lambda: g.p.referrals.refer(self.oggz, self.tenant_case, self.nb, consent=consent,
                              reason="nazorg na schoonmaak"))
        await self.sync(self.nb, self.c.bezoekwerk, self.c.welzijn)
        view = self.readable_case(self.c.bezoekwerk, self.nb, self.referred_case)
        t.check(view is not None and "housing-pollution" in view.state.get("domains", []),
                "the church visiting service reads the referred case's anonymous layer")
        t.check(not self.c.bezoekwerk.p.identity.get(self.nb, self.referred_case),
                "...and not the tenant's identity")

    # ------------------------------------------------------------------ 8. audit

    async def audit(self) -> None:
        t, a = self.t, self.c.privacy
        t.section("8. The auditor verifies both logs from scratch")
        for network in (self.nb, self.oggz):
            v = await t.holds(f"{self.name_of(network)}: every entry recomputed, proven "
                              f"included, the head signed by the server's log key",
                              lambda network=network: a.p.audit.verify(network))
            if v is not None:
                self.logs[self.name_of(network)] = v.size
                t.check(v.size > 0 and v.checked + v.erased == v.size,
                        f"size {v.size}, root {v.root[:16]}…: all {v.checked} entries checked",
                        why=f"checked {v.checked}, erased {v.erased}")
        await t.holds("the 'out' and 'in' sides of the referral are in the two logs",
                      lambda: self._referral_logged())
        entries = await t.holds("it reads the housing case's trail in the oggz log",
                                lambda: a.p.audit.entries(self.oggz))
        trail = [e["entry"] for e in entries or []
                 if e.get("entry") and e["entry"].get("case") == self.tenant_case]
        for entry in trail:
            actor = entry.get("actor") or {}
            flags = ", ".join(f for f in ("emergency", "review_required") if entry.get(f))
            t.note(f"#{entry.get('index')} {entry.get('action')} by {actor.get('organisation')} "
                   f"({actor.get('acting_user')}): {entry.get('reason')}"
                   f"{f' [{flags}]' if flags else ''}", a.name)
        actions = [(e.get("action"), e.get("reason")) for e in trail]
        wanted = [("bemoeizorg-invoke", "housing-pollution"),
                  ("deny", "bemoeizorg-four-eyes-required"),
                  ("bemoeizorg-cosign", "four-eyes"),
                  ("bemoeizorg-release", "housing-pollution")]
        t.check(all(w in actions for w in wanted)
                and any(e.get("action") == "bemoeizorg-release" and e.get("review_required")
                        and e.get("emergency") for e in trail),
                "invocation, the refused early release, the co-sign and the release (emergency, "
                "review required) are all there", why=f"found {actions}")
        report = await t.holds("the subject access report of the man's case",
                               lambda: a.p.reports.access(self.nb, self.man_case))
        if report is not None:
            for line in str(report.get("text", "")).splitlines()[:24]:
                self.t.say(f"      | {line}")
            releases, denials = report.get("releases", []), report.get("denials", [])
            t.check(any(r.get("partner") == self.c.bezoekwerk.p.key_id for r in releases)
                    and any(d.get("reason") == "informal-class-not-allowed" for d in denials),
                    "it lists the visiting service's release and the refused BSN")

    async def _referral_logged(self) -> None:
        out = await self.c.privacy.p.audit.entries(self.oggz)
        into = await self.c.privacy.p.audit.entries(self.nb)
        if not any(e["entry"].get("action") == "referral-out" for e in out):
            raise AssertionError("no referral-out entry in the oggz log")
        if not any(e["entry"].get("action") == "referral-in" for e in into):
            raise AssertionError("no referral-in entry in the neighbourhood log")

    # ------------------------------------------------------------------ 9. server

    def server_holds_no_plaintext(self) -> None:
        t = self.t
        t.section("9. What the server holds: ciphertext, signatures, pseudonyms")
        blob = b"".join(p.read_bytes() for p in sorted(self.server_data.glob("schakel.db*"))
                        if p.is_file())
        t.check(self.nb.encode() in blob and self.man_case.encode() in blob,
                f"its database ({len(blob) // 1024} KiB with the WAL) holds the network and case "
                f"ids (the grep works)")
        for what, needles in (
                ("the man's name, street or BSN", ("Hendrik", "de Vries", "Soesterweg",
                                                    "111222333")),
                ("the tenant's name or address", ("Brouwer", "Van Asch van Wijckstraat")),
                ("the anonymous layer's text", (MAN_INTAKE["summary"][:30],
                                                CONSULT_INTAKE["summary"][:30])),
                ("the driver's concern or the bemoeizorg justification",
                 (DRIVER_CONCERN[:30], JUSTIFICATION[:30]))):
            found = [n for n in needles if n.encode() in blob]
            t.check(not found, f"no trace of {what}", why=f"found {found}")
        state = b"".join(p.read_bytes() for p in (self.homes / "bezoekwerk").glob("state.db*"))
        held = self.c.bezoekwerk.p.identity.get(self.nb, self.man_case)
        t.check(bool(held) and b"Hendrik" not in state,
                "the visiting service's own state file keeps his name encrypted too")

    # ------------------------------------------------------------------ the end

    def recap(self) -> list[str]:
        """What the run showed, in numbers (printed before the check count)."""
        pairs = ((self.c.welzijn, self.nb), (self.c.ggd, self.oggz))
        cases = sum(len(o.p.cases.all(n)) for o, n in pairs if o.partner is not None and n)
        logs = ", ".join(f"{name} {size}" for name, size in self.logs.items()) or "none"
        return [
            f"{len(self.c.all())} organisations, each with its own home and keys; 2 networks; "
            f"{cases} cases and consults",
            f"identity released {len(self.releases)}x ({', '.join(self.releases) or '-'}), "
            f"each after its audit entry; {self.t.refusals} attempts refused, each with its reason",
            f"audit entries verified from scratch: {logs}",
        ]

    # ------------------------------------------------------------------ --serve

    def instructions(self, passphrase: str, url: str) -> str:
        """Copy-pasteable commands for trying the CLI against the running server."""
        homes = "\n".join(f"    {o.name:<42} {self.homes / o.slug}" for o in self.c.all())
        nb, oggz, case = self.nb, self.oggz, self.man_case
        scripts = Path(sys.executable).parent
        path = ("" if shutil.which("schakel") == str(scripts / "schakel")
                else f"    export PATH={scripts}:$PATH\n")
        return f"""
The server keeps running at {url}, with every organisation's home:
{homes}

Its server fingerprint, for founding another network on it
(`schakel network create ... --server-fingerprint "..."`): {self.server_fingerprint}

Try the command line in another terminal (one passphrase for all the demo's homes):

{path}    export SCHAKEL_PASSPHRASE='{passphrase}'

    # the neighbourhood coordinator
    export SCHAKEL_HOME={self.homes / 'welzijn'}
    schakel whoami
    schakel member list {nb}
    schakel case list {nb}
    schakel case show {nb} {case}
    schakel signal list {nb}
    schakel audit verify {nb}
    schakel audit report {nb} {case}
    schakel report {nb}

    # the church visiting service: the name and address released to it
    export SCHAKEL_HOME={self.homes / 'bezoekwerk'}
    schakel case identity {nb} {case}

    # the GP's practice (shell): only the consult shared with it
    export SCHAKEL_HOME={self.homes / 'huisarts'}
    schakel case list {nb}

    # the privacy officer (auditor) of the oggz network
    export SCHAKEL_HOME={self.homes / 'privacy'}
    schakel audit verify {oggz}
    schakel audit log {oggz}

Ctrl-C stops the server."""


# =========================================================================== running it


@dataclass
class Workspace:
    """Where the demo keeps its server data and the organisations' homes."""

    root: Path
    keep: bool

    @property
    def server_data(self) -> Path:
        return self.root / "server"

    @property
    def homes(self) -> Path:
        return self.root / "homes"

    @classmethod
    def make(cls, keep: Path | None) -> "Workspace":
        if keep is None:
            return cls(Path(tempfile.mkdtemp(prefix="schakel-demo-")), keep=False)
        keep = keep.resolve()
        if keep.exists() and any(keep.iterdir()):
            raise FileExistsError(f"{keep} is not empty; --keep needs a new or empty folder")
        keep.mkdir(parents=True, exist_ok=True)
        return cls(keep, keep=True)

    def clean(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


async def play(tally: Tally, workspace: Workspace, server: DemoServer) -> "Scenario":
    """Start the server and play the scenario into ``tally``.  An unexpected exception
    stops the story; it is a failed check, never a silent success."""
    workspace.server_data.mkdir(parents=True, exist_ok=True)
    workspace.homes.mkdir(parents=True, exist_ok=True)
    url = await server.start()
    tally.note(f"schakel serve is up at {url} (data in {workspace.server_data})")
    scenario = Scenario(tally, url, workspace.homes, workspace.server_data, server.fingerprint)
    try:
        await scenario.play()
    except Exception as exc:  # noqa: BLE001 -- reported as a failure with its traceback
        tally.check(False, "the scenario ran to its end", why=_describe(exc))
        traceback.print_exc(file=sys.stderr)
    else:
        tally.section("Summary")
        for line in scenario.recap():
            tally.note(line)
    finally:
        await scenario.close()
    return scenario


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(*, serve: bool = False, keep: Path | None = None,
        out: TextIO | None = None) -> int:
    """Play the demo; returns the process exit code (0 only if every check held)."""
    out = out or sys.stdout
    tally = Tally(say=printer(out), marks=marks_for(out))
    # SIGTERM ends the demo like Ctrl-C does: through the `finally` below, which stops the
    # server (it runs in its own session, so no signal reaches it by itself).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    workspace = Workspace.make(keep)
    server = DemoServer(workspace.server_data, workspace.root / "server.log")
    started = time.monotonic()
    tally.say("Schakel demo: two networks from the report, a real server, real keys.")
    tally.say(f"Each {tally.marks.ok} is a check that held, {tally.marks.fail} one that did not; "
              f"{tally.marks.note} lines say what a party does or reads.")
    try:
        scenario = asyncio.run(play(tally, workspace, server))
        tally.summary(time.monotonic() - started)
        if tally.failures:
            print(f"The server's log (requests only, never content), last lines:\n"
                  f"{server.tail(2000)}", file=sys.stderr)
        if serve and server.proc is not None and server.proc.poll() is None:
            tally.say(scenario.instructions(PASSPHRASE, server.url))
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                tally.say("\nStopping the server.")
        return tally.exit_code()
    except KeyboardInterrupt:
        tally.say("\nInterrupted; stopping the server.")
        return 130
    except Exception as exc:  # noqa: BLE001 -- e.g. the server did not start
        tally.check(False, "the demo could start", why=_describe(exc))
        tally.summary(time.monotonic() - started)
        return tally.exit_code()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        if workspace.keep:
            tally.say(f"Kept the server data and the homes in {workspace.root}.")
        workspace.clean()


__all__ = ["Marks", "UNICODE", "ASCII", "marks_for", "printer", "Tally", "DemoServer", "Workspace",
           "Scenario", "run", "PASSPHRASE"]
