"""The person's rights in the Amersfoort practice: access through one contact point,
rectification and erasure (AVG art. 15, 16 and 17; Besluit gegevensverwerking door
samenwerkingsverbanden; docs/protocol.md §15.7 and §C.12; ADR 0033, 0034, 0039).

Welzijn Amersfoort coordinates more than one Buurtnetwerk 55+: the report's appendix names
two of its opbouwwerkers as the coordinators of Soesterkwartier and of
Randenbroek/Schuilenburg.  Here that is one organisation with one key, the regie of two
networks, with one session for each opbouwwerker.  The isolated man of the Soesterkwartier
had a case in Randenbroek/Schuilenburg before he moved (invented).

* :func:`second_network` -- the Randenbroek/Schuilenburg opbouwwerker founds that network
  with Welzijn's key and brings in the man's earlier case, closed when he moved;
* :func:`access_request` -- he asks the regie what the networks hold about him; the
  regie's command line (``schakel report access --format html --out``, the BSN typed at the
  hidden prompt) answers for both networks in one page; social work confirms the match
  the regie cannot confirm itself;
* :func:`rectification` -- his house number was taken down wrong; the regie may not
  correct it and passes it on, social work (the owner) does, and the visiting service
  reads the corrected address after its sync;
* :func:`erasure` -- at his request the regie erases his identity in both cases; a
  release under the visiting service's grant is refused, no lookup finds him any more,
  and no file of the server or of any home holds his identity, its ciphertexts or its
  keys.

The acts are functions of :class:`schakel.cli.demo.practice_amersfoort.Soesterkwartier`,
played after that module's own acts.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schakel.cli.demo.stage import PASSPHRASE, Org
from schakel.client.partner import Partner
from schakel.protocol.encoding import b64e

if TYPE_CHECKING:
    from schakel.cli.demo.practice_amersfoort import Soesterkwartier

RANDENBROEK = "Buurtnetwerk 55+ Randenbroek/Schuilenburg"
RANDENBROEK_COVENANT = ("Convenant Buurtnetwerk 55+ Randenbroek/Schuilenburg. Wij bespreken "
                        "casussen anoniem; namen delen wij alleen met toestemming van de "
                        "bewoner.")
#: The opbouwwerker of Stichting Welzijn Amersfoort who coordinates Randenbroek/Schuilenburg.
RANDENBROEK_USER = "opbouwwerker-randenbroek"
#: Where the man lived before he moved to the Soesterkwartier (invented).
FORMER_ADDRESS = {"street": "Kolkakkerweg", "house_number": "7", "postcode": "3815 PE",
                  "city": "Amersfoort"}
FORMER_INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Schuilenburg",
                 "domains": ["loneliness"], "severity": "low", "care_status": "misses-care",
                 "source": "resident", "complex": False,
                 "summary": "Weduwnaar sinds kort, zit veel binnen. Een buurvrouw maakt zich "
                            "zorgen; de opbouwwerker gaat langs."}
#: His house number as it should have been taken down.
CORRECTED_HOUSE_NUMBER = "12A"
BIRTH_DATE = "1946-05-04"


def _man() -> dict[str, Any]:
    from schakel.cli.demo.practice_amersfoort import MAN
    return MAN


async def second_network(s: Soesterkwartier) -> None:
    """Act 6: Welzijn Amersfoort's other opbouwwerker founds the Buurtnetwerk 55+
    Randenbroek/Schuilenburg with the same key (report schema 2, appendix 1), the privacy
    officer joins it as its auditor, and the opbouwwerker brings in the man's case from
    before he moved, then closes it.  A member of the Soesterkwartier network only is
    refused that case by the server."""
    t, w = s.t, s.c.welzijn
    t.section("6. The same regie coordinates a second network, where he lived before")
    man = _man()
    s.stage.keep_secret("his former street or his date of birth",
                        FORMER_ADDRESS["street"], BIRTH_DATE)
    s.stage.keep_secret("the Randenbroek case's text", str(FORMER_INTAKE["summary"])[:30])
    await w.p.close()       # one session per employee: the other opbouwwerker takes over
    w.partner = await Partner.open(w.home, PASSPHRASE, acting_user=RANDENBROEK_USER)
    try:
        t.note(f"opens a session on Welzijn's home as {RANDENBROEK_USER}: one organisation, "
               f"one key, one session per employee", w.name)
        s.rb = await w.p.networks.create(name=RANDENBROEK, kind="neighbourhood",
                                         covenant=RANDENBROEK_COVENANT,
                                         server_fingerprint=s.server_fingerprint)
        s.stage.founded(s.rb, RANDENBROEK, RANDENBROEK_COVENANT, coordinator=w,
                        auditor=s.c.privacy)
        t.note(f"network {s.rb}, founded with the same key as the Soesterkwartier's", w.name)
        await s.join(s.rb, w, s.c.privacy, ring="shell", party="formal", roles=("auditor",))
        coordinated = await t.holds("Welzijn's client lists the networks its key coordinates",
                                    lambda: w.p.access.coordinated())
        t.check(sorted(coordinated or ()) == sorted((s.nb, s.rb)),
                "both Buurtnetwerken: one regie, so one contact point for the person")
        s.former_case = await t.holds(
            "the opbouwwerker brings in the man's case (before he moved; invented): "
            "anonymous intake, his name, former address and BSN sealed",
            lambda: w.p.cases.create(s.rb, FORMER_INTAKE, identity={
                "name": man["name"], "address": FORMER_ADDRESS, "official": man["official"]}))
        await t.holds("...and closes it when he moves to the Soesterkwartier",
                      lambda: w.p.cases.close(s.rb, s.former_case,
                                              reason="Verhuisd naar een andere wijk."))
    finally:
        await w.p.close()
        w.partner = await Partner.open(w.home, PASSPHRASE)
    await t.refused("social work, a member of the Soesterkwartier network only, asks the "
                    "server for that case",
                    lambda: s.c.maatschappelijk_werk.p.session.conn.get(
                        f"/v1/networks/{s.rb}/cases/{s.former_case}"), code="forbidden")


async def access_request(s: Soesterkwartier) -> None:
    """Act 7: the man asks the regie what is held about him (AVG art. 15).  The regie's
    command line searches both networks by blind index and writes one page; it reads
    values only of the case it holds itself, and marks the other as a match to confirm,
    which social work, the owner, confirms.  Each search is in each network's log; the BSN
    never leaves the regie's process."""
    t, w, mw = s.t, s.c.welzijn, s.c.maatschappelijk_werk
    t.section("7. He asks the regie what the networks hold about him: one report for both")
    man = _man()
    bsn = man["official"]["bsn"]
    t.note("comes to the Welzijn desk with his passport: BSN and date of birth", "the man")
    page = w.home / "inzageverslag.html"
    command = ("report", "access", "--birth-date", BIRTH_DATE, "--format", "html",
               "--out", str(page))
    t.note(f"types: schakel {' '.join(command[:-1])} inzageverslag.html, and his BSN at the "
           f"hidden prompt (an option stays in the shell's history)", w.name)
    ran = await asyncio.to_thread(_cli, w, *command, stdin=bsn + "\n")
    if not t.check(ran.returncode == 0 and page.is_file(),
                   "the regie's command line writes one report page",
                   why=f"exit {ran.returncode}: {ran.stderr.strip()[-300:]}"):
        return
    html = page.read_text(encoding="utf-8")
    mode = page.stat().st_mode & 0o777
    t.check(mode & 0o077 == 0 and "Inzageverslag" in html,
            f"{page.name}: an \"Inzageverslag\" readable by the regie's user only "
            f"(mode {mode:o})")
    head, *sections = html.split('<section class="case">')
    here = [x for x in sections if s.man_case in x]
    before = [x for x in sections if s.former_case in x]
    t.check(len(sections) == 2 and len(here) == len(before) == 1
            and all(f.name in head for f in (s.stage.network(s.nb), s.stage.network(s.rb))),
            "it covers both networks the regie coordinates and finds his case in each")
    t.check(bool(before) and "Bevestigd" in before[0] and FORMER_ADDRESS["street"] in before[0],
            "the Randenbroek case, the regie's own, is confirmed and shows his former address")
    t.check(bool(here) and "Nog niet bevestigd" in here[0] and "Soesterweg" not in here[0],
            "the Soesterkwartier case shows only which classes are sealed and is a match "
            "still to confirm: the regie holds no identity of it")
    t.check("******" + bsn[-3:] in head and bsn not in html,
            f"his BSN heads the page as ******{bsn[-3:]}, and is masked so among the values "
            f"the regie holds too: a lost printout carries no full BSN")
    t.check("1 of the 2 cases found" in ran.stderr,
            "the command line says so: 1 of the 2 cases to confirm with its owner")
    held = mw.p.identity.get(s.nb, s.man_case).get("official", {})
    t.check(held.get("bsn") == bsn and held.get("date_of_birth") == BIRTH_DATE,
            "social work, the case's owner, confirms it from the identity it holds itself")
    for network, case in ((s.nb, s.man_case), (s.rb, s.former_case)):
        entries = await t.holds(f"the privacy officer reads the log of "
                                f"{s.stage.network(network).name}",
                                s.c.privacy.p.audit.entries(network))
        lookups = [e["entry"] for e in entries or ()
                   if e["entry"].get("action") == "lookup"]
        t.check(any(e.get("cases") == [case] and e["actor"]["partner"] == w.p.key_id
                    for e in lookups),
                "...the search itself is there, by the regie, naming the case it found")
    server = _server_files(s)
    t.check(bool(server) and not _found(server, [bsn.encode()]),
            f"no file of the server's data ({len(server)} files) holds his BSN: only "
            f"search tokens were sent")
    page.unlink()
    t.check(not page.exists(), "the regie prints the page for him and deletes the file: "
                               "the copy is his")


