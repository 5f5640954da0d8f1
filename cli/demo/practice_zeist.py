"""Zeist: the Steunpunt Eenzaamheid Zeist (report §4.1 schema 2, §4.2.3, §4.5.2), played
by ``schakel demo --practice zeist``.

A neighbourhood network around loneliness whose signals come from people without any
account: neighbours trained to notice, the volunteer drivers of the elderly transport.
The Steunpunt publishes the network's card (ADR 0027) with its fingerprint on the
leaflet; a neighbour signals with the command line (``schakel signal send --anonymous
--network-card FILE``, run as a person types it), a volunteer driver with the library
(:mod:`schakel.client.card`).  Each keeps a ticket with a receipt, the Steunpunt answers
both, and each reads the answer back; nobody but the Steunpunt reads a concern, and
nobody, the Steunpunt included, learns who sent it.  Every person and address is
invented.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from schakel.cli.demo.stage import Cast, Org, Practice, Scene, org
from schakel.cli.demo.tally import short
from schakel.client.card import anonymous_signal, anonymous_status, fetch_card, read_card
from schakel.client.views import SignalTicket
from schakel.protocol.errors import ProtocolError

STEUNPUNT = "Steunpunt Eenzaamheid Zeist"
COVENANT = ("Convenant Steunpunt Eenzaamheid Zeist. Signalen van buren en vrijwilligers "
            "blijven bij het steunpunt; wij koppelen altijd terug wat er met een melding "
            "gebeurt, zonder te zeggen over wie het ging.")
KINDS = ("resident", "neighbour", "volunteer-driver")
#: What a neighbour in Zeist-Noord notices (invented), and who it is about, sealed.
NEIGHBOUR_CONCERN = ("Mijn buurvrouw komt sinds de winter niet meer buiten. De gordijnen "
                     "blijven dicht en er komt niemand meer langs.")
LADY = {"address": {"street": "Vogelweide", "house_number": "31", "postcode": "3705 XK",
                    "city": "Zeist"}}
LADY_INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Zeist-Noord",
               "domains": ["loneliness"], "severity": "medium", "care_status": "misses-care",
               "source": "anonymous-signal", "complex": False,
               "summary": "Komt sinds de winter niet meer buiten, gordijnen dicht, geen "
                          "bezoek. Buren maken zich zorgen."}
DRIVER_CONCERN = ("Ik rijd voor de ouderenvervoersdienst. Een vaste passagier zegt dat "
                  "hij sinds de dood van zijn hond met niemand meer praat.")
THANKS = ("Dank u voor uw melding. Wij gaan bij uw buurvrouw langs en houden contact; "
          "over haar horen of zeggen wij verder niets.")
REFERRED = "Dank u! Wij hebben MEE gevraagd contact met hem op te nemen."


@dataclass
class ZeistCast(Cast):
    """The Steunpunt (coordinator), MEE and the drop-in house of Zeist-Noord in the core,
    the housing association and the municipality's privacy officer in the shell."""

    steunpunt: Org = org("steunpunt", STEUNPUNT, "wijkconsulent-1")
    mee: Org = org("mee", "MEE Zeist", "clientondersteuner-1")
    inloophuis: Org = org("inloophuis", "Inloophuis Zeist-Noord", "gastvrouw-1")
    woningbouw: Org = org("woningbouw", "Woningbouwvereniging Zeist-Noord", "huismeester-1")
    privacy: Org = org("privacy", "Privacyfunctionaris Gemeente Zeist", "privacy-officer-1")


@dataclass
class Steunpunt(Scene):
    """The Zeist practice as it is played: its cast, the card and the tickets."""

    c: ZeistCast = field(default_factory=ZeistCast)
    network: str = ""
    card_file: Path | None = None
    neighbour_ticket: Path | None = None
    neighbour_signal: str = ""
    driver: SignalTicket | None = None
    lady_case: str = ""

    @property
    def folder(self) -> Path:
        return self.homes / "zeist"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``schakel ARGS`` as a person types it, in a process of its own with no home:
    nothing of the demo's environment (SCHAKEL_*) leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "schakel.cli", *args], env=env, text=True,
                          encoding="utf-8", capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, *args)


async def create_homes(s: Steunpunt) -> None:
    """The organisations create their homes; the neighbour and the driver have none."""
    s.t.section("0. Every organisation creates its own home; the signallers have none")
    await s.stage.create_homes("zeist", s.c.all())
    s.stage.keep_secret("the signals' concerns or the lady's address",
                        NEIGHBOUR_CONCERN[:30], DRIVER_CONCERN[:30], "Vogelweide",
                        str(LADY_INTAKE["summary"])[:30])


