"""``Partner``: one organisation's client of a Schakel network (ADR 0007; design §4),
composed of services (ADR 0019).

A partner knows only its own keys (the keystore in its home directory), the trust
anchors it configured (``client.json``) and what it verified (``state.db``).  Those, its
connection and its clock form one :class:`~schakel.client.session.Session`, which every
service gets in its constructor together with the services it builds on:

* ``partner.networks`` -- onboarding, the covenant, admitting and removing members,
  the verified member list (:class:`~schakel.client.networks.Networks`);
* ``partner.cases`` -- cases and consults, events, status, shares; reading the cases
  this partner verified (:class:`~schakel.client.cases.Cases`);
* ``partner.signals`` -- signals from outside the core and the coordinator's feedback
  (:class:`~schakel.client.signals.Signals`);
* ``partner.cards`` -- the coordinator's public network card, which lets people without
  keys signal (:class:`~schakel.client.card.Cards`);
* ``partner.disclosure`` -- consent, grants, releases, bemoeizorg and reviews
  (:class:`~schakel.client.disclosure.Disclosure`);
* ``partner.identity`` -- the identity this partner holds, and its rotation
  (:class:`~schakel.client.identity.Identity`);
* ``partner.erasure`` -- the person's erasure and rectification of a case's identity
  (:class:`~schakel.client.erasure.Erasure`);
* ``partner.referrals`` -- referral of a case to another network
  (:class:`~schakel.client.referral.Referrals`);
* ``partner.audit`` -- the verified audit logs (:class:`~schakel.client.audit.Audit`);
* ``partner.reports`` -- subject access reports and aggregate figures
  (:class:`~schakel.client.reports.Reports`);
* ``partner.access`` -- a person's access request answered over every network this
  partner coordinates, found by blind index (:class:`~schakel.client.access.Access`).

:meth:`Partner.sync` verifies and stores what is new and then runs :meth:`Partner.duties`:
the work this partner owes the network, each part done by the service that owns it.
"""

from __future__ import annotations

import os
from typing import Any

from schakel.keys import KdfParams, KeystoreKey, PartnerKeys, load_keystore, save_keystore
from schakel.protocol.errors import UntrustedKeyError

from schakel.client.access import Access
from schakel.client.audit import Audit
from schakel.client.card import Cards
from schakel.client.casekeys import CaseKeys
from schakel.client.coordinator import rotate_coordinator
from schakel.client.cases import Cases
from schakel.client.disclosure import Disclosure
from schakel.client.erasure import Erasure
from schakel.client.errors import ServerRefused
from schakel.client.feed import Feed
from schakel.client.home import ClientConfig, Home
from schakel.client.identity import Identity
from schakel.client.networks import Networks
from schakel.client.progress import ProgressCallback
from schakel.client.purge import Purges
from schakel.client.referral import Referrals
from schakel.client.reports import Reports
from schakel.client.session import Clock, Session, utc_now
from schakel.client.signals import Signals
from schakel.client.state import LocalState
from schakel.client.transport import Connection, origin_of
from schakel.client.trust import TrustView
from schakel.client.views import DutyReport, SyncResult