async def rectification(s: Soesterkwartier) -> None:
    """Act 8: his house number was taken down wrong (AVG art. 16).  The regie may not
    correct identity it does not hold and passes the request on; social work, the owner,
    seals the corrected address as the next identity version and tells every holder to
    destroy the old one.  The visiting service holds nothing of the old version after its
    sync, and reads the corrected address when it releases again under the same grant."""
    t, w, mw, church = s.t, s.c.welzijn, s.c.maatschappelijk_werk, s.c.bezoekwerk
    t.section("8. His house number was taken down wrong: the owner corrects it")
    man = _man()
    fixed = {**man["address"], "house_number": CORRECTED_HOUSE_NUMBER}
    t.note(f"the volunteer rang at number {man['address']['house_number']}; he lives at "
           f"{CORRECTED_HOUSE_NUMBER}", "the man")
    reason = "Verzoek betrokkene via de regie, AVG art. 16: huisnummer onjuist."
    await t.refused("the regie corrects it itself",
                    lambda: w.p.erasure.rectify(s.nb, s.man_case, {"address": fixed},
                                                reason=reason),
                    reason="not-case-owner")
    done = await t.holds("social work, the owner, seals the corrected address as identity "
                         "version 2 and signs a purge of version 1",
                         lambda: mw.p.erasure.rectify(s.nb, s.man_case, {"address": fixed},
                                                      reason=reason))
    t.check(done is not None and (done.kind, done.identity_version) == ("rectification", 1),
            f"rectification accepted: audit entry {getattr(done, 'audit_index', '?')}")
    await s.sync(s.nb, church)
    t.check(church.p.identity.get(s.nb, s.man_case) == {},
            "the visiting service syncs: it destroyed the name and address of version 1 as "
            "the signed purge told it")
    released = await t.holds("it releases again under the same grant (audit entry first)",
                             lambda: church.p.disclosure.release(s.nb, s.church_grant))
    if released is not None:
        s.releases.append("consent")
        address = released.classes.get("address", {})
        t.check(address == fixed and released.classes.get("name") == man["name"],
                f"it now reads: {address.get('street')} {address.get('house_number')}")