async def found(s: Steunpunt) -> None:
    """Act 1: the Steunpunt founds a neighbourhood network: MEE (formal) and the drop-in
    house (informal) in its core, the housing association and the privacy officer in its
    shell (report §4.2.3: MEE represents volunteers in Zeist; §4.5.2: Zeist-Noord)."""
    t, sp = s.t, s.c.steunpunt
    t.section(f"1. {STEUNPUNT}: the Steunpunt founds its network")
    s.network = await sp.p.networks.create(name=STEUNPUNT, kind="neighbourhood",
                                           covenant=COVENANT,
                                           server_fingerprint=s.server_fingerprint)
    s.stage.founded(s.network, STEUNPUNT, COVENANT, coordinator=sp, auditor=s.c.privacy)
    t.note(f"network {s.network}; fingerprint {sp.p.fingerprint}", sp.name)
    for o, ring, party, roles in (
            (s.c.mee, "core", "formal", ()),
            (s.c.inloophuis, "core", "informal", ()),
            (s.c.woningbouw, "shell", "formal", ()),
            (s.c.privacy, "shell", "formal", ("auditor",))):
        await s.join(s.network, sp, o, ring=ring, party=party, roles=roles)


async def card(s: Steunpunt) -> None:
    """Act 2: the Steunpunt publishes the network's card, signed by its key: the intake
    keys, the server and its keys, who may signal.  The card goes on its website; the
    leaflet prints the Steunpunt's fingerprint next to it."""
    t, sp = s.t, s.c.steunpunt
    t.section("2. The network's card: on the website, the fingerprint on the leaflet")
    envelope = await t.holds(
        f"the Steunpunt publishes the card: signals from {', '.join(KINDS)}",
        lambda: sp.p.cards.publish(s.network, signaller_kinds=KINDS,
                                   valid_until=sp.p.session.now() + timedelta(days=365)))
    if envelope is None:
        return
    s.card_file = s.folder / "kaart-steunpunt.json"
    s.card_file.write_text(json.dumps(envelope, indent=2), encoding="utf-8")
    t.note(f"on its website: {s.card_file.name}; on the leaflet: {sp.p.fingerprint}", sp.name)
    fingerprint = str(sp.p.fingerprint)
    from_file = await t.holds("a signaller's client checks the card from the website against "
                              "the fingerprint on the leaflet",
                              lambda: read_card(envelope, fingerprint=fingerprint))
    served = await t.holds("...and the server's copy, which it believes only under that "
                           "fingerprint", lambda: fetch_card(s.stage.server, s.network,
                                                             fingerprint=fingerprint))
    t.check(from_file is not None and served is not None and served[1] == envelope,
            "the server serves the same card, signed by the Steunpunt")
    await t.refused("a card checked against another fingerprint (MEE's)",
                    lambda: read_card(envelope, fingerprint=str(s.c.mee.p.fingerprint)),
                    code="untrusted_key")


async def neighbour_signals(s: Steunpunt) -> None:
    """Act 3: a neighbour, trained in Zeist-Noord to notice (report §4.5.2), signals with
    the command line: no home, no keys, only the card and the leaflet's fingerprint.  Who
    it is about goes in the sealed identity, not in the concern."""
    t = s.t
    t.section("3. A neighbour signals with the command line: `schakel signal send "
              "--anonymous --network-card`")
    if s.card_file is None:
        raise RuntimeError("no card was published")
    fingerprint = str(s.c.steunpunt.p.fingerprint)
    who = s.folder / "buurvrouw.json"
    who.write_text(json.dumps(LADY), encoding="utf-8")
    ticket = s.folder / "buurman-ticket.json"
    before = len(await s.c.steunpunt.p.signals.received(s.network))
    wrong = await run_cli("signal", "send", "--anonymous", "--network-card", str(s.card_file),
                          "--fingerprint", str(s.c.mee.p.fingerprint), "--concern",
                          NEIGHBOUR_CONCERN, "--ticket-file", str(ticket))
    t.check(wrong.returncode == 4 and not ticket.exists(),
            "with a fingerprint that is not the leaflet's it refuses the card (exit 4) and "
            "sends nothing", why=f"exit {wrong.returncode}: {short(wrong.stderr)}")
    sent = await run_cli("signal", "send", "--anonymous", "--network-card", str(s.card_file),
                         "--fingerprint", fingerprint, "--signaller-kind", "neighbour",
                         "--identity-file", str(who), "--concern", NEIGHBOUR_CONCERN,
                         "--ticket-file", str(ticket), "--json")
    answer = _json(sent)
    t.check(sent.returncode == 0 and bool(answer.get("signal")),
            "`schakel signal send --anonymous --network-card kaart-steunpunt.json` sends it "
            "and prints its signal id", why=f"exit {sent.returncode}: {short(sent.stderr)}")
    who.unlink()
    s.neighbour_signal = str(answer.get("signal", ""))
    s.neighbour_ticket = ticket
    mode = stat.S_IMODE(ticket.stat().st_mode) if ticket.exists() else None
    t.check(mode == 0o600, "the ticket (receipt and reply key) is a file only the neighbour "
                           "can read (mode 0600)", why=f"mode {mode and oct(mode)}")
    after = len(await s.c.steunpunt.p.signals.received(s.network))
    t.check(after == before + 1, "the Steunpunt's intake holds one signal more, not two")


