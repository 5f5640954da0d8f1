"""Epoch keys and case keys as the membership changes (design §3; ADR 0007, "case-rekey").

A network's epoch key is sealed to every current core member; each case key is wrapped
under an epoch and sealed to the shell partners a case is shared with.  When the core
changes, :class:`CaseKeys` distributes a new epoch and rotates every open case to it, so
a removed member's old keys open nothing written after its removal; when a shell partner
leaves, the cases shared with it are rotated.  A subset case's keys are never wrapped under
an epoch: each version is sealed to the members of its audience that may still read it
(:func:`audience_boxes`; ADR 0031).  The coordinator then re-shares each
rotated case's current version with the shell partners that keep a share.  Writes that
another writer overtook (409) are re-read and rebuilt, a bounded number of times.
"""

from __future__ import annotations

from typing import Any

from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxPublicKey, CaseKey, EpochKey, MatchKey
from schakel.protocol.errors import ProtocolError, UntrustedKeyError
from schakel.protocol.objects.cases import AudienceKey, CaseRekey
from schakel.protocol.objects.disclosure import Share
from schakel.protocol.objects.network import EpochKeyDistribution, EpochKeyPayload

from schakel.client.errors import ServerRefused
from schakel.client.feed import Feed
from schakel.client.fold import case_key, epoch_keys, latest_epoch, store_epoch, summary, versions
from schakel.client.session import Session
from schakel.client.trust import MemberInfo, TrustView
from schakel.client.views import DutyReport
from schakel.client.wire import CONFLICT_TRIES


def audience_boxes(tv: TrustView, members: Any) -> dict[str, BoxPublicKey]:
    """The box keys of the ``members`` of a subset case's audience that may read it now --
    current core members and the coordinator -- by key id; the others (a removed member)
    are left out, so nothing new is sealed to them (ADR 0031)."""
    out: dict[str, BoxPublicKey] = {}
    for key_id in members:
        info = tv.member(key_id)
        if info is not None and info.current and info.ring == "core":
            out[key_id] = info.box
        elif key_id == tv.coordinator_key_id:
            out[key_id] = tv.verified.coordinator.box
    return out


def seal_audience(boxes: dict[str, BoxPublicKey], key: CaseKey, *, network: str, case: str,
                  version: int) -> list[AudienceKey]:
    """Case-key ``version`` sealed to each member in ``boxes`` (protocol.md §C.1)."""
    return [AudienceKey(member=member, version=version,
                        sealed=envelopes.seal_case_key(box, key, network=network, case=case,
                                                       version=version, recipient_id=member))
            for member, box in sorted(boxes.items())]