class Partner:
    """One partner's client (module docstring).  Make one with :meth:`create` or
    :meth:`open`; close it with :meth:`close` (or ``async with``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.audit = Audit(session)
        self._feed = Feed(session, audit=self.audit)
        self._case_keys = CaseKeys(session, self._feed)
        self._purges = Purges(session)
        self.identity = Identity(session, self._feed)
        self.erasure = Erasure(session, self._feed, self.identity)
        self.cases = Cases(session, self._feed, self.identity, self._case_keys)
        self.networks = Networks(session, self._case_keys)
        self.signals = Signals(session)
        self.cards = Cards(session)
        self.disclosure = Disclosure(session, self.audit)
        self.referrals = Referrals(session, self.cases, self.audit)
        self.reports = Reports(session, self.cases, self.audit)
        self.access = Access(session, self._feed, self.audit)

    # ------------------------------------------------------------------ opening

    @classmethod
    async def create(cls, home: str | os.PathLike[str], passphrase: str, *, name: str,
                     server: str, acting_user: str,
                     kdf: KdfParams = KdfParams.INTERACTIVE,
                     clock: Clock = utc_now, sync_worker: bool = True) -> Partner:
        """A new partner: fresh keys in ``home/keystore.json``, ``client.json`` and an
        empty ``state.db`` sealed to the new box key."""
        h = Home(home)
        server = origin_of(server)
        h.prepare()
        keys = PartnerKeys.generate()
        save_keystore(h.keystore, keys, passphrase, name=name, kdf=kdf)
        config = ClientConfig(name=name, key_id=keys.key_id, server=server,
                              acting_user=acting_user)
        h.write_config(config)
        state = LocalState.open(h.state_file, keys.box_secret, create=True)
        return cls(Session(home=h, keys=keys, config=config, state=state,
                           conn=Connection(server, keys, acting_user),
                           acting_user=acting_user, clock=clock, sync_worker=sync_worker))

    @classmethod
    async def open(cls, home: str | os.PathLike[str], passphrase: str | KeystoreKey, *,
                   server: str | None = None, acting_user: str | None = None,
                   clock: Clock = utc_now, sync_worker: bool = True) -> Partner:
        """Unlock ``home`` (KeystoreError on a wrong passphrase) with its passphrase, or
        with the :class:`~schakel.keys.KeystoreKey` a key agent kept from an earlier
        unlock, which skips the slow Argon2id step (ADR 0023).  ``server`` overrides
        the configured URL for this session; ``acting_user`` the configured employee
        (NEN 7513 wants the person who acts: a partner's system that serves several
        employees opens one session per person).  ``sync_worker``: check the signatures
        of a long feed in a worker process while the client stores it (False: all in
        this process)."""
        h = Home(home)
        config = h.read_config()
        keys = load_keystore(h.keystore, passphrase)
        if keys.key_id != config.key_id:
            raise UntrustedKeyError(f"{h.config_file} belongs to another keystore")
        state = LocalState.open(h.state_file, keys.box_secret)
        url = origin_of(server) if server else config.server
        person = acting_user or config.acting_user    # for this session; not written back
        return cls(Session(home=h, keys=keys, config=config, state=state,
                           conn=Connection(url, keys, person), acting_user=person,
                           clock=clock, sync_worker=sync_worker))

    async def close(self) -> None:
        await self.session.conn.close()
        await self.session.page_checker.close()
        self.session.state.close()

    async def __aenter__(self) -> Partner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ who this partner is

    @property
    def key_id(self) -> str:
        return self.session.key_id

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def acting_user(self) -> str:
        """The employee this session acts for (signed into every request)."""
        return self.session.acting_user

    @property
    def server(self) -> str:
        return self.session.conn.origin

    @property
    def fingerprint(self) -> str:
        """This partner's fingerprint (40 digits in groups of five), read aloud at the
        covenant ceremony."""
        return str(self.session.fingerprint)

    def bundle(self) -> dict[str, Any]:
        """The self-signed key bundle to hand the coordinator."""
        return self.session.bundle()

    def trust(self, network: str, coordinator_fingerprint: str) -> None:
        """Configure ``network``'s trust anchor (the coordinator's fingerprint, read
        aloud).  Changing an anchor already set is refused: it is the one thing that
        makes every other check mean something."""
        self.session.set_anchor(network, coordinator_fingerprint)

    async def rotate_coordinator_key(self, network: str, *, reason: str,
                                     passphrase: str | bytes) -> dict[str, Any]:
        """Rotate this home's key, the current coordinator key of ``network``, after a
        suspected compromise (:mod:`schakel.client.coordinator`, ADR 0046): the
        ``key-rotation`` put on the server, the home moved to the new keys (the old
        keystore kept as ``<keystore>.retired-<key id>``), the coordinator's membership
        reissued under the new key and the old one revoked, a new epoch for the core.
        ``passphrase`` encrypts the new keystore."""
        return await rotate_coordinator(self.session, self._case_keys, network, reason=reason,
                                        passphrase=passphrase)

    def misbehaviours(self) -> list[dict[str, Any]]:
        """The server misbehaviour this partner recorded, oldest first (the evidence
        outlives the process that raised it)."""
        return self.session.state.misbehaviours()

    # ------------------------------------------------------------------ sync and duties

    async def sync(self, network: str, *, wait: float = 0,
                   progress: ProgressCallback | None = None) -> SyncResult:
        """Fetch and verify the genesis, members, epoch keys (core) and the feed; store
        and fold; then run :meth:`duties`.  ``wait`` (0..30 s) long-polls when nothing is
        new.  ``progress`` is given a :class:`~schakel.client.progress.SyncProgress`
        after each page of the feed (items so far, the rate, the items and time left; the
        last one ``done``); a coroutine function is awaited before the next page.  It
        must not call this partner: the sync is still under way."""
        tv = await self.session.trusted(network)
        # The audit log's latest head comes with the network: every sync checks that the
        # log only grew since this partner last looked (docs/protocol.md §16.5).
        await self.audit.monitor(network).observe(tv.tree_head)
        result = await self._feed.pull(network, tv, wait=wait, progress=progress)
        result.duties = await self._duties(network, tv)
        return result

    async def duties(self, network: str) -> DutyReport:
        """What this partner owes the network (also run at the end of :meth:`sync`):
        rotate the identity of its own open cases whose recipients lost a basis (ADR
        0011) and backfill gated envelopes of its own cases for members who joined later;
        as the coordinator, rotate open cases still under an older epoch and re-share
        current versions with shell partners; then the purge duties (purge instructions,
        bemoeizorg expiry).

        A partner the network removed (the server refuses it ``untrusted_key``) still
        owes one duty: it executes and acknowledges its purge instructions, with its old
        key and the genesis it verified before (``report.removed``; protocol.md §N.5)."""
        try:
            tv = await self.session.trusted(network)
        except ServerRefused as exc:
            if (exc.status, exc.code) != (403, "untrusted_key"):
                raise
            report = DutyReport(network=network, removed=True)
            await self._purges.run(network, report, tv=self.session.local_trust(network))
            return report
        await self._feed.pull(network, tv)
        return await self._duties(network, tv)

    async def _duties(self, network: str, tv: TrustView) -> DutyReport:
        report = DutyReport(network=network)
        await self.identity.rotation_duty(network, tv, report)
        await self.identity.backfill_duty(network, tv, report)
        await self._case_keys.rekey_duty(network, tv, report)
        await self._purges.run(network, report)
        return report


__all__ = ["Partner"]
