"""Who plays in the demo: the two networks, their organisations, and the invented people
and texts their cases are about.

The networks come from the report (../shared/seed, §4.1, schema 2): "Buurtnetwerk 55+
Soesterkwartier" (Amersfoort: an open core with volunteers, where consent is decisive)
and "Lokaal Zorgnetwerk Woningvervuiling" (after Rotterdam's oggz network: a closed,
professional core and the bemoeizorg exception), played here in one city so that a case
can be referred from one to the other.  Every person, address and phone number is
invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from schakel.client.partner import Partner

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


__all__ = ["NEIGHBOURHOOD", "OGGZ", "COVENANTS", "MAN", "MAN_INTAKE", "TENANT", "TENANT_INTAKE",
           "CONSULT_INTAKE", "DRAFT_SUMMARY", "DRIVER_CONCERN", "JUSTIFICATION", "Org", "Cast"]