class CaseKeys:
    """Epoch distribution, case rekeys and shares (module docstring)."""

    def __init__(self, session: Session, feed: Feed) -> None:
        self.session, self.feed = session, feed

    def open_cases(self, network: str) -> list[str]:
        return [ref[1] for ref, info in self.session.state.docs("case", (network,))
                if info.get("status") == "open"]

    # ------------------------------------------------------------------ epochs

    async def distribute_epoch(self, network: str, tv: TrustView) -> int:
        """A new epoch sealed to every current core member; its keys kept locally."""
        s = self.session
        recipients = tv.core()
        for _ in range(CONFLICT_TRIES):
            epoch = latest_epoch(s.state, network) + 1
            epoch_key, match_key = EpochKey.generate(), MatchKey.generate()
            sealed = tuple(EpochKeyPayload.create(network=network, epoch=epoch,
                                                  recipient=m.key_id, epoch_key=epoch_key,
                                                  match_key=match_key).seal(m.box)
                           for m in recipients)
            dist = EpochKeyDistribution(network=network, epoch=epoch, created=s.stamp(),
                                        keys=sealed).sign(s.keys.signer)
            try:
                await s.conn.post(s.path(network, "/epochs"), {"distribution": dist})
            except ServerRefused as exc:
                if exc.code != "conflict":
                    raise
                # Another epoch took this number: learn the newer ones and go above them.
                verifier = s.verifier(network, tv)
                with s.state.transaction():
                    await verifier.fetch_epochs()
                continue
            store_epoch(s.state, network, epoch, (epoch_key, match_key), dist["signed"]["created"])
            return epoch
        raise ProtocolError("could not distribute a new epoch: the epoch numbers kept changing")

    async def rotate(self, network: str, *, reason: str, new_epoch: bool,
                     only: set[str] | None = None) -> list[str]:
        """After a membership change: (optionally) a new epoch, then a rekey of every
        open case (or of ``only``) to the latest epoch, then the new version re-shared
        with the shell partners that keep a share.  Returns the cases re-keyed."""
        tv = await self.session.trusted(network)
        if new_epoch:
            await self.distribute_epoch(network, tv)
        await self.feed.pull(network, tv)
        rekeyed: list[str] = []
        for case in self.open_cases(network):
            if only is not None and case not in only:
                continue
            if await self.rekey(network, tv, case, reason=reason, force=only is not None):
                rekeyed.append(case)
        await self.reshare_current(network, tv)
        return rekeyed

    # ------------------------------------------------------------------ rekeys

    async def rekey(self, network: str, tv: TrustView, case: str, *, reason: str,
                    force: bool = False) -> bool:
        """Rotate ``case`` to a new case key wrapped under the latest epoch, unless it is
        already under it (``force``: rotate anyway, e.g. a shell partner left)."""
        s = self.session
        for _ in range(CONFLICT_TRIES):
            latest = latest_epoch(s.state, network)
            keys = epoch_keys(s.state, network, latest)
            info = summary(s.state, network, case)
            if keys is None or info is None:
                return False
            if not force and int(info.get("epoch", 0)) >= latest:
                return False
            version = max(versions(s.state, network, case), default=1) + 1
            new_key = CaseKey.generate()
            header = s.state.get_doc("header", (network, case)) or {"signed": {}}
            audience = header["signed"].get("audience")
            sealing: dict[str, Any]
            if audience is not None:
                # ADR 0031: a subset case's new key goes to its remaining audience only.
                sealing = {"audience_keys": tuple(seal_audience(
                    audience_boxes(tv, audience), new_key, network=network, case=case,
                    version=version))}
            else:
                sealing = {"wrapped_case_key": envelopes.wrap_case_key(
                    keys[0], new_key, network=network, case=case, epoch=latest,
                    version=version)}
            rekey = CaseRekey(
                network=network, case=case, case_key_version=version, epoch=latest,
                acting_user=s.acting_user, at=s.stamp(), reason=reason, **sealing,
            ).sign(s.keys.signer)
            try:
                await s.conn.post(s.path(network, f"/cases/{case}/rekeys"), {"rekey": rekey})
            except ServerRefused as exc:
                if exc.code != "conflict":
                    raise
                await self.feed.pull(network, tv)       # someone rotated first: look again
                force = False
                continue
            verifier = s.verifier(network, tv)
            with s.state.transaction():
                await verifier.rekey(rekey, case)
            return True
        return False

    async def rekey_duty(self, network: str, tv: TrustView, report: DutyReport) -> None:
        """The coordinator's duty (:meth:`schakel.client.partner.Partner.duties`): rotate
        the open cases still under an older epoch, then re-share current versions."""
        if not tv.is_coordinator(self.session.key_id):
            return
        # Only a case whose summary names an older epoch than the latest can be due
        # (``rekey`` checks it again): the others are passed over without reading the
        # epoch keys once per case, which a network of 10,000 cases felt on every sync.
        latest = latest_epoch(self.session.state, network)
        for ref, info in self.session.state.docs("case", (network,)):
            if info.get("status") != "open" or int(info.get("epoch", 0)) >= latest:
                continue
            if await self.rekey(network, tv, ref[1], reason="epoch changed"):
                report.rekeyed.append(ref[1])
        await self.reshare_current(network, tv, report)

    # ------------------------------------------------------------------ shares

    def recipient(self, tv: TrustView, key_id: str) -> MemberInfo:
        """A current member to seal to -- never a key that does not chain to the
        coordinator."""
        member = tv.member(key_id)
        if member is None or not member.current:
            raise UntrustedKeyError(f"{key_id} is not a current member of network "
                                    f"{tv.network}: nothing is sealed to it",
                                    details={"member": key_id})
        return member

    async def share(self, network: str, tv: TrustView, case: str, member: MemberInfo,
                    version: int, *, reason: str) -> None:
        """Seal case-key ``version`` of ``case`` to ``member`` in a signed share."""
        s = self.session
        key = s.case_key(network, case, version)
        sealed = envelopes.seal_case_key(member.box, key, network=network, case=case,
                                         version=version, recipient_id=member.key_id)
        share = Share(network=network, case=case, partner=member.key_id,
                      case_key_version=version, sealed_case_key=sealed,
                      acting_user=s.acting_user, at=s.stamp(),
                      reason=reason).sign(s.keys.signer)
        await s.conn.post(s.path(network, "/shares"), {"share": share})
        with s.state.transaction():
            await s.verifier(network, tv).share(share, case)

    async def reshare_current(self, network: str, tv: TrustView,
                              report: DutyReport | None = None) -> None:
        """Every current shell partner that has a share of an open case gets its current
        version (coordinator only: shares are signed by the coordinator)."""
        s = self.session
        if not tv.is_coordinator(s.key_id):
            return
        # The shares of the whole network in one read, by case: only an open case with a
        # share can need one again, so the other cases are not read at all.
        shared: dict[str, dict[str, set[int]]] = {}
        for ref, _ in s.state.docs("share", (network,)):
            shared.setdefault(ref[1], {}).setdefault(ref[2], set()).add(int(ref[3]))
        for case, held in sorted(shared.items()):
            info = summary(s.state, network, case) or {}
            if info.get("status") != "open":
                continue
            version = int(info.get("version", 1))
            if case_key(s.state, network, case, version) is None:
                continue
            for partner, have in sorted(held.items()):
                member = tv.member(partner)
                if member is None or not member.current or member.ring != "shell" or \
                        version in have:
                    continue
                await self.share(network, tv, case, member, version, reason="case key rotated")
                if report is not None:
                    report.reshared.append(f"{case}:{partner}")


__all__ = ["CaseKeys", "audience_boxes", "seal_audience"]