async def erasure(s: Soesterkwartier) -> None:
    """Act 9: he asks the regie to erase what the networks hold about him (AVG art. 17).
    The regie erases his identity in both cases: the Soesterkwartier one as its
    coordinator, the Randenbroek one as its owner.  Every holder destroys it when it
    syncs; a release under the visiting service's grant is refused and audited; a new
    search finds nothing; the anonymous layer stays.  Every file of the server's data and
    of every home is then searched for his identity, its ciphertexts and its keys."""
    t, w, church = s.t, s.c.welzijn, s.c.bezoekwerk
    t.section("9. He asks the regie to erase what the networks hold about him")
    man = _man()
    t.note("moves in with his daughter in another town and asks the same desk to erase "
           "his data", "the man")
    cases = ((s.nb, s.man_case), (s.rb, s.former_case))
    holders = (w, s.c.maatschappelijk_werk, church)
    needles = _identity_bytes(s, cases, holders)
    server, homes = _server_files(s), _home_files(s)
    t.check(bool(_found(server, needles)) and bool(_found(homes, needles)),
            f"before: a search of every file finds his identity's {len(needles)} "
            f"ciphertexts, keys and encrypted rows (on the server and in "
            f"{len({p.parent for p in homes if _found([p], needles)})} homes)")
    reason = "Verzoek betrokkene via de regie, AVG art. 17."
    for (network, case), whose in zip(cases, ("as its coordinator; social work owns it",
                                              "as its owner")):
        done = await t.holds(f"the regie erases his identity in "
                             f"{s.stage.network(network).name} ({whose})",
                             w.p.erasure.erase(network, case, reason=reason))
        t.check(done is not None and done.kind == "erasure",
                f"erasure accepted: audit entry {getattr(done, 'audit_index', '?')}")
    await s.sync(s.nb, *s.c.all())
    await s.sync(s.rb, s.c.privacy)
    t.check(all(o.p.identity.get(n, c) == {} for o in holders for n, c in cases),
            "every holder syncs and destroys it: social work, the visiting service, the regie")
    refusal = await t.refused("the visiting service releases again under its grant",
                              lambda: church.p.disclosure.release(s.nb, s.church_grant),
                              reason="identity-erased")
    index = (getattr(refusal, "details", None) or {}).get("audit_index")
    entries = await t.holds("the privacy officer reads the log",
                            lambda: s.c.privacy.p.audit.entries(s.nb))
    log = [e["entry"] for e in entries or ()]
    t.check(any(e.get("action") == "erasure" and e.get("case") == s.man_case
                and e["actor"]["role"] == "coordinator" for e in log)
            and any(e.get("action") == "deny" and e.get("reason") == "identity-erased"
                    and e.get("case") == s.man_case for e in log),
            f"the erasure (by the regie, as coordinator) and the refused release"
            f"{f' (entry {index})' if index is not None else ''} are in it")
    report = await t.holds("the regie searches for him again by BSN",
                           lambda: w.p.access.report(bsn=man["official"]["bsn"],
                                                     birth_date=BIRTH_DATE))
    t.check(report is not None and report["cases"] == [] and len(report["networks"]) == 2,
            "no case is found in either network: his blind-index tokens went with the "
            "erasure")
    view = s.readable_case(church, s.nb, s.man_case)
    t.check(view is not None and view.state.get("age_band") == "75-84",
            "the anonymous layer stays for the network's figures until retention (ADR 0034)")
    plain = [str(v).encode() for v in (
        *man["name"].values(), man["address"]["street"], man["address"]["postcode"],
        *man["official"].values(), FORMER_ADDRESS["street"], FORMER_ADDRESS["postcode"])]
    server, homes = _server_files(s), _home_files(s)
    left = _found(server + homes, [*plain, *needles])
    t.check(not left, f"after: no file of the server's data ({len(server)}) or of the "
                      f"{len(s.stage.orgs)} homes ({len(homes)} files) holds his name, "
                      f"addresses, BSN or date of birth, nor any ciphertext, key or "
                      f"encrypted row of them", why=f"found {left[:4]}")