async def driver_signals(s: Steunpunt) -> None:
    """Act 4: a volunteer driver of the elderly transport signals with the library
    (:func:`schakel.client.card.anonymous_signal`), the app his transport service gave
    him.  The card asks for residents, neighbours and drivers: a GP's practice, which
    should be a shell partner, is refused before anything is sent."""
    t = s.t
    t.section("4. A volunteer driver signals with the library")
    if s.card_file is None:
        raise RuntimeError("no card was published")
    held = read_card(json.loads(s.card_file.read_text(encoding="utf-8")),
                     fingerprint=str(s.c.steunpunt.p.fingerprint))
    await t.refused("someone signals as a GP's practice, a kind the card does not ask for",
                    lambda: anonymous_signal(held, DRIVER_CONCERN, signaller_kind="gp"),
                    reason="signaller-kind-not-on-card")
    s.driver = await t.holds("the driver signals anonymously, sealed to the Steunpunt; his app "
                             "keeps the receipt",
                             lambda: anonymous_signal(held, DRIVER_CONCERN, urgency="low",
                                                      signaller_kind="volunteer-driver"))


async def intake(s: Steunpunt) -> None:
    """Act 5: the Steunpunt opens both signals: the concerns, the kinds claimed, the
    neighbour's sealed address; never who sent them.  MEE cannot list the signals.  The
    Steunpunt takes up the neighbour's signal as a case; the drop-in house reads its
    anonymous layer, not the address."""
    t, sp = s.t, s.c.steunpunt
    t.section("5. The Steunpunt's intake: two signals, nobody named as their sender")
    signals = await t.holds("the Steunpunt opens its signals", lambda: sp.p.signals.received(
        s.network)) or []
    by_id = {m.signal: m for m in signals}
    neighbour = by_id.get(s.neighbour_signal)
    driver = by_id.get(s.driver.signal) if s.driver is not None else None
    t.check(neighbour is not None and driver is not None
            and neighbour.content.get("concern") == NEIGHBOUR_CONCERN
            and driver.content.get("concern") == DRIVER_CONCERN
            and (neighbour.content.get("signaller_kind"), driver.content.get("signaller_kind"))
            == ("neighbour", "volunteer-driver"),
            "it reads both concerns, from a neighbour and from a volunteer driver (as they say)")
    t.check(neighbour is not None and driver is not None and neighbour.sender is None
            and driver.sender is None,
            "neither signal names a sender: the server and the Steunpunt do not know who sent "
            "them")
    t.check(neighbour is not None and neighbour.content.get("identity") == LADY,
            "the neighbour's signal holds the lady's address, sealed to the Steunpunt alone")
    await t.refused("MEE (core) tries to list the network's signals",
                    lambda: s.c.mee.p.signals.received(s.network), error=ProtocolError)
    s.lady_case = await t.holds(
        "the Steunpunt takes the signal up as a case: anonymous intake, the address sealed",
        lambda: sp.p.cases.create(s.network, LADY_INTAKE, identity=LADY))
    await s.sync(s.network, s.c.inloophuis)
    view = s.readable_case(s.c.inloophuis, s.network, s.lady_case)
    t.check(view is not None and view.state.get("domains") == ["loneliness"]
            and not s.c.inloophuis.p.identity.get(s.network, s.lady_case),
            "the drop-in house (informal, core) reads the case, not where she lives")
    if view is not None:
        t.note(f"reads: {view.state['age_band']}, {view.state['neighbourhood']}, "
               f"\"{short(view.state['summary'], 70)}\"", s.c.inloophuis.name)


