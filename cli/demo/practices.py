"""The practices ``schakel demo`` can play: one line each, in the order it plays them.

A practice is one module, ``cli/demo/practice_<name>.py``, whose ``PRACTICE`` is a
:class:`schakel.cli.demo.stage.Practice`: the report's description of that practice
(narrated when it opens), a :class:`~schakel.cli.demo.stage.Scene` with its own cast and
networks, its acts (each narrating and checking through the
:class:`~schakel.cli.demo.tally.Tally`), and the lines ``--serve`` and the summary print
for it.  To add one, write that module (``practice_amersfoort.py`` is the model: homes,
founding, acts, ``instructions``, ``recap``, ``REPORT``, ``PRACTICE``) and add its entry
(module and a one-line summary for ``--help``) to :data:`REGISTRY`; ``schakel demo --practice NAME`` offers it, ``schakel demo`` plays it
with the others, and the oversight acts verify its networks' audit logs and search the
server's database for the texts it registered with ``Stage.keep_secret``.

The registry names modules rather than importing them, so that ``schakel demo --help``
stays as light as the rest of the command line (tests/test_cli_help.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from schakel.cli.demo.stage import Practice

class Entry(NamedTuple):
    """A registered practice: the module that plays it, and the line ``schakel demo
    --help`` shows for it."""

    module: str
    summary: str


#: ``--practice`` name -> the module that plays it, in the order of the report's schema 2
#: read row by row (Amersfoort, Utrecht, Rotterdam, Zeist, Almere, Breda).
REGISTRY: dict[str, Entry] = {
    "amersfoort": Entry("schakel.cli.demo.practice_amersfoort",
                        "Buurtnetwerk 55+ Soesterkwartier: a consult, a volunteer driver's "
                        "signal and the feedback he reads back, an isolated man's name and "
                        "address to a church visiting service with his consent, his BSN "
                        "refused; then his access request answered once for the two networks "
                        "of one regie, his address corrected and his identity erased."),
    "utrecht": Entry("schakel.cli.demo.practice_utrecht",
                     "Signaleringsnetwerk Sociaal Kwetsbaren Hoograven/Lunetten: the "
                     "Vrijwilligerscentrale in the core on behalf of volunteer organisations; "
                     "a man's name to it with his consent; every entry of its acts says on "
                     "whose behalf."),
    "rotterdam": Entry("schakel.cli.demo.practice_rotterdam",
                       "Lokaal Zorgnetwerk Woningvervuiling: bemoeizorg with four eyes and "
                       "the auditor's review; domestic violence, the meldcode's grounds put "
                       "in force as a new policy version, a referral to Veilig Thuis (shell); "
                       "aftercare in a neighbourhood network."),
    "zeist": Entry("schakel.cli.demo.practice_zeist",
                   "Steunpunt Eenzaamheid Zeist: a neighbour (with the command line) and a "
                   "volunteer driver (with the library) signal without keys, with the "
                   "network's card; the Steunpunt answers and each reads it back."),
    "almere": Entry("schakel.cli.demo.practice_almere",
                    "Integraal Netwerk Stedenwijk: korte lijnen, a case for the coordinator "
                    "and one partner only, invisible to the rest of the kern; widened by its "
                    "owner with an audited reason; rekeyed without a partner that left."),
    "breda": Entry("schakel.cli.demo.practice_breda",
                   "Stichting WIJ Breda: one member with formal and informal users; the "
                   "volunteer's session is refused a BSN its professional receives, an "
                   "unlisted user is refused; the access report names each user's party."),
}


def load(names: Iterable[str] = ()) -> list["Practice"]:
    """The practices named (every registered one when none is), in the registry's order."""
    wanted = set(names) or set(REGISTRY)
    unknown = wanted - set(REGISTRY)
    if unknown:
        raise KeyError(f"no practice {sorted(unknown)}; registered: {list(REGISTRY)}")
    loaded = []
    for name, entry in REGISTRY.items():
        if name in wanted:
            module = entry.module
            practice = importlib.import_module(module).PRACTICE
            if practice.name != name:
                raise ValueError(f"{module} plays {practice.name!r}, registered as {name!r}")
            loaded.append(practice)
    return loaded


__all__ = ["Entry", "REGISTRY", "load"]