# --------------------------------------------------------------------------- helpers


def _cli(o: Org, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """``schakel ARGS --home HOME`` in a process of its own, as the organisation's employee
    types it: the passphrase from ``SCHAKEL_PASSPHRASE``, ``stdin`` at the prompt.  A new
    session, so that a hidden prompt reads standard input rather than the terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env.update(PYTHONIOENCODING="utf-8", SCHAKEL_PASSPHRASE=PASSPHRASE)
    return subprocess.run([sys.executable, "-m", "schakel.cli", *args, "--home", str(o.home)],
                          env=env, text=True, encoding="utf-8", input=stdin,
                          capture_output=True, timeout=120, start_new_session=True)


def _server_files(s: Soesterkwartier) -> list[Path]:
    return sorted(p for p in s.stage.server_data.rglob("*") if p.is_file())


def _home_files(s: Soesterkwartier) -> list[Path]:
    return sorted(p for o in s.stage.orgs for p in o.home.rglob("*") if p.is_file())


def _found(files: Iterable[Path], needles: Iterable[bytes]) -> list[str]:
    """``file: needle`` for every needle found in one of ``files`` (none: empty)."""
    wanted = [n for n in needles if n]
    out = []
    for path in files:
        data = path.read_bytes()
        out += [f"{path.parent.name}/{path.name}: {n[:12]!r}" for n in wanted if n in data]
    return out


def _identity_bytes(s: Soesterkwartier, cases: Iterable[tuple[str, str]],
                    holders: Iterable[Org]) -> list[bytes]:
    """What would still open or betray the identity of ``cases``: the identity records'
    ciphertexts and the gated envelopes in the server's database, the class keys the
    ``holders`` hold (raw and base64url), and the encrypted rows of their class keys and
    identity plaintext in their ``state.db``."""
    out: list[bytes] = []
    for network, case in cases:
        out += [str(r[0]).encode() for r in _rows(
            s.stage.server_data / "schakel.db",
            "SELECT envelope FROM identity WHERE network = ? AND [case] = ?", network, case)]
        out += [str(r[0]).encode() for r in _rows(
            s.stage.server_data / "schakel.db",
            "SELECT blob FROM gated WHERE network = ? AND [case] = ?", network, case)]
        for o in holders:
            state = o.p.session.state
            for ref in state.secret_refs("class-key", (network, case)):
                key = state.get_secret("class-key", ref) or b""
                out += [key, b64e(key).encode()] if key else []
            out += [bytes(r[0]) for r in _rows(
                state.path, "SELECT value FROM secrets WHERE kind IN ('class-key', 'identity')"
                " AND ref LIKE ?", f"{network}\x1f{case}\x1f%")]
    return [n for n in out if len(n) >= 16]


def _rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a database read-only, as a forensic search would read the file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(sql, args)]
    finally:
        db.close()


ACTS = (second_network, access_request, rectification, erasure)

__all__ = ["ACTS", "RANDENBROEK", "second_network", "access_request", "rectification",
           "erasure"]