async def feedback(s: Steunpunt) -> None:
    """Act 6: the Steunpunt answers both signallers, as the report's coordinator always
    does (§4.5.2: "als ik het nou daar breng, wat gebeurt er dan?"); the neighbour reads
    the answer with the command line and the ticket file, the driver with the library."""
    t, sp = s.t, s.c.steunpunt
    t.section("6. Feedback: each signaller reads the Steunpunt's answer with a receipt")
    await t.holds("the Steunpunt answers the neighbour: taken up, with a message sealed to "
                  "the neighbour's reply key",
                  lambda: sp.p.signals.feedback(s.network, s.neighbour_signal, "taken-up",
                                                THANKS))
    if s.driver is not None:
        await t.holds("...and the driver: referred to MEE",
                      lambda: sp.p.signals.feedback(s.network, s.driver.signal, "referred",
                                                    REFERRED))
    if s.card_file is None or s.neighbour_ticket is None:
        raise RuntimeError("no card or no ticket")
    read = await run_cli("signal", "status", "--ticket-file", str(s.neighbour_ticket),
                         "--network-card", str(s.card_file), "--json")
    status = _json(read)
    t.check(read.returncode == 0 and status.get("status") == "taken-up"
            and status.get("messages") == [THANKS],
            f"`schakel signal status --ticket-file` shows the neighbour \"{status.get('status')}"
            f"\" and the Steunpunt's message", why=f"exit {read.returncode}: "
                                                   f"{short(read.stderr or read.stdout)}")
    if s.driver is not None:
        held = read_card(json.loads(s.card_file.read_text(encoding="utf-8")))
        answer = await t.holds("the driver's app reads the status with its receipt",
                               lambda: anonymous_status(s.driver, held))
        if answer is not None:
            t.check(answer.status == "referred" and answer.messages == [REFERRED],
                    f"he sees \"{answer.status}\": \"{answer.messages[0] if answer.messages else ''}\"")
        guessed = SignalTicket(**{**s.driver.to_file(),
                                  "receipt": _other_receipt(s.driver.receipt)})
        await t.refused("someone with a receipt of their own making asks for the status",
                        lambda: anonymous_status(guessed, held), code="not_found")


def _other_receipt(receipt: str) -> str:
    """``receipt`` with its first character changed: a token nobody was given."""
    return ("B" if receipt[0] != "B" else "C") + receipt[1:]


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        value = json.loads(result.stdout)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def instructions(s: Steunpunt) -> str:
    """Commands to try against the Zeist network the demo left running."""
    return f"""
    # Zeist, {STEUNPUNT}: a neighbour without a home, with the card and the ticket
    schakel signal status --ticket-file {s.neighbour_ticket} --network-card {s.card_file}

    # the Steunpunt: its intake
    export SCHAKEL_HOME={s.c.steunpunt.home}
    schakel signal list {s.network}
"""


def recap(s: Steunpunt) -> list[str]:
    return [f"Zeist: {len(s.c.all())} organisations, 1 network, 2 signals without an account "
            f"(one by the command line, one by the library), both answered"]


#: What the report says of the Steunpunt Eenzaamheid Zeist, narrated.
REPORT = (
    "Zeist has the Steunpunt Eenzaamheid, a neighbourhood network against loneliness "
    "coordinated by a wijkconsulent of the local welfare organisation (report §4.1, "
    "schema 2, annex 1). MEE, with its pool of volunteers, represents informal help in it "
    "(§4.2.3).",
    "Its coordinator tells how in Zeist-Noord the housing association, the drop-in house "
    "and the Steunpunt train neighbours to pick up signals, \"en wij bij mensen kunnen "
    "aanbellen, aanspreken en zo proberen achter de deur te komen\" (§4.5.2).",
    "Volunteers who signal want to hear back: \"als ik het nou daar breng, wat gebeurt er "
    "dan?\"; the report's coordinator always feeds back to the volunteer driver of the "
    "elderly transport (§4.5.2).",
    "Played here: the network's card; a neighbour signals with the command line, a volunteer "
    "driver with the library, neither with an account; the Steunpunt answers both and each "
    "reads the answer back with a receipt.",
)

PRACTICE = Practice(
    name="zeist",
    title=f"Zeist: {STEUNPUNT}",
    report=REPORT,
    scene=Steunpunt,
    acts=(create_homes, found, card, neighbour_signals, driver_signals, intake, feedback),
    instructions=instructions,
    recap=recap,
)


__all__ = ["PRACTICE", "ZeistCast", "Steunpunt", "STEUNPUNT"]
