"""Case work: cases and consults, their events, status and shares (design §4 flows 2
and 6; docs/protocol.md §C.1–§C.3, §7).

:class:`Cases` builds every object of a case on this partner's side and sends it only
after the checks it can make locally:

* the PII guard runs on every anonymous plaintext and every cleartext reason *before*
  anything is sent (protocol.md §16.7);
* an action is judged against the network policy's action rules before it is written
  (every reader judges it again when it folds the case);
* a case carries its sealed identity, the gated envelopes for every member the policy
  could ever let receive a class (:class:`~schakel.client.identity.Identity`) and the
  blind-index tokens; a consult carries none of them;
* a subset case (``audience``) seals its case key to each member of its audience, the
  owner and the coordinator always among them, instead of wrapping it under the epoch key;
  its gated envelopes are for its audience only; widening it is the owner's, with a
  reason (ADR 0031);
* a write that another writer overtook (409) is rebuilt on top of the newer state.

Reading is local: :meth:`Cases.all` and :meth:`Cases.get` fold what this partner
verified and stored; ``Partner.sync`` brings it up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schakel.protocol import envelopes
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import CaseKey, MatchKey
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError, PolicyViolation, ProtocolError
from schakel.protocol.objects.cases import MAX_AUDIENCE, CaseHeader, Event
from schakel.protocol.objects.plaintext import (
    Action, Intake, identity_plaintext_for, parse_anonymous_event,
)

from schakel.client.casekeys import CaseKeys, audience_boxes, seal_audience
from schakel.client.disclosure import rules_of
from schakel.client.errors import NotFound, ServerRefused
from schakel.client.feed import Feed
from schakel.client.fold import (
    case_key, case_view, epoch_keys, judge_action, latest_epoch, names, network_rules,
    summary, versions,
)
from schakel.client.identity import GATED_PER_REQUEST, Identity
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import CaseView
from schakel.client.wire import CONFLICT_TRIES, new_id, refuse


class Cases:
    """The cases of every network this partner is in (module docstring)."""

    def __init__(self, session: Session, feed: Feed, identity: Identity,
                 case_keys: CaseKeys) -> None:
        self.session, self.feed, self.identity, self.case_keys = session, feed, identity, case_keys

    # ------------------------------------------------------------------ reading

    def all(self, network: str) -> list[CaseView]:
        """Every case this partner holds, as verified (oldest first)."""
        s = self.session
        member_names = names(s.state, network)
        docs = s.state.docs("case", (network,))
        rules = network_rules(s.state, network) if docs else None
        out = [case_view(s.state, network, ref[1], member_names, rules) for ref, _ in docs]
        return sorted((v for v in out if v is not None), key=lambda v: (v.created, v.case))

    def get(self, network: str, case: str) -> CaseView:
        view = case_view(self.session.state, network, case)
        if view is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        return view

    def _summary(self, network: str, case: str) -> dict[str, Any]:
        info = summary(self.session.state, network, case)
        if info is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        return info

    # ------------------------------------------------------------------ new cases

    async def create(self, network: str, intake: Mapping[str, Any], *,
                     identity: Mapping[str, Mapping[str, Any]] | None = None,
                     audience: Iterable[str] | None = None) -> str:
        """A case: anonymous intake (PII-guarded before anything is sent), sealed identity
        per class (class keys kept locally), gated envelopes for every current member
        the policy could ever let receive a class, and blind-index tokens.  With
        ``audience`` (core members' key ids) a subset case: only those members, this
        partner and the coordinator read it (protocol.md §C.1, "Audience")."""
        return await self._new_case(network, intake, identity=identity or {}, kind="case",
                                    audience=audience)

    async def consult(self, network: str, intake: Mapping[str, Any], *,
                      audience: Iterable[str] | None = None) -> str:
        """A consult: a case without identity (no records, envelopes or tokens); with
        ``audience`` read only by those members, this partner and the coordinator."""
        return await self._new_case(network, intake, identity={}, kind="consult",
                                    audience=audience)

    def _audience(self, tv: TrustView, chosen: Iterable[str]) -> list[str]:
        """The audience of a new subset case: the chosen members, this partner and the
        coordinator (ADR 0031), each a current core member (or the coordinator) --
        never a key that does not chain to the coordinator."""
        s = self.session
        members = sorted({*chosen, s.key_id, tv.coordinator_key_id})
        boxes = audience_boxes(tv, members)
        outside = [m for m in members if m not in boxes]
        if outside:
            raise refuse("audience-not-core", "a casus for part of the kern names current "
                         "kern (core) members only", members=outside)
        if len(members) > MAX_AUDIENCE:
            raise refuse("audience-too-large",
                         f"a casus for part of the kern names at most {MAX_AUDIENCE} members")
        return members

    def _intake(self, network: str, intake: Mapping[str, Any]) -> dict[str, Any]:
        value = dict(intake)
        value.setdefault("kind", "intake")
        self.session.refuse_pii(network, value)
        if not isinstance(parse_anonymous_event(value), Intake):
            raise MalformedError("the first event of a case is an intake")
        return value

    async def _new_case(self, network: str, intake: Mapping[str, Any], *,
                        identity: Mapping[str, Mapping[str, Any]], kind: str,
                        audience: Iterable[str] | None = None) -> str:
        s = self.session
        plain = self._intake(network, intake)             # before any request
        tv = await s.trusted(network)
        policy_classes = set(tv.policy["classes"])
        records: dict[str, dict[str, Any]] = {}
        for cls, given in identity.items():
            if cls not in policy_classes:
                raise PolicyViolation(f"class {cls!r} is not a disclosure class of this "
                                      f"network", details={"reason": "class-not-in-policy"})
            records[cls] = identity_plaintext_for(cls, dict(given),
                                                  allowed=policy_classes).to_json()
        if not s.is_core(tv):
            raise PolicyViolation("only core members create cases",
                                  details={"reason": "not-core"})
        members = None if audience is None else self._audience(tv, audience)
        verifier = s.verifier(network, tv)
        with s.state.transaction():
            await verifier.fetch_epochs()          # the newest epoch: never an older one
        epoch = latest_epoch(s.state, network)
        keys = epoch_keys(s.state, network, epoch)
        if keys is None:
            raise ProtocolError("this partner holds no epoch key of the network yet",
                                details={"network": network})
        case, ck = new_id(), CaseKey.generate()
        fields: dict[str, Any] = dict(
            network=network, case=case, owner=s.key_id, acting_user=s.acting_user,
            kind=kind, created=s.stamp(), epoch=epoch, case_key_version=1)
        if members is None:
            fields["wrapped_case_key"] = envelopes.wrap_case_key(keys[0], ck, network=network,
                                                                 case=case, epoch=epoch,
                                                                 version=1)
        else:
            # ADR 0031: sealed to each member, never wrapped under the epoch key.
            fields["audience"] = tuple(members)
            fields["audience_keys"] = tuple(seal_audience(
                audience_boxes(tv, members), ck, network=network, case=case, version=1))
        if kind == "case":
            fields["identity_version"] = 1
            if records:
                fields["classes"] = sorted(records)
        header = CaseHeader(**fields).sign(s.keys.signer)
        event = self._event(network, case, ck, 1, seq=1, prev=None, plaintext=plain)
        class_keys, identity_envs = self.identity.seal(network, case, records, version=1)
        gated = self.identity.gated(network, tv, case, class_keys, version=1)
        if members is not None:
            gated = [g for g in gated if g[0] in members]
        tokens = self._tokens(tv, keys[1], records) if kind == "case" else []
        body: dict[str, Any] = {"header": header, "events": [event]}
        if kind == "case":
            body.update(identity=identity_envs, gated=[g for _, _, g in gated[:GATED_PER_REQUEST]],
                        tokens=tokens)
        # The class keys and the identity are this partner's before the case exists on
        # the server: a lost answer must not lose the only copy of the keys.
        for cls, key in class_keys.items():
            s.state.put_secret("class-key", (network, case, cls, "1"), key.export())
            s.state.put_secret("identity", (network, case, cls), canonical_json(records[cls]))
        await s.conn.post(s.path(network, "/cases"), body)
        with s.state.transaction():
            await verifier.header(header, case)
            await verifier.event(event, case)
            self.identity.note_gated(network, case, gated[:GATED_PER_REQUEST])
        if len(gated) > GATED_PER_REQUEST:
            await self.identity.post_gated(network, case, gated[GATED_PER_REQUEST:])
        return case

    def _event(self, network: str, case: str, key: CaseKey, version: int, *, seq: int,
               prev: str | None, plaintext: Mapping[str, Any]) -> dict[str, Any]:
        s = self.session
        event_id = new_id()
        fields: dict[str, Any] = dict(
            network=network, case=case, event=event_id, author=s.key_id,
            acting_user=s.acting_user, seq=seq, created=s.stamp(),
            case_key_version=version,
            ciphertext=envelopes.encrypt_json(key, dict(plaintext), envelopes.event_context(
                network, case, event_id, version=version)))
        if prev is not None:
            fields["prev"] = prev
        if plaintext.get("kind") == "status" and plaintext.get("status") in ("open", "closed"):
            fields["status"] = plaintext["status"]
        return Event(**fields).sign(s.keys.signer)

    async def widen(self, network: str, case: str, members: Iterable[str], *,
                    reason: str) -> list[str]:
        """Add core members to a subset case's audience (its owner; protocol.md §C.1,
        "Audience"): a new header, signed by this partner, that seals every case-key
        version the case has had to each added member, sent with ``reason`` (PII-guarded;
        the server seals it into one ``audience-widen`` audit entry per added member).
        Gated envelopes of the case's identity follow for the added members the policy
        lets receive a class.  Returns the members added."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        tv = await s.trusted(network)
        await self.feed.pull(network, tv)
        held_env = s.state.get_doc("header", (network, case))
        if held_env is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        held = CaseHeader.from_json(held_env["signed"])
        if held.owner != s.key_id:
            raise refuse("not-case-owner", "only the casus's owner widens its audience")
        if held.audience is None:
            raise refuse("audience-whole-core", "the whole kern reads this casus already")
        added = [m for m in sorted(set(members)) if m not in held.audience]
        if not added:
            raise refuse("audience-nothing-added", "every member named is in the casus's "
                         "audience already")
        boxes = audience_boxes(tv, added)
        outside = [m for m in added if m not in boxes]
        if outside:
            raise refuse("audience-not-core", "a casus is widened to current kern (core) "
                         "members only", members=outside)
        if len(held.audience) + len(added) > MAX_AUDIENCE:
            raise refuse("audience-too-large",
                         f"a casus for part of the kern names at most {MAX_AUDIENCE} members")
        current = int(self._summary(network, case)["version"])
        sealed = list(held.audience_keys or ())
        for version in range(held.case_key_version, current + 1):
            sealed += seal_audience(boxes, s.case_key(network, case, version), network=network,
                                    case=case, version=version)
        fields = {**held_env["signed"], "audience": [*held.audience, *added],
                  "audience_keys": [k.to_json() for k in sealed]}
        header = CaseHeader.from_json(fields).sign(s.keys.signer)
        await s.conn.post(s.path(network, f"/cases/{case}/audience"),
                          {"header": header, "reason": reason})
        with s.state.transaction():
            await s.verifier(network, tv).header(header, case)
        if not held.is_consult:
            await self.identity.backfill(network, tv, case)
        return added

    # ------------------------------------------------------------------ blind indexes

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
        s = self.session
        value = dict(plaintext)
        s.refuse_pii(network, value)
        parsed = parse_anonymous_event(value)
        if parsed.KIND == "intake":
            raise MalformedError("an intake is only the first event of a case")
        tv = await s.trusted(network)
        for attempt in range(CONFLICT_TRIES):
            info = summary(s.state, network, case)
            if info is None or case_key(s.state, network, case, int(info["version"])) is None:
                await self.feed.pull(network, tv)
                info = self._summary(network, case)
            if isinstance(parsed, Action):
                # judged on the case as held now (its intake says whether it is complex)
                self._check_action(network, case, tv, parsed)
            version = int(info["version"])
            key = s.case_key(network, case, version)
            seq = int(info["last_seq"]) + 1
            event = self._event(network, case, key, version, seq=seq,
                                prev=info.get("last_hash"), plaintext=value)
            try:
                await s.conn.post(s.path(network, f"/cases/{case}/events"),
                                  {"event": event})
            except ServerRefused as exc:
                if exc.code == "conflict":
                    self._behind(network, case, exc, held=seq - 1)
                if exc.code == "conflict" and attempt + 1 < CONFLICT_TRIES:
                    await self.feed.pull(network, tv)
                    continue
                raise
            with s.state.transaction():
                await s.verifier(network, tv).event(event, case)
            return seq
        raise ProtocolError("the case kept changing while writing")  # pragma: no cover

    def _behind(self, network: str, case: str, refused: ServerRefused, *, held: int) -> None:
        """A ``conflict`` whose ``details.last_seq`` is below the last event this partner
        holds of the case, verified from this server's feed: the server lost events it had
        served (a restored backup, protocol.md §16.5), ``event-missing``; a rebuild on top
        of it would fork the case's chain."""
        last = refused.details.get("last_seq") if refused.details else None
        if isinstance(last, int) and not isinstance(last, bool) and last < held:
            raise self.session.misbehaving(
                network, "event-missing", f"the server's case ends at event {last}; this "
                f"partner holds it up to event {held}: the server lost events it served",
                case=case, last_seq=last, held=held)

    def _check_action(self, network: str, case: str, tv: TrustView, action: Action) -> None:
        """The writer's side of §7's action rules (every reader judges the action again
        when it folds the case: :func:`schakel.client.fold.judge_action`)."""
        rules = rules_of(tv.policy, tv.kind)
        view = case_view(self.session.state, network, case, rules=rules)
        decision = judge_action(action, case_complex=bool(view and view.state.get("complex")),
                                rules=rules)
        if not decision.allowed:
            raise PolicyViolation(f"refused before sending: {decision.message}",
                                  details={"reason": decision.reason, "early": True})

    async def close(self, network: str, case: str, *, reason: str) -> None:
        """Close the case (a ``status`` event; the reason is PII-guarded)."""
        await self.add_event(network, case, {"kind": "status", "status": "closed",
                                             "reason": reason})

    async def reopen(self, network: str, case: str, *, reason: str) -> None:
        """Reopen a closed case (a ``status`` event; the reason is PII-guarded)."""
        await self.add_event(network, case, {"kind": "status", "status": "open",
                                             "reason": reason})

    # ------------------------------------------------------------------ shares

    async def share(self, network: str, case: str, partner: str, *, reason: str) -> None:
        """Share the case's current case key with ``partner`` (coordinator; flow 6).
        The reason is cleartext the server stores: the PII guard runs on it first."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        tv = await s.trusted(network)
        member = self.case_keys.recipient(tv, partner)
        info = summary(s.state, network, case)
        if info is None or case_key(s.state, network, case, int(info["version"])) is None:
            await self.feed.pull(network, tv)
        info = self._summary(network, case)
        await self.case_keys.share(network, tv, case, member, int(info["version"]), reason=reason)

    async def reshare_history(self, network: str, case: str, member: str, *,
                              reason: str) -> None:
        """Share every earlier case-key version this partner holds with ``member`` (a
        core member that joined after the case was created reads its history)."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        tv = await s.trusted(network)
        recipient = self.case_keys.recipient(tv, member)
        await self.feed.pull(network, tv)
        current = int(self._summary(network, case)["version"])
        held = [v for v in sorted(versions(s.state, network, case))
                if v < current and case_key(s.state, network, case, v) is not None]
        if not held:
            raise ProtocolError("this partner holds no earlier version of the case key",
                                details={"case": case})
        for version in held:
            await self.case_keys.share(network, tv, case, recipient, version, reason=reason)


__all__ = ["Cases"]
