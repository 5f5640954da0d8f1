"""``Partner``: one organisation's client of a Schakel network (ADR 0007; design §4).

A partner knows only its own keys (the keystore in its home directory), the trust
anchors it configured (``client.json``) and what it verified (``state.db``).  Every
operation here is what ``tests/server_harness.py`` builds for the whole network at once,
lifted into the per-partner form:

* onboarding -- :meth:`create_network`, :meth:`admit`, :meth:`remove`,
  :meth:`accept_covenant`; joins and removals of core members change the epoch and
  rotate every open case (case-rekey, ADR 0007), so a removed member cannot read what
  is written after its removal;
* case work -- :meth:`create_case`, :meth:`consult`, :meth:`add_event`,
  :meth:`close_case`, :meth:`reopen_case`, :meth:`share`, :meth:`reshare_history`;
  the PII guard runs on every anonymous plaintext *before* anything is sent;
* reading -- :meth:`sync` (verify, store, fold, then :meth:`duties`), :meth:`cases`,
  :meth:`case`, :meth:`members`, :meth:`misbehaviours`;
* the flows of the other mixins (signals, disclosure, identity, referrals, reports) use
  the hooks at the bottom of this class (``_trusted``, ``_header``, ``_case_key``,
  ``_audit``, ``_misbehaving``, ``_refuse_pii``, ``_now``; identity also ``_pull`` and
  ``_verifier``).

Verification lives in :mod:`schakel.client.trust` (who is who) and :mod:`schakel.client.fold` (what
they wrote); this module decides what to build and when.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from schakel.keys import (
    KdfParams, PartnerKeys, issue_membership, load_keystore, make_genesis, make_key_bundle,
    new_network_id, revoke_membership, save_keystore, verify_key_bundle,
)
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol import envelopes, pii
from schakel.protocol.crypto import BoxPublicKey, CaseKey, EpochKey, MatchKey, VerifyKey
from schakel.protocol.crypto import random_bytes
from schakel.protocol.canonical import canonical_json
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, PolicyViolation, ProtocolError, UntrustedKeyError,
)
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import CaseHeader, CaseRekey, Event
from schakel.protocol.objects.disclosure import Share
from schakel.protocol.objects.network import (
    CovenantAcceptance, EpochKeyDistribution, EpochKeyPayload, default_policy,
)
from schakel.protocol.objects.plaintext import Action, Intake, identity_plaintext_for, parse_anonymous_event

from schakel.client.audit import AuditMonitor
from schakel.client.disclosure import DisclosureOps, rules_of
from schakel.client.errors import NotFound, ServerMisbehaviour, ServerRefused
from schakel.client.fold import (
    Verifier, case_key, case_view, epoch_keys, judge_action, latest_epoch, names,
    network_rules, store_epoch, summary, versions,
)
from schakel.client.home import ClientConfig, Home
from schakel.client.identity import GATED_PER_REQUEST, IdentityOps
from schakel.client.referral import ReferralOps
from schakel.client.reports import ReportOps
from schakel.client.signals import SignalOps
from schakel.client.state import LocalState
from schakel.client.transport import Connection, origin_of
from schakel.client.trust import MemberInfo, TrustView, load_trust, local_view
from schakel.client.views import CaseView, DutyReport, SyncResult

#: Feed page size (the server's maximum).
PAGE = 500
#: A membership starts this much before "now", so a server clock a little behind ours
#: still finds it valid (the harness does the same).
VALID_FROM_SLACK = timedelta(minutes=5)
#: Tries of a write that a concurrent write can overtake (409: re-read, rebuild).
CONFLICT_TRIES = 3


def new_id() -> str:
    """A fresh object id: 16 random bytes, base64url."""
    return b64e(random_bytes(16))


class Partner(SignalOps, DisclosureOps, IdentityOps, ReferralOps, ReportOps):
    """One partner's client (module docstring).  Make one with :meth:`create` or
    :meth:`open`; close it with :meth:`close` (or ``async with``)."""

    def __init__(self, home: Home, keys: PartnerKeys, config: ClientConfig, state: LocalState,
                 conn: Connection) -> None:
        self.home, self.keys, self.config, self.state, self.conn = home, keys, config, state, conn
        self.key_id: str = keys.key_id
        self.name: str = config.name
        self.acting_user: str = config.acting_user
        self._monitors: dict[str, AuditMonitor] = {}

    # =================================================================== opening

    @classmethod
    async def create(cls, home: str | os.PathLike[str], passphrase: str, *, name: str,
                     server: str, acting_user: str,
                     kdf: KdfParams = KdfParams.INTERACTIVE) -> "Partner":
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
        return cls(h, keys, config, state, Connection(server, keys, acting_user))

    @classmethod
    async def open(cls, home: str | os.PathLike[str], passphrase: str, *,
                   server: str | None = None, acting_user: str | None = None) -> "Partner":
        """Unlock ``home`` (KeystoreError on a wrong passphrase).  ``server`` overrides
        the configured URL for this session; ``acting_user`` the configured employee
        (NEN 7513 wants the person who acts: a partner's system that serves several
        employees opens one session per person)."""
        h = Home(home)
        config = h.read_config()
        keys = load_keystore(h.keystore, passphrase)
        if keys.key_id != config.key_id:
            raise UntrustedKeyError(f"{h.config_file} belongs to another keystore")
        state = LocalState.open(h.state_file, keys.box_secret)
        url = origin_of(server) if server else config.server
        person = acting_user or config.acting_user    # for this session; not written back
        partner = cls(h, keys, config, state, Connection(url, keys, person))
        partner.acting_user = person
        return partner

    async def close(self) -> None:
        await self.conn.close()
        self.state.close()

    async def __aenter__(self) -> "Partner":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # =================================================================== identity

    @property
    def fingerprint(self) -> str:
        """This partner's fingerprint (40 digits in groups of five), read aloud at the
        covenant ceremony."""
        return str(Fingerprint.of(self.keys.public.sign))

    @property
    def server(self) -> str:
        return self.conn.origin

    def bundle(self) -> dict[str, Any]:
        """The self-signed key bundle to hand the coordinator."""
        return make_key_bundle(self.keys, name=self.name, created=self._now())

    def trust(self, network: str, coordinator_fingerprint: str) -> None:
        """Configure ``network``'s trust anchor (the coordinator's fingerprint, read
        aloud).  Changing an anchor already set is refused: it is the one thing that
        makes every other check mean something."""
        fp = Fingerprint.parse(coordinator_fingerprint)
        held = self.config.trusted.get(network)
        if held is not None:
            if Fingerprint.parse(held) == fp:
                return
            raise UntrustedKeyError(f"network {network} is already trusted with another "
                                    f"coordinator fingerprint; refusing to replace the anchor",
                                    details={"network": network})
        self.config.trusted[network] = fp.digits
        self.home.write_config(self.config)

    def networks(self) -> list[str]:
        return sorted(self.config.trusted)

    def _anchor(self, network: str) -> str:
        anchor = self.config.trusted.get(network)
        if anchor is None:
            raise UntrustedKeyError(f"network {network} is not trusted: configure the "
                                    f"coordinator's fingerprint first (trust)",
                                    details={"network": network})
        return anchor

    # =================================================================== hooks

    def _now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def _stamp(self) -> str:
        return format_timestamp(self._now())

    def _path(self, network: str, suffix: str = "") -> str:
        return f"/v1/networks/{network}{suffix}"

    async def _trusted(self, network: str) -> TrustView:
        """The network as verified now from the server's answers (trust.py)."""
        return await load_trust(network=network, anchor=self._anchor(network),
                                get=self.conn.get, state=self.state, now=self._now(),
                                misbehaving=self._misbehaving)

    def _local_trust(self, network: str) -> TrustView:
        view = local_view(network=network, anchor=self._anchor(network), state=self.state,
                          now=self._now(), misbehaving=self._misbehaving)
        if view is None:
            raise NotFound(f"network {network} was never synced", details={"network": network})
        return view

    def _misbehaving(self, network: str, what: str, message: str,
                     **details: Any) -> ServerMisbehaviour:
        """Record the misbehaviour in the local state and return it for raising."""
        error = ServerMisbehaviour(what, message, details=details)
        self.state.record_misbehaviour(network, what, message, _jsonable(details))
        return error

    def pii_allow(self, network: str) -> tuple[str, ...]:
        """The allow-list of the network policy this partner verified (protocol.md §N.2),
        read without a request: ``()`` before the network's first sync."""
        anchor = self.config.trusted.get(network)
        view = None if anchor is None else local_view(
            network=network, anchor=anchor, state=self.state, now=self._now(),
            misbehaving=self._misbehaving)
        return view.pii_allow if view is not None else ()

    def _refuse_pii(self, network: str, obj: Any) -> None:
        """The PII guard (schakel.protocol.pii) on a text bound for ``network``, with the network
        policy's allow-list: identifying data is refused here, before any request is
        built (protocol.md §16.7)."""
        pii.check_anonymous(obj, allow=self.pii_allow(network))

    def _header(self, network: str, case: str) -> CaseHeader:
        env = self.state.get_doc("header", (network, case))
        if env is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        return CaseHeader.from_json(env["signed"])

    def _case_key(self, network: str, case: str, version: int | None = None) -> CaseKey:
        if version is None:
            info = summary(self.state, network, case)
            if info is None:
                raise NotFound(f"case {case} is not known to this partner",
                               details={"case": case})
            version = int(info["version"])
        key = case_key(self.state, network, case, version)
        if key is None:
            raise ProtocolError(f"this partner does not hold case-key version {version} of "
                                f"case {case}", details={"case": case, "version": version})
        return key

    def _audit(self, network: str) -> AuditMonitor:
        monitor = self._monitors.get(network)
        if monitor is None:
            monitor = AuditMonitor(network=network, me=self.key_id, conn=self.conn,
                                   state=self.state,
                                   trusted=lambda: self._trusted(network),
                                   misbehaving=self._misbehaving)
            self._monitors[network] = monitor
        return monitor

    def _is_core(self, tv: TrustView) -> bool:
        me = tv.member(self.key_id)
        return (me is not None and me.current and me.ring == "core") or \
            tv.coordinator_key_id == self.key_id

    def _verifier(self, network: str, tv: TrustView) -> Verifier:
        async def fetch_case(case: str) -> Any:
            return await self.conn.get(self._path(network, f"/cases/{case}"))

        async def fetch_epochs() -> list[int]:
            answer = await self.conn.get(self._path(network, "/epochs/mine"))
            return verifier.open_epochs(answer.get("entries") if isinstance(answer, dict)
                                        else None)

        verifier = Verifier(network=network, tv=tv, state=self.state, me=self.key_id,
                            box=self.keys.box_secret, misbehaving=self._misbehaving,
                            fetch_case=fetch_case, fetch_epochs=fetch_epochs)
        return verifier

    # =================================================================== sync and reading

    async def sync(self, network: str, *, wait: float = 0,
                   progress: Callable[[int], Any] | None = None) -> SyncResult:
        """Fetch and verify the genesis, members, epoch keys (core) and the feed; store
        and fold; then run :meth:`duties`.  ``wait`` (0..30 s) long-polls when nothing is
        new; ``progress(items so far)`` is called after each page."""
        tv = await self._trusted(network)
        # The audit log's latest head comes with the network: every sync checks that the
        # log only grew since this partner last looked (docs/protocol.md §16.5).
        await self._audit(network).observe(tv.tree_head)
        result = await self._pull(network, tv, wait=wait, progress=progress)
        result.duties = await self._duties(network, tv)
        return result

    async def _pull(self, network: str, tv: TrustView | None = None, *, wait: float = 0,
                    progress: Callable[[int], Any] | None = None) -> SyncResult:
        """Everything of :meth:`sync` but the duties."""
        tv = tv or await self._trusted(network)
        verifier = self._verifier(network, tv)
        if self._is_core(tv):
            with self.state.transaction():
                await verifier.fetch_epochs()
        cursor = self.state.cursor(network, "sync")
        count, first = 0, True
        wait = max(0, min(30, int(wait)))
        while True:
            page = await self.conn.get(
                self._path(network, "/sync"),
                {"after": cursor, "limit": PAGE, "wait": wait if first else 0},
                timeout=(wait if first else 0) + 30)
            first = False
            items, next_cursor = _page(page)
            if not items:
                break
            if next_cursor is None:
                raise self._misbehaving(network, "context-mismatch",
                                        "a sync page without a valid cursor")
            _check_positions(self, network, cursor, items)
            verifier.page = items
            with self.state.transaction():
                for item in items:
                    await verifier.item(item)
                self.state.set_cursor(network, "sync", next_cursor)
            cursor = next_cursor
            count += len(items)
            if progress is not None:
                progress(count)
            if len(items) < PAGE:
                break
        return SyncResult(network=network, items=count, cursor=cursor,
                          cases=sorted(verifier.touched), epochs=sorted(verifier.new_epochs))

    def cases(self, network: str) -> list[CaseView]:
        """Every case this partner holds, as verified (oldest first)."""
        member_names = names(self.state, network)
        docs = self.state.docs("case", (network,))
        rules = network_rules(self.state, network) if docs else None
        out = [case_view(self.state, network, ref[1], member_names, rules) for ref, _ in docs]
        return sorted((v for v in out if v is not None), key=lambda v: (v.created, v.case))

    def case(self, network: str, case: str) -> CaseView:
        view = case_view(self.state, network, case)
        if view is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        return view

    def members(self, network: str) -> list[dict[str, Any]]:
        """The verified members (from what this partner verified and kept)."""
        return [m.to_json() for m in self._local_trust(network).members(current_only=False)]

    async def notifications(self, network: str, *, after: str = "0") -> list[dict[str, Any]]:
        """The coordinator's notifications (docs/protocol.md §15.2): bemoeizorg
        invocations, releases and rate-limit alerts, and closed referrals, oldest first.
        They are pointers, not evidence: what they name is checked in the audit log."""
        items: list[dict[str, Any]] = []
        cursor = after
        while True:
            page = await self.conn.get(self._path(network, "/notifications"),
                                       {"after": cursor, "limit": PAGE})
            batch, cursor_next = _page(page)
            items.extend(batch)
            if len(batch) < PAGE or cursor_next is None:
                return items
            cursor = cursor_next

    def misbehaviours(self) -> list[dict[str, Any]]:
        return self.state.misbehaviours()

    # =================================================================== onboarding

    async def create_network(self, *, name: str, kind: str, covenant: str,
                             server_fingerprint: str,
                             policy: Mapping[str, Any] | None = None) -> str:
        """Genesis (with the server's log and gate keys), trust in itself, its own
        core membership with the coordinator role, covenant acceptance, epoch 1.

        ``server_fingerprint`` is the one the server's operator printed with ``schakel
        server init`` and gave this coordinator out of band: the keys ``GET /v1/server``
        answers (unsigned) go into the genesis only if they have it
        (``UntrustedKeyError`` otherwise, before anything is sent; protocol.md §4.3)."""
        expected = Fingerprint.parse(server_fingerprint)
        log_key, gate_key = await self._server_keys(expected)
        network = new_network_id()
        genesis = make_genesis(self.keys, network=network, name=name, kind=kind,
                               created=self._now(), server_log=log_key, server_gate=gate_key,
                               covenant=hashlib.sha256(covenant.encode("utf-8")).digest(),
                               policy=dict(policy) if policy else default_policy(kind).to_json())
        await self.conn.post("/v1/networks", {"genesis": genesis})
        self.trust(network, self.fingerprint)
        await self.admit(network, self.bundle(), ring="core", party="formal",
                         roles=("coordinator",))
        await self.accept_covenant(network, covenant)
        return network

    async def _server_keys(self, expected: Fingerprint) -> tuple[VerifyKey, BoxPublicKey]:
        """The server's log and gate keys, believed only with the ``expected`` server
        fingerprint (flow 1 step 1)."""
        served = await self.conn.get_unsigned("/v1/server")
        if not isinstance(served, dict):
            raise MalformedError("GET /v1/server did not answer an object")
        log_key = VerifyKey.from_b64(served.get("log"), "log")
        gate_key = BoxPublicKey.from_b64(served.get("gate"), "gate")
        try:
            expected.matches_server(log_key, gate_key)
        except UntrustedKeyError as exc:
            raise UntrustedKeyError(
                f"the server at {self.server} answers keys whose server fingerprint is not "
                f"the one you were given; nothing was sent. Ask the server's operator to read "
                f"`schakel server fingerprint` aloud again, and check the server address",
                details={**exc.details, "server": self.server}) from None
        return log_key, gate_key

    async def admit(self, network: str, bundle: Mapping[str, Any], *, ring: str, party: str,
                    roles: Iterable[str] = (), days: int = 365,
                    fingerprint: str | None = None) -> str:
        """Certify the partner of ``bundle`` (its self-signature checked; with
        ``fingerprint``, the one read aloud).  A core member gets a new epoch (sealed to
        the whole current core) and every open case is rotated to it."""
        expected = Fingerprint.parse(fingerprint) if fingerprint else None
        kb = verify_key_bundle(bundle, expected=expected)
        tv = await self._trusted(network)
        now = self._now()
        membership = issue_membership(
            self.keys, network=network, kind=tv.kind, member=kb.public, name=kb.name,
            ring=ring, party=party, roles=roles, serial=tv.next_serial(kb.key_id),
            valid_from=now - VALID_FROM_SLACK, valid_until=now + timedelta(days=days))
        await self.conn.post(self._path(network, "/members"), {"membership": membership})
        if ring == "core":
            await self._rotate(network, reason="member joined", new_epoch=True)
        return kb.key_id

    async def remove(self, network: str, member: str, *, reason: str) -> None:
        """Revoke ``member``.  Core: a new epoch for the remaining core and every open
        case re-keyed to it; shell: the cases shared with it re-keyed.  The shell
        partners that keep a share get the new version (so the removed member's old keys
        open nothing written afterwards)."""
        self._refuse_pii(network, {"reason": reason})
        tv = await self._trusted(network)
        info = tv.member(member)
        if info is None:
            raise NotFound(f"{member} is not a member of network {network}",
                           details={"member": member})
        # Every membership of the member up to the highest serial issued ends.
        serial = tv.next_serial(member) - 1
        revocation = revoke_membership(self.keys, network=network, member=member,
                                       serial=serial, at=self._now(), reason=reason)
        await self.conn.post(self._path(network, "/revocations"), {"revocation": revocation})
        if info.ring == "core":
            await self._rotate(network, reason="member removed", new_epoch=True)
        else:
            shared = {ref[1] for ref, _ in self.state.docs("share", (network,))
                      if ref[2] == member}
            await self._rotate(network, reason="member removed", new_epoch=False,
                               only=shared)

    async def accept_covenant(self, network: str, covenant: str) -> None:
        """Sign the covenant acceptance; refused locally when the text's hash is not the
        one in the verified genesis."""
        tv = await self._trusted(network)
        digest = hashlib.sha256(covenant.encode("utf-8")).digest()
        if digest != tv.covenant:
            raise ContextMismatchError("this covenant text is not the network's covenant "
                                       "(its hash differs from the genesis)",
                                       details={"network": network})
        acceptance = CovenantAcceptance(network=network, member=self.key_id,
                                        covenant=b64e(digest), acting_user=self.acting_user,
                                        at=self._stamp()).sign(self.keys.signer)
        await self.conn.post(self._path(network, "/covenant"), {"acceptance": acceptance})

    # ------------------------------------------------------------------ epochs and rekeys

    async def _distribute_epoch(self, network: str, tv: TrustView) -> int:
        """A new epoch sealed to every current core member; its keys kept locally."""
        recipients = tv.core()
        for _ in range(CONFLICT_TRIES):
            epoch = latest_epoch(self.state, network) + 1
            epoch_key, match_key = EpochKey.generate(), MatchKey.generate()
            sealed = [EpochKeyPayload.create(network=network, epoch=epoch, recipient=m.key_id,
                                             epoch_key=epoch_key, match_key=match_key)
                      .seal(m.box) for m in recipients]
            dist = EpochKeyDistribution(network=network, epoch=epoch, created=self._stamp(),
                                        keys=sealed).sign(self.keys.signer)
            try:
                await self.conn.post(self._path(network, "/epochs"), {"distribution": dist})
            except ServerRefused as exc:
                if exc.code != "conflict":
                    raise
                # Another epoch took this number: learn the newer ones and go above them.
                verifier = self._verifier(network, tv)
                with self.state.transaction():
                    await verifier.fetch_epochs()
                continue
            store_epoch(self.state, network, epoch, (epoch_key, match_key), dist["signed"]["created"])
            return epoch
        raise ProtocolError("could not distribute a new epoch: the epoch numbers kept changing")

    async def _rotate(self, network: str, *, reason: str, new_epoch: bool,
                      only: set[str] | None = None) -> list[str]:
        """After a membership change: (optionally) a new epoch, then a rekey of every
        open case (or of ``only``) to the latest epoch, then the new version re-shared
        with the shell partners that keep a share.  Returns the cases re-keyed."""
        tv = await self._trusted(network)
        if new_epoch:
            await self._distribute_epoch(network, tv)
        await self._pull(network, tv)
        rekeyed: list[str] = []
        for case in self._open_cases(network):
            if only is not None and case not in only:
                continue
            if await self._rekey(network, tv, case, reason=reason, force=only is not None):
                rekeyed.append(case)
        await self._reshare_current(network, tv)
        return rekeyed

    def _open_cases(self, network: str) -> list[str]:
        return [ref[1] for ref, info in self.state.docs("case", (network,))
                if info.get("status") == "open"]

    async def _rekey(self, network: str, tv: TrustView, case: str, *, reason: str,
                     force: bool = False) -> bool:
        """Rotate ``case`` to a new case key wrapped under the latest epoch, unless it is
        already under it (``force``: rotate anyway, e.g. a shell partner left)."""
        for _ in range(CONFLICT_TRIES):
            latest = latest_epoch(self.state, network)
            keys = epoch_keys(self.state, network, latest)
            info = summary(self.state, network, case)
            if keys is None or info is None:
                return False
            if not force and int(info.get("epoch", 0)) >= latest:
                return False
            version = max(versions(self.state, network, case), default=1) + 1
            new_key = CaseKey.generate()
            rekey = CaseRekey(
                network=network, case=case, case_key_version=version, epoch=latest,
                wrapped_case_key=envelopes.wrap_case_key(keys[0], new_key, network=network,
                                                         case=case, epoch=latest,
                                                         version=version),
                acting_user=self.acting_user, at=self._stamp(), reason=reason,
            ).sign(self.keys.signer)
            try:
                await self.conn.post(self._path(network, f"/cases/{case}/rekeys"),
                                     {"rekey": rekey})
            except ServerRefused as exc:
                if exc.code != "conflict":
                    raise
                await self._pull(network, tv)       # someone rotated first: look again
                force = False
                continue
            verifier = self._verifier(network, tv)
            with self.state.transaction():
                await verifier.rekey(rekey, case)
            return True
        return False

    async def _reshare_current(self, network: str, tv: TrustView,
                               report: DutyReport | None = None) -> None:
        """Every current shell partner that has a share of an open case gets its current
        version (coordinator only: shares are signed by the coordinator)."""
        if not tv.is_coordinator(self.key_id):
            return
        for case in self._open_cases(network):
            info = summary(self.state, network, case) or {}
            version = int(info.get("version", 1))
            if case_key(self.state, network, case, version) is None:
                continue
            held: dict[str, set[int]] = {}
            for ref, _ in self.state.docs("share", (network, case)):
                held.setdefault(ref[2], set()).add(int(ref[3]))
            for partner, have in sorted(held.items()):
                member = tv.member(partner)
                if member is None or not member.current or member.ring != "shell" or \
                        version in have:
                    continue
                await self._share(network, tv, case, member, version,
                                  reason="case key rotated")
                if report is not None:
                    report.reshared.append(f"{case}:{partner}")

    # =================================================================== cases

    async def create_case(self, network: str, intake: Mapping[str, Any], *,
                          identity: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """A case: anonymous intake (PII-guarded before anything is sent), sealed identity
        per class (class keys kept locally), gated envelopes for every current member
        the policy could ever let receive a class, and blind-index tokens."""
        return await self._new_case(network, intake, identity=identity or {}, kind="case")

    async def consult(self, network: str, intake: Mapping[str, Any]) -> str:
        """A consult: a case without identity (no records, envelopes or tokens)."""
        return await self._new_case(network, intake, identity={}, kind="consult")

    def _intake(self, network: str, intake: Mapping[str, Any]) -> dict[str, Any]:
        value = dict(intake)
        value.setdefault("kind", "intake")
        self._refuse_pii(network, value)
        if not isinstance(parse_anonymous_event(value), Intake):
            raise MalformedError("the first event of a case is an intake")
        return value

    async def _new_case(self, network: str, intake: Mapping[str, Any], *,
                        identity: Mapping[str, Mapping[str, Any]], kind: str) -> str:
        plain = self._intake(network, intake)             # before any request
        tv = await self._trusted(network)
        policy_classes = set(tv.policy["classes"])
        records: dict[str, dict[str, Any]] = {}
        for cls, fields in identity.items():
            if cls not in policy_classes:
                raise PolicyViolation(f"class {cls!r} is not a disclosure class of this "
                                      f"network", details={"reason": "class-not-in-policy"})
            records[cls] = identity_plaintext_for(cls, dict(fields),
                                                  allowed=policy_classes).to_json()
        if not self._is_core(tv):
            raise PolicyViolation("only core members create cases",
                                  details={"reason": "not-core"})
        verifier = self._verifier(network, tv)
        with self.state.transaction():
            await verifier.fetch_epochs()          # the newest epoch: never an older one
        epoch = latest_epoch(self.state, network)
        keys = epoch_keys(self.state, network, epoch)
        if keys is None:
            raise ProtocolError("this partner holds no epoch key of the network yet",
                                details={"network": network})
        case, ck = new_id(), CaseKey.generate()
        fields: dict[str, Any] = dict(
            network=network, case=case, owner=self.key_id, acting_user=self.acting_user,
            kind=kind, created=self._stamp(), epoch=epoch, case_key_version=1,
            wrapped_case_key=envelopes.wrap_case_key(keys[0], ck, network=network, case=case,
                                                     epoch=epoch, version=1))
        if kind == "case":
            fields["identity_version"] = 1
            if records:
                fields["classes"] = sorted(records)
        header = CaseHeader(**fields).sign(self.keys.signer)
        event = self._event(network, case, ck, 1, seq=1, prev=None, plaintext=plain)
        class_keys, identity_envs = self._seal_identity(network, case, records, version=1)
        gated = self._gated(network, tv, case, class_keys, version=1)
        tokens = self._tokens(tv, keys[1], records) if kind == "case" else []
        body: dict[str, Any] = {"header": header, "events": [event]}
        if kind == "case":
            body.update(identity=identity_envs, gated=[g for _, _, g in gated[:GATED_PER_REQUEST]],
                        tokens=tokens)
        # The class keys and the identity are this partner's before the case exists on
        # the server: a lost answer must not lose the only copy of the keys.
        for cls, key in class_keys.items():
            self.state.put_secret("class-key", (network, case, cls, "1"), key.export())
            self.state.put_secret("identity", (network, case, cls), canonical_json(records[cls]))
        await self.conn.post(self._path(network, "/cases"), body)
        with self.state.transaction():
            await verifier.header(header, case)
            await verifier.event(event, case)
            self._note_gated(network, case, gated[:GATED_PER_REQUEST])
        if len(gated) > GATED_PER_REQUEST:
            await self._post_gated(network, case, gated[GATED_PER_REQUEST:])
        return case

    def _event(self, network: str, case: str, key: CaseKey, version: int, *, seq: int,
               prev: str | None, plaintext: Mapping[str, Any]) -> dict[str, Any]:
        event_id = new_id()
        fields: dict[str, Any] = dict(
            network=network, case=case, event=event_id, author=self.key_id,
            acting_user=self.acting_user, seq=seq, created=self._stamp(),
            case_key_version=version,
            ciphertext=envelopes.encrypt_json(key, dict(plaintext), envelopes.event_context(
                network, case, event_id, version=version)))
        if prev is not None:
            fields["prev"] = prev
        if plaintext.get("kind") == "status" and plaintext.get("status") in ("open", "closed"):
            fields["status"] = plaintext["status"]
        return Event(**fields).sign(self.keys.signer)

    # ------------------------------------------------------------------ identity helpers

    def _tokens(self, tv: TrustView, match_key: MatchKey,
                records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Blind-index tokens (protocol.md §3.6) with the current match key and the
        policy's Argon2id cost: BSN, and family name + date of birth."""
        bi = tv.policy["blind_index"]
        cost = dict(opslimit=bi["opslimit"], memlimit=bi["memlimit"], size=bi["token_bytes"])
        official, name = records.get("official", {}), records.get("name", {})
        out = []
        if official.get("bsn"):
            raw = envelopes.blind_index(match_key, "bsn", envelopes.normalise_bsn(official["bsn"]),
                                        **cost)
            out.append({"kind": "bsn", "token": b64e(raw)})
        if name.get("family_name") and official.get("date_of_birth"):
            normalised = f"{envelopes.normalise_name(name['family_name'])}|" \
                         f"{official['date_of_birth']}"
            raw = envelopes.blind_index(match_key, "name-dob", normalised, **cost)
            out.append({"kind": "name-dob", "token": b64e(raw)})
        return out

    # ------------------------------------------------------------------ events

    async def add_event(self, network: str, case: str, plaintext: Mapping[str, Any]) -> int:
        """Append an analysis, action, feedback, note or status event (PII-guarded and
        checked against the action rule before sending).  A concurrent write makes the
        server answer 409: re-sync and rebuild on top of it.  Returns the event's seq."""
        value = dict(plaintext)
        self._refuse_pii(network, value)
        parsed = parse_anonymous_event(value)
        if parsed.KIND == "intake":
            raise MalformedError("an intake is only the first event of a case")
        tv = await self._trusted(network)
        for attempt in range(CONFLICT_TRIES):
            info = summary(self.state, network, case)
            if info is None or case_key(self.state, network, case, int(info["version"])) is None:
                await self._pull(network, tv)
                info = summary(self.state, network, case)
                if info is None:
                    raise NotFound(f"case {case} is not known to this partner",
                                   details={"case": case})
            if isinstance(parsed, Action):
                # judged on the case as held now (its intake says whether it is complex)
                self._check_action(network, case, tv, parsed)
            version = int(info["version"])
            key = self._case_key(network, case, version)
            seq = int(info["last_seq"]) + 1
            event = self._event(network, case, key, version, seq=seq,
                                prev=info.get("last_hash"), plaintext=value)
            try:
                await self.conn.post(self._path(network, f"/cases/{case}/events"),
                                     {"event": event})
            except ServerRefused as exc:
                if exc.code == "conflict" and attempt + 1 < CONFLICT_TRIES:
                    await self._pull(network, tv)
                    continue
                raise
            with self.state.transaction():
                await self._verifier(network, tv).event(event, case)
            return seq
        raise ProtocolError("the case kept changing while writing")  # pragma: no cover

    def _check_action(self, network: str, case: str, tv: TrustView, action: Action) -> None:
        """The writer's side of §7's action rules (every reader judges the action again
        when it folds the case: :func:`schakel.client.fold.judge_action`)."""
        rules = rules_of(tv.policy, tv.kind)
        view = case_view(self.state, network, case, rules=rules)
        decision = judge_action(action, case_complex=bool(view and view.state.get("complex")),
                                rules=rules)
        if not decision.allowed:
            raise PolicyViolation(f"refused before sending: {decision.message}",
                                  details={"reason": decision.reason, "early": True})

    async def close_case(self, network: str, case: str, *, reason: str) -> None:
        await self.add_event(network, case, {"kind": "status", "status": "closed",
                                             "reason": reason})

    async def reopen_case(self, network: str, case: str, *, reason: str) -> None:
        await self.add_event(network, case, {"kind": "status", "status": "open",
                                             "reason": reason})

    # ------------------------------------------------------------------ shares

    async def share(self, network: str, case: str, partner: str, *, reason: str) -> None:
        """Share the case's current case key with ``partner`` (coordinator; flow 6).
        The reason is cleartext the server stores: the PII guard runs on it first."""
        self._refuse_pii(network, {"reason": reason})
        tv = await self._trusted(network)
        member = self._recipient(tv, partner)
        if summary(self.state, network, case) is None or \
                case_key(self.state, network, case,
                         int((summary(self.state, network, case) or {})["version"])) is None:
            await self._pull(network, tv)
        info = summary(self.state, network, case)
        if info is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        await self._share(network, tv, case, member, int(info["version"]), reason=reason)

    async def reshare_history(self, network: str, case: str, member: str, *,
                              reason: str) -> None:
        """Share every earlier case-key version this partner holds with ``member`` (a
        core member that joined after the case was created reads its history)."""
        self._refuse_pii(network, {"reason": reason})
        tv = await self._trusted(network)
        recipient = self._recipient(tv, member)
        await self._pull(network, tv)
        info = summary(self.state, network, case)
        if info is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        current = int(info["version"])
        held = [v for v in sorted(versions(self.state, network, case))
                if v < current and case_key(self.state, network, case, v) is not None]
        if not held:
            raise ProtocolError("this partner holds no earlier version of the case key",
                                details={"case": case})
        for version in held:
            await self._share(network, tv, case, recipient, version, reason=reason)

    def _recipient(self, tv: TrustView, key_id: str) -> MemberInfo:
        """A current member to seal to -- never a key that does not chain to the
        coordinator."""
        member = tv.member(key_id)
        if member is None or not member.current:
            raise UntrustedKeyError(f"{key_id} is not a current member of network "
                                    f"{tv.network}: nothing is sealed to it",
                                    details={"member": key_id})
        return member

    async def _share(self, network: str, tv: TrustView, case: str, member: MemberInfo,
                     version: int, *, reason: str) -> None:
        key = self._case_key(network, case, version)
        sealed = envelopes.seal_case_key(member.box, key, network=network, case=case,
                                         version=version, recipient_id=member.key_id)
        share = Share(network=network, case=case, partner=member.key_id,
                      case_key_version=version, sealed_case_key=sealed,
                      acting_user=self.acting_user, at=self._stamp(),
                      reason=reason).sign(self.keys.signer)
        await self.conn.post(self._path(network, "/shares"), {"share": share})
        with self.state.transaction():
            await self._verifier(network, tv).share(share, case)

    # =================================================================== duties

    async def duties(self, network: str) -> DutyReport:
        """What this partner owes the network (also run at the end of :meth:`sync`):
        rotate the identity of its own open cases whose recipients lost a basis (ADR
        0011) and backfill gated envelopes of its own cases for members who joined later;
        as the coordinator, rotate open cases still under an older epoch and re-share
        current versions with shell partners; then the flow duties (purges, bemoeizorg
        expiry).

        A partner the network removed (the server refuses it ``untrusted_key``) still
        owes one duty: it executes and acknowledges its purge instructions, with its old
        key and the genesis it verified before (``report.removed``; protocol.md §N.5)."""
        try:
            tv = await self._trusted(network)
        except ServerRefused as exc:
            if (exc.status, exc.code) != (403, "untrusted_key"):
                raise
            report = DutyReport(network=network, removed=True)
            await self._flow_duties(network, report, tv=self._local_trust(network))
            return report
        await self._pull(network, tv)
        return await self._duties(network, tv)

    async def _duties(self, network: str, tv: TrustView) -> DutyReport:
        report = DutyReport(network=network)
        await self._rotation_duty(network, tv, report)
        await self._backfill(network, tv, report)
        if tv.is_coordinator(self.key_id):
            for case in self._open_cases(network):
                if await self._rekey(network, tv, case, reason="epoch changed"):
                    report.rekeyed.append(case)
            await self._reshare_current(network, tv, report)
        await self._flow_duties(network, report)
        return report


def _check_positions(partner: "Partner", network: str, after: str, items: list[Any]) -> None:
    """Feed positions only grow (docs/protocol.md §16): every item of a page lies after
    the ``after`` the client asked for and after the item before it.  An item at or
    before a position the client already passed is the server replaying it."""
    last = int(after) if after.isdigit() else 0
    for item in items:
        position = item.get("cursor") if isinstance(item, dict) else None
        if not (isinstance(position, str) and position.isdigit() and len(position) <= 16):
            raise partner._misbehaving(network, "context-mismatch",
                                       "a sync item without a valid feed position")
        if int(position) <= last:
            what = "event-replayed" if item.get("kind") == "event" else "context-mismatch"
            raise partner._misbehaving(network, what, "a sync item at a feed position this "
                                       "partner already passed", position=position)
        last = int(position)


def _page(page: Any) -> tuple[list[Any], str | None]:
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        return [], None
    cursor = page.get("cursor")
    if not isinstance(cursor, str) or not cursor.isdigit() or len(cursor) > 16:
        return page["items"], None
    return page["items"], cursor


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
            for k, v in details.items()}


__all__ = ["Partner", "new_id"]
