"""Verify what the server hands over, store it, and fold it into case views
(docs/protocol.md §11 flow 2 step 4; ADR 0007 "Verification").

Nothing from the sync feed, ``GET .../cases/{case}`` or ``GET .../epochs/mine`` is stored
before it verified:

* **epoch keys** -- the distribution is signed by the coordinator, names this network
  and epoch, and its sealed entry for this partner opens (recipient = self); an entry
  for an epoch this partner holds is verified the same way and must open to the keys it
  holds (``context-mismatch`` otherwise): a held epoch key is never replaced (§N.9);
* **headers** -- signed by their owner, who held a verified *core* membership when the
  case was created; the wrapped case key opens under the epoch key it names; a later
  header of a held case only as the owner's next identity version (ADR 0011) or as a
  widening of its audience; a subset case's header names this partner when it is a core
  member, and the key sealed to it opens (ADR 0031);
* **events** -- signed by their author, a verified member when it wrote the event (a
  shell partner only on a case shared with it); ``network``/``case`` are the item's;
  ``seq``/``prev`` continue the chain this partner holds (``event-replayed``,
  ``event-reordered``, ``event-missing``); the ciphertext opens under the event's own
  AEAD context with its case-key version (``ciphertext-swapped``); the cleartext status
  agrees with the content;
* **shares** -- signed by the coordinator; the sealed case key opens only for its
  recipient;
* **rekeys** -- signed by the case owner or the coordinator; the new version follows the
  last one and its wrap opens under the epoch it names; a subset case's rekey seals the
  new key inside the case's audience only, never under the epoch key;
* **purges** -- an erasure signed by the held header's owner or the coordinator, a
  rectification by the owner only; an erasure names the held header's identity version,
  a rectification one below it.  Then it is executed: the class keys and plaintext of the
  purged versions are destroyed (:func:`schakel.client.shred.destroy`; ADR 0034).

A ciphertext whose key this partner does not hold yet (a late member's history, a
shell partner before its share) is stored with its signature and chain verified; it is
decrypted -- and a swap caught -- as soon as the key arrives (:func:`_check_version`).

Every failure is recorded and raised through ``misbehaving`` as a
:class:`~schakel.client.errors.ServerMisbehaviour` naming ``what``.

Local documents (all public on the server too):
``header`` (n, case); ``event`` (n, case, seq:010); ``event-id`` (n, event);
``rekey`` (n, case, version:06); ``share`` (n, case, partner, version:06);
``case`` (n, case) a summary (kind, owner, status, last seq and hash, current version and
its epoch); ``epoch`` (n, epoch:06).  Secrets: ``epoch``/``match`` (n, epoch),
``case-key`` (n, case, version).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schakel.protocol import envelopes
from schakel.protocol.crypto import BoxSecretKey, CaseKey, EpochKey, MatchKey, VerifyKey
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, MalformedError, ProtocolError, SignatureError,
)
from schakel.protocol.objects.base import parse_timestamp
from schakel.protocol.objects.cases import (
    CaseHeader, CaseRekey, Event, IdentityPurge, check_event_status, check_replacement,
    check_widening,
    event_hash_of,
)
from schakel.protocol.objects.disclosure import Share
from schakel.protocol.objects.network import EpochKeyDistribution, EpochKeyPayload
from schakel.protocol.pagecheck import CheckedEvent, check_event
from schakel.protocol.objects.plaintext import Action, parse_anonymous_event
from schakel.protocol.policy import Decision, Rules, check_action

from schakel.client.disclosure import rules_of
from schakel.client.errors import NotFound, ServerMisbehaviour
from schakel.client.shred import destroy
from schakel.client.state import LocalState
from schakel.client.trust import TrustView
from schakel.client.views import CaseView, EventView, PolicyBreach


def seq_ref(seq: int) -> str:
    return f"{seq:010d}"


def version_ref(version: int) -> str:
    return f"{version:06d}"


# =========================================================================== keys held


def epoch_keys(state: LocalState, network: str, epoch: int) -> tuple[EpochKey, MatchKey] | None:
    raw = state.get_secret("epoch", (network, str(epoch)))
    match = state.get_secret("match", (network, str(epoch)))
    if raw is None or match is None:
        return None
    return EpochKey(raw), MatchKey(match)


def epochs_held(state: LocalState, network: str) -> list[int]:
    return sorted(int(ref[1]) for ref in state.secret_refs("epoch", (network,)))


def store_epoch(state: LocalState, network: str, epoch: int, keys: tuple[EpochKey, MatchKey],
                created: str) -> None:
    state.put_secret("epoch", (network, str(epoch)), keys[0].export())
    state.put_secret("match", (network, str(epoch)), keys[1].export())
    state.put_doc("epoch", (network, version_ref(epoch)), {"epoch": epoch, "created": created})


def latest_epoch(state: LocalState, network: str) -> int:
    """The newest epoch whose keys this partner holds (0: none)."""
    held = epochs_held(state, network)
    return held[-1] if held else 0


def case_key(state: LocalState, network: str, case: str, version: int) -> CaseKey | None:
    raw = state.get_secret("case-key", (network, case, str(version)))
    return None if raw is None else CaseKey(raw)


def summary(state: LocalState, network: str, case: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = state.get_doc("case", (network, case))
    return value


def versions(state: LocalState, network: str, case: str) -> dict[int, int]:
    """Case-key version -> the epoch wrapping it (the header's version 1 and every rekey)."""
    out: dict[int, int] = {}
    header = state.get_doc("header", (network, case))
    if header is not None:
        out[int(header["signed"]["case_key_version"])] = int(header["signed"]["epoch"])
    for _, env in state.docs("rekey", (network, case)):
        out[int(env["signed"]["case_key_version"])] = int(env["signed"]["epoch"])
    return out


# =========================================================================== verifier


@dataclass
class Verifier:
    """Verifies and stores the objects of one network for one partner (module
    docstring).  ``fetch_case(case)`` answers ``GET .../cases/{case}``;
    ``fetch_epochs()`` re-reads ``GET .../epochs/mine`` (a rekey may name an epoch
    distributed after the last read)."""

    network: str
    tv: TrustView
    state: LocalState
    me: str
    box: BoxSecretKey
    misbehaving: Callable[..., ServerMisbehaviour]
    fetch_case: Callable[[str], Awaitable[Any]]
    fetch_epochs: Callable[[], Awaitable[list[int]]]
    touched: set[str] = field(default_factory=set)
    new_epochs: list[int] = field(default_factory=list)
    _fetching: set[str] = field(default_factory=set)
    _epochs_refetched: bool = False
    #: The sync page being verified (for telling a reordered event from a missing one).
    page: list[Any] = field(default_factory=list)
    _keys: dict[str, VerifyKey] | None = None
    _case_keys: dict[tuple[str, int], CaseKey] = field(default_factory=dict)
    #: Cases whose history this verifier fetched (``GET .../cases/{case}``) while it ran.
    _fetched: set[str] = field(default_factory=set)

    def _verify_keys(self) -> dict[str, VerifyKey]:
        if self._keys is None:
            self._keys = self.tv.verify_keys()
        return self._keys

    def fail(self, what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return self.misbehaving(self.network, what, message, **details)

    # ------------------------------------------------------------------ epochs

    def open_epochs(self, entries: Any) -> list[int]:
        """Open the entries of ``GET .../epochs/mine`` this partner does not hold yet, and
        check the ones it holds against the held keys (threat model LS-12: the honest
        server refuses a second distribution for an epoch, so other keys for a held epoch
        are a lie, refused as such)."""
        new: list[int] = []
        if not isinstance(entries, list):
            raise self.fail("context-mismatch", "epochs/mine did not answer a list")
        coordinator = self.tv.coordinator_keys()
        for entry in entries:
            try:
                epoch = int(entry["epoch"])
                envelope, sealed = entry["distribution"], entry["sealed"]
            except (KeyError, TypeError, ValueError):
                raise self.fail("context-mismatch", "a malformed epoch entry") from None
            held = epoch_keys(self.state, self.network, epoch)
            try:
                dist = EpochKeyDistribution.from_envelope(envelope, coordinator)
            except (SignatureError, MalformedError) as exc:
                raise self.fail("bad-signature", f"epoch {epoch}'s distribution is not signed "
                                f"by the coordinator ({exc.code})", epoch=epoch) from None
            if dist.network != self.network or dist.epoch != epoch or \
                    dist.sealed_for(self.me) != sealed:
                raise self.fail("context-mismatch", f"epoch {epoch}'s entry belongs to another "
                                f"network, epoch or recipient", epoch=epoch)
            try:
                payload = EpochKeyPayload.open(sealed, self.box, network=self.network,
                                               epoch=epoch, recipient=self.me)
            except DecryptionError:
                raise self.fail("ciphertext-swapped", f"epoch {epoch}'s sealed keys do not "
                                f"open with this partner's box key", epoch=epoch) from None
            except (ContextMismatchError, MalformedError):
                raise self.fail("context-mismatch", f"epoch {epoch}'s sealed keys were made "
                                f"for another network, epoch or recipient", epoch=epoch) from None
            if held is not None:
                # A held epoch key is never replaced (§N.9; threat model LS-12): the
                # honest server refuses a second distribution for an epoch, so an entry
                # for a held epoch that opens to other keys is the server's doing.  It is
                # verified like a new one and then only compared, never stored.
                if (held[0].export(), held[1].export()) != (
                        payload.epoch_secret().export(), payload.match_secret().export()):
                    raise self.fail("context-mismatch", f"the server answered other keys for "
                                    f"epoch {epoch}, which this partner holds", epoch=epoch)
                continue
            store_epoch(self.state, self.network, epoch,
                        (payload.epoch_secret(), payload.match_secret()), dist.created)
            new.append(epoch)
            self.new_epochs.append(epoch)
        if new:
            # Rekeys stored before this epoch arrived can be opened now.
            for _, env in self.state.docs("rekey", (self.network,)):
                if env["signed"]["epoch"] in new:
                    self._unwrap_rekey(CaseRekey.from_json(env["signed"]))
            for _, env in self.state.docs("header", (self.network,)):
                if env["signed"]["epoch"] in new and "audience" not in env["signed"]:
                    self._unwrap_header(CaseHeader.from_json(env["signed"]))
        return new

    # ------------------------------------------------------------------ dispatch

    def prefetch(self, items: list[Any]) -> None:
        """Read what verifying ``items`` (a sync page) will look up -- each case's header
        and summary, each event's slot and id -- in a few queries, for the page's
        transaction (:meth:`LocalState.prefetch_docs`).  Only lookups: every item is
        still checked as it is verified, and a malformed one is skipped here."""
        cases: set[str] = set()
        slots: list[tuple[str, ...]] = []
        ids: list[tuple[str, ...]] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("case"), str):
                continue
            cases.add(item["case"])
            envelope = item.get("envelope")
            signed = envelope.get("signed") if isinstance(envelope, dict) else None
            if item.get("kind") != "event" or not isinstance(signed, dict):
                continue
            seq, event_id = signed.get("seq"), signed.get("event")
            if type(seq) is int and 0 < seq < 10**10 and isinstance(event_id, str):
                slots.append((self.network, item["case"], seq_ref(seq)))
                ids.append((self.network, event_id))
        refs = [(self.network, case) for case in sorted(cases)]
        self.state.prefetch_docs("header", refs)
        self.state.prefetch_docs("case", refs)
        self.state.prefetch_docs("event", slots)
        self.state.prefetch_docs("event-id", ids)

    async def item(self, item: Any, checked: CheckedEvent | None = None) -> None:
        """One sync item (``{"cursor", "kind", "case", "envelope"}``); ``checked``: an
        event's :func:`~schakel.protocol.pagecheck.check_event`, when done ahead."""
        try:
            kind, case, envelope = item["kind"], item["case"], item["envelope"]
        except (KeyError, TypeError):
            raise self.fail("context-mismatch", "a malformed sync item") from None
        if kind == "header":
            await self.header(envelope, case)
        elif kind == "event":
            await self.event(envelope, case, item.get("cursor"), checked)
        elif kind == "share":
            await self.share(envelope, case)
        elif kind == "rekey":
            await self.rekey(envelope, case)
        elif kind == "purge":
            await self.purge(envelope, case)
        else:
            raise self.fail("context-mismatch", f"a sync item of unknown kind {kind!r}")
        self.touched.add(case)

    def _context(self, signed: Any, case: str, what: str) -> None:
        if signed.get("network") != self.network or signed.get("case") != case:
            raise self.fail("context-mismatch", f"a {what} names another network or case "
                            f"than the item carrying it", case=case)

    def _peek(self, kind: type[Any], envelope: Any, what: str) -> dict[str, Any]:
        try:
            signed: dict[str, Any] = kind.peek(envelope)
            return signed
        except (MalformedError, SignatureError) as exc:
            raise self.fail("bad-signature", f"a {what} that is not a valid {kind.TYPE} "
                            f"envelope ({exc.code})") from None

    async def ensure_case(self, case: str) -> None:
        """Fetch a case's header, rekeys and events when the header is not held yet (a
        shell partner's history from before its share)."""
        if case in self._fetching or self.state.has_doc("header", (self.network, case)):
            return
        self._fetching.add(case)
        try:
            answer = await self.fetch_case(case)
            await self.case_answer(answer, case)
            self._fetched.add(case)
        finally:
            self._fetching.discard(case)

    async def case_answer(self, answer: Any, case: str) -> None:
        """Ingest a ``GET .../cases/{case}`` answer: header, rekeys, events."""
        if not isinstance(answer, dict) or "header" not in answer:
            raise self.fail("context-mismatch", "a case answer without a header", case=case)
        await self.header(answer["header"], case)
        rekeys = answer.get("rekeys") or []
        for env in sorted(rekeys, key=lambda e: _int_field(e, "case_key_version")):
            await self.rekey(env, case)
        for env in answer.get("events") or []:
            await self.event(env, case)
        self.touched.add(case)

    # ------------------------------------------------------------------ headers

    async def header(self, envelope: Any, case: str) -> None:
        signed = self._peek(CaseHeader, envelope, "case header")
        self._context(signed, case, "case header")
        held = self.state.get_doc("header", (self.network, case))
        if held is not None:
            if held != envelope:
                if case in self._fetched and self._earlier(held, envelope, case):
                    return
                self._replacement(held, envelope, case)
            return
        when = parse_timestamp(signed["created"])
        owner = self.tv.member_at(signed["owner"], when) or self.tv.member(signed["owner"])
        header = self._owners(envelope, owner if owner is not None and owner.ring == "core"
                              else None, case, "a case header")
        if not header.reads(self.me) and self._core():
            # ADR 0031: the server serves a subset case to its audience only; a core
            # member outside it is never served it (a shell partner reads it by a share).
            raise self.fail("context-mismatch", "a subset case's header served to a core "
                            "member its audience does not name", case=case)
        if header.is_subset and header.owner != self.me and case not in self._fetching:
            # A subset case this partner did not hold: it may have been added to the
            # audience after the case began, so its history is read first (ADR 0031).
            await self.ensure_case(case)
            if self.state.has_doc("header", (self.network, case)):
                await self.header(envelope, case)
                return
        self.state.put_doc("header", (self.network, case), envelope)
        self.state.put_doc("case", (self.network, case), {
            "kind": header.kind, "owner": header.owner, "created": header.created,
            "status": "open", "last_seq": 0, "last_hash": None,
            "version": header.case_key_version, "epoch": header.epoch})
        self._unwrap_header(header)

    def _earlier(self, held_envelope: Any, envelope: Any, case: str) -> bool:
        """Whether ``envelope`` is a header the case had before the one this partner
        fetched with its history in this run (a feed item older than the answer of
        ``GET .../cases/{case}``): signed by the owner, naming this partner, with an
        identity version and audience the held header has or exceeds.  Only then is it
        passed over; anything else is judged as a replacement."""
        held = CaseHeader.from_json(held_envelope["signed"])
        new = self._owners(envelope, self.tv.member(held.owner), case, "a case header")
        return ((new.reads(self.me) or not self._core())
                and (new.identity_version or 0) <= (held.identity_version or 0)
                and set(new.audience or ()) <= set(held.audience or ())
                and new.is_subset == held.is_subset)

    def _replacement(self, held_envelope: Any, envelope: Any, case: str) -> None:
        """A header for a case this partner holds a header of: believed only as the
        owner's next identity version (protocol.md §C.1 "Header versions") -- signed by
        the held header's owner, ``identity_version`` exactly the held one + 1, every
        other field but ``classes`` unchanged -- or as a widening of a subset case's
        audience (§C.1 "Audience": every member and sealed key kept, members added).  An
        older version, or a narrower audience, is a header served again after its
        successor (``event-replayed``: a rollback, or a member dropped from the audience),
        a higher one than the next skips a version (``event-missing``); another header of
        the held version, or one that changes what it may not, is ``context-mismatch``."""
        held = CaseHeader.from_json(held_envelope["signed"])
        new = self._owners(envelope, self.tv.member(held.owner), case, "a replacement header")
        if held.audience is not None and new.audience is not None and \
                set(new.audience) != set(held.audience):
            if not set(held.audience) < set(new.audience):
                raise self.fail("event-replayed", "a header whose audience lacks members of "
                                "the held one: an older header served again, or a member "
                                "dropped from the case's audience", case=case)
            try:
                check_widening(held, new)
            except ContextMismatchError as exc:
                raise self.fail("context-mismatch", f"the server answered another header for a "
                                f"case this partner holds: {exc.message}", case=case) from None
            self.state.put_doc("header", (self.network, case), envelope)
            return
        version, before = new.identity_version or 0, held.identity_version or 0
        if version == before:
            raise self.fail("context-mismatch", "the server answered another header for an "
                            "identity version this partner holds", case=case)
        if version < before:
            raise self.fail("event-replayed", f"a header of identity version {version} after "
                            f"version {before}: an older header served again", case=case,
                            identity_version=version)
        if version != before + 1:
            raise self.fail("event-missing", f"a header of identity version {version} follows "
                            f"version {before}", case=case, identity_version=version)
        try:
            if check_replacement(held, new) != "identity":
                raise ContextMismatchError("a header that changes its audience as well")
        except ContextMismatchError as exc:
            raise self.fail("context-mismatch", f"the server answered another header for a "
                            f"case this partner holds: {exc.message}", case=case) from None
        self.state.put_doc("header", (self.network, case), envelope)

    def _owners(self, envelope: Any, owner: Any, case: str, what: str) -> CaseHeader:
        """``envelope`` as a header signed by ``owner`` (a verified member; None when the
        owner is none the header may have): ``bad-signature`` otherwise."""
        if owner is None:
            raise self.fail("bad-signature", f"{what} whose owner is not a verified (core) "
                            f"member", case=case)
        try:
            header: CaseHeader = CaseHeader.from_envelope(envelope, [owner.sign])
        except (SignatureError, MalformedError) as exc:
            raise self.fail("bad-signature", f"{what} that does not verify against its owner's "
                            f"membership ({exc.code})", case=case) from None
        return header

    def _unwrap_header(self, header: CaseHeader) -> None:
        if header.wrapped_case_key is None:      # a subset case (CaseHeader.check)
            self._open_sealed(header.case, header.keys_for(self.me), "a case header")
            return
        keys = epoch_keys(self.state, self.network, header.epoch)
        if keys is None or self._case_key(header.case,
                                    header.case_key_version) is not None:
            return
        try:
            key = envelopes.unwrap_case_key(keys[0], header.wrapped_case_key,
                                            network=self.network, case=header.case,
                                            epoch=header.epoch, version=header.case_key_version)
        except (DecryptionError, MalformedError):
            raise self.fail("ciphertext-swapped", "a case header's wrapped case key does not "
                            "open under its epoch key", case=header.case) from None
        self._got_key(header.case, header.case_key_version, key)

    def _open_sealed(self, case: str, entries: Any, what: str) -> None:
        """Open the case keys sealed to this partner (a subset case's header or rekey,
        ADR 0031) that it does not hold yet: ``ciphertext-swapped`` when one does not open
        with its box key, ``context-mismatch`` when one was made for another case, version
        or member."""
        for entry in entries:
            if self._case_key(case, entry.version) is not None:
                continue
            try:
                key = entry.open(self.box, network=self.network, case=case)
            except DecryptionError:
                raise self.fail("ciphertext-swapped", f"{what}'s sealed case key does not open "
                                f"with this partner's box key", case=case) from None
            except (ContextMismatchError, MalformedError):
                raise self.fail("context-mismatch", f"{what}'s sealed case key was made for "
                                f"another case, version or member", case=case) from None
            self._got_key(case, entry.version, key)

    # ------------------------------------------------------------------ events

    def _page_event(self, case: str, seq: int) -> bool:
        """Whether the page being verified holds an event of ``case`` with ``seq``."""
        return any(it.get("kind") == "event" and it.get("case") == case
                   and isinstance(it.get("envelope"), dict)
                   and isinstance(it["envelope"].get("signed"), dict)
                   and it["envelope"]["signed"].get("seq") == seq for it in self.page)

    async def event(self, envelope: Any, case: str, cursor: str | None = None,
                    checked: CheckedEvent | None = None) -> None:
        """One event (``checked``: :func:`~schakel.protocol.pagecheck.check_event` of this
        envelope, done ahead of the fold; done here when None)."""
        if checked is None:
            checked = check_event(envelope, self._verify_keys())
        if checked.shape is not None:
            raise self.fail("bad-signature", f"a event that is not a valid {Event.TYPE} "
                            f"envelope ({checked.shape})")
        signed: dict[str, Any] = envelope["signed"]
        self._context(signed, case, "event")
        await self.ensure_case(case)
        if not self.state.has_doc("header", (self.network, case)):
            raise self.fail("event-missing", "an event of a case whose header the server "
                            "does not answer", case=case)
        seq, event_id = int(signed["seq"]), signed["event"]
        held = self.state.get_doc("event", (self.network, case, seq_ref(seq)))
        seen = self.state.get_doc("event-id", (self.network, event_id))
        if held is not None and held == envelope:
            # The same event again.  Honest only when it was first fetched with its case's
            # history (GET .../cases/{case}: no feed cursor) and now comes in the feed once.
            # The server never gives one event two feed cursors, so a second feed delivery
            # is a replay.
            if cursor is None or seen is None:
                return
            if seen.get("cursor") is None:
                self.state.put_doc("event-id", (self.network, event_id), {**seen, "cursor": cursor})
                return
            if seen["cursor"] == cursor:
                return                                # the very item again (a retried page)
            raise self.fail("event-replayed", "an event this partner already holds, delivered "
                            "again under another feed position", case=case, seq=seq)
        if seen is not None or held is not None:
            raise self.fail("event-replayed", "an event with a seq or id this partner already "
                            "holds", case=case, seq=seq)
        self._author(signed, case)
        # check_event verified with the key whose id the event names as its author, and a
        # membership's member id is its signing key's id (Membership.check): the author's
        # membership accepted at the event's time holds that very key.
        event = checked.event
        if checked.signature is not None or event is None:
            raise self.fail("bad-signature", f"an event that does not verify against its "
                            f"author's membership ({checked.signature})", case=case, seq=seq)
        info = summary(self.state, self.network, case) or {}
        last_seq = int(info.get("last_seq", 0))
        if seq > last_seq + 1:
            if any(self._page_event(case, missing) for missing in range(last_seq + 1, seq)):
                raise self.fail("event-reordered", f"event {seq} comes before event "
                                f"{last_seq + 1} of the same case", case=case, seq=seq)
            raise self.fail("event-missing", f"event {seq} follows event {last_seq}: events "
                            f"are missing", case=case, seq=seq)
        # The chain link (protocol.md §C.3, as check_link): the event follows the last one
        # held and its prev is that event's hash, kept in the case summary when the held
        # event was stored (seq 1: no prev, and the summary holds none).
        if seq != last_seq + 1 or event.prev != info.get("last_hash"):
            raise self.fail("event-reordered", "an event's prev is not the hash of the event "
                            "before it", case=case, seq=seq)
        key = self._case_key(case, event.case_key_version)
        if key is not None:
            self._decrypt(event, key)
        # The envelope verified (schema and signature): its canonical bytes, serialised
        # once by check_event, are the stored document and what the next event's prev
        # must hash to.
        canonical = checked.canonical
        self.state.put_canonical("event", (self.network, case, seq_ref(seq)), canonical)
        self.state.put_doc("event-id", (self.network, event_id),
                           {"case": case, "seq": seq, "cursor": cursor})
        info.update(last_seq=seq, last_hash=b64e(event_hash_of(canonical)))
        if event.status in ("open", "closed"):
            info["status"] = event.status
        self.state.put_doc("case", (self.network, case), info)

    def _author(self, signed: dict[str, Any], case: str) -> Any:
        try:
            when = parse_timestamp(signed["created"])
        except (MalformedError, KeyError):
            raise self.fail("bad-signature", "an event without a valid time", case=case) from None
        author = self.tv.member_at(signed["author"], when)
        if author is None:
            raise self.fail("bad-signature", "an event whose author held no verified "
                            "membership when it was written", case=case)
        if author.ring == "shell" and author.key_id != self.me:
            me = self.tv.member(self.me)
            i_am_core = (me is not None and me.ring == "core") or \
                self.tv.is_coordinator(self.me)
            # A core reader sees every share, so it checks the shell author had one; a
            # shell reader sees only its own shares and cannot check another's.
            if i_am_core and not self.state.docs("share", (self.network, case,
                                                           author.key_id)):
                raise self.fail("bad-signature", "an event by a shell partner on a case not "
                                "shared with it", case=case)
        return author

    def _decrypt(self, event: Event, key: CaseKey) -> dict[str, Any]:
        ctx = envelopes.event_context(self.network, event.case, event.event,
                                      version=event.case_key_version)
        try:
            plain = envelopes.decrypt_json(key, event.ciphertext, ctx)
        except (DecryptionError, MalformedError):
            raise self.fail("ciphertext-swapped", "an event's ciphertext does not open under "
                            "its own context", case=event.case, seq=event.seq) from None
        try:
            check_event_status(event, parse_anonymous_event(plain))
        except (MalformedError, ContextMismatchError):
            raise self.fail("context-mismatch", "an event's content does not fit its "
                            "cleartext header (kind or status)", case=event.case,
                            seq=event.seq) from None
        value: dict[str, Any] = plain
        return value

    def _check_version(self, case: str, version: int, key: CaseKey) -> None:
        """A key arrived: decrypt the events stored under it before it (verification
        deferred until now)."""
        for _, env in self.state.docs("event", (self.network, case)):
            if env["signed"]["case_key_version"] == version:
                self._decrypt(Event.from_json(env["signed"]), key)

    def _got_key(self, case: str, version: int, key: CaseKey) -> None:
        self._check_version(case, version, key)
        self.state.put_secret("case-key", (self.network, case, str(version)), key.export())
        self._case_keys[(case, version)] = key

    def _case_key(self, case: str, version: int) -> CaseKey | None:
        """The case key this partner holds, remembered for this verifier's life (one
        sync: a page reads the keys of the cases its events name, and the next page the
        same keys again).  Keys are only ever added while a verifier runs; one that a
        later page's refusal rolls back dies with the verifier, which the refusal ends."""
        held = self._case_keys.get((case, version))
        if held is None:
            held = case_key(self.state, self.network, case, version)
            if held is not None:
                self._case_keys[(case, version)] = held
        return held

    # ------------------------------------------------------------------ shares

    async def share(self, envelope: Any, case: str) -> None:
        signed = self._peek(Share, envelope, "share")
        self._context(signed, case, "share")
        ref = (self.network, case, str(signed["partner"]),
               version_ref(_int_field(envelope, "case_key_version")))
        held = self.state.get_doc("share", ref)
        if held is not None and held == envelope:
            return
        try:
            share = Share.from_envelope(envelope, self.tv.coordinator_keys())
        except (SignatureError, MalformedError) as exc:
            raise self.fail("bad-signature", f"a share that is not signed by the coordinator "
                            f"({exc.code})", case=case) from None
        if share.partner == self.me:
            await self.ensure_case(case)
            try:
                key = share.open_case_key(self.box)
            except DecryptionError:
                raise self.fail("ciphertext-swapped", "a share's sealed case key does not open "
                                "with this partner's box key", case=case) from None
            except (ContextMismatchError, MalformedError):
                raise self.fail("context-mismatch", "a share's sealed case key was made for "
                                "another case, version or partner", case=case) from None
            if self._case_key(case, share.case_key_version) is None:
                self._got_key(case, share.case_key_version, key)
        self.state.put_doc("share", ref, envelope)

    # ------------------------------------------------------------------ rekeys

    async def rekey(self, envelope: Any, case: str) -> None:
        signed = self._peek(CaseRekey, envelope, "case rekey")
        self._context(signed, case, "case rekey")
        await self.ensure_case(case)
        header = self.state.get_doc("header", (self.network, case))
        if header is None:
            raise self.fail("event-missing", "a rekey of a case whose header the server does "
                            "not answer", case=case)
        version = int(signed["case_key_version"])
        held = self.state.get_doc("rekey", (self.network, case, version_ref(version)))
        if held is not None:
            if held == envelope:
                return
            raise self.fail("event-replayed", "another rekey for a case-key version this "
                            "partner holds", case=case, version=version)
        owner = self.tv.member(header["signed"]["owner"])
        keys: list[VerifyKey] = self.tv.coordinator_keys()
        if owner is not None:
            keys.append(owner.sign)
        try:
            rekey = CaseRekey.from_envelope(envelope, keys)
        except (SignatureError, MalformedError) as exc:
            raise self.fail("bad-signature", f"a rekey not signed by the case owner or the "
                            f"coordinator ({exc.code})", case=case) from None
        current = max(versions(self.state, self.network, case), default=1)
        if version != current + 1:
            raise self.fail("event-missing", f"rekey to version {version} follows version "
                            f"{current}", case=case, version=version)
        audience = header["signed"].get("audience")
        if (audience is None) != (rekey.audience_keys is None):
            raise self.fail("context-mismatch", "a rekey that wraps a subset case's key under "
                            "the epoch key, or seals a whole-core case's key to members",
                            case=case, version=version)
        if audience is not None and not rekey.recipients <= set(audience):
            raise self.fail("context-mismatch", "a rekey seals a subset case's key to a partner "
                            "outside its audience", case=case, version=version)
        self.state.put_doc("rekey", (self.network, case, version_ref(version)), envelope)
        info = summary(self.state, self.network, case) or {}
        info.update(version=version, epoch=rekey.epoch)
        self.state.put_doc("case", (self.network, case), info)
        if rekey.audience_keys is None and \
                epoch_keys(self.state, self.network, rekey.epoch) is None and \
                not self._epochs_refetched and self._core():
            self._epochs_refetched = True
            await self.fetch_epochs()            # opens it (and this rekey) if it is ours
        self._unwrap_rekey(rekey)

    # ------------------------------------------------------------------ purges

    async def purge(self, envelope: Any, case: str) -> None:
        """An ``identity-purge`` (protocol.md §C.12): verified against the held header --
        signed by its owner, or for an erasure by a coordinator key (``bad-signature``
        otherwise); an erasure of the held ``identity_version``, a rectification of one
        below it (``context-mismatch``) -- then executed on this partner's local state,
        whoever it is: the owner destroys its own source keys too."""
        signed = self._peek(IdentityPurge, envelope, "identity purge")
        self._context(signed, case, "identity purge")
        await self.ensure_case(case)
        held = self.state.get_doc("header", (self.network, case))
        if held is None:
            raise self.fail("context-mismatch", "a purge of a case without a header", case=case)
        header = CaseHeader.from_json(held["signed"])
        owner = self.tv.member(header.owner)
        keys = [owner.sign] if owner is not None else []
        if signed.get("kind") == "erasure":
            keys += self.tv.coordinator_keys()
        try:
            purge = IdentityPurge.from_envelope(envelope, keys)
        except (SignatureError, MalformedError) as exc:
            raise self.fail("bad-signature", f"an identity purge signed by neither the case's "
                            f"owner nor, for an erasure, the coordinator ({exc.code})",
                            case=case) from None
        current = header.identity_version or 0
        if (purge.is_erasure and purge.identity_version != current) or (
                not purge.is_erasure and purge.identity_version >= current):
            raise self.fail("context-mismatch", f"a {purge.kind} of identity version "
                            f"{purge.identity_version} does not fit the held version {current}",
                            case=case)
        destroy(self.state, self.network, case, purge.identity_version,
                erased=purge.is_erasure)

    def _core(self) -> bool:
        me = self.tv.member(self.me)
        return (me is not None and me.current and me.ring == "core") or \
            self.tv.is_coordinator(self.me)

    def _unwrap_rekey(self, rekey: CaseRekey) -> None:
        if rekey.audience_keys is not None:
            mine = rekey.key_for(self.me)
            self._open_sealed(rekey.case, () if mine is None else (mine,), "a rekey")
            return
        keys = epoch_keys(self.state, self.network, rekey.epoch)
        if keys is None or self._case_key(rekey.case,
                                    rekey.case_key_version) is not None:
            return
        try:
            key = rekey.unwrap(keys[0])
        except (DecryptionError, MalformedError):
            raise self.fail("ciphertext-swapped", "a rekey's wrapped case key does not open "
                            "under its epoch key", case=rekey.case) from None
        self._got_key(rekey.case, rekey.case_key_version, key)


def _int_field(envelope: Any, name: str) -> int:
    try:
        return int(envelope["signed"][name])
    except (KeyError, TypeError, ValueError):
        return 0


# =========================================================================== folding

INTAKE_FIELDS = ("age_band", "neighbourhood", "domains", "severity", "care_status", "source",
                 "complex", "summary")


def empty_state() -> dict[str, Any]:
    return {"analysis": [], "actions": [], "feedback": [], "notes": [], "statuses": []}


def fold_event(state: dict[str, Any], view: EventView) -> None:
    """Fold one readable event into the anonymous state (design §3 "Case record")."""
    plain = view.plaintext
    if plain is None:
        return
    kind = plain.get("kind")
    meta = {"seq": view.seq, "author": view.author, "created": view.created}
    body = {k: v for k, v in plain.items() if k != "kind"}
    if kind == "intake":
        for name in INTAKE_FIELDS:
            if name in plain:
                state[name] = plain[name]
    elif kind == "analysis":
        state["analysis"].append({**meta, **body})
        for name in ("domains", "severity"):
            if name in plain:
                state[name] = plain[name]
    elif kind == "action":
        state["actions"].append({**meta, **body})
    elif kind == "feedback":
        state["feedback"].append({**meta, **body})
    elif kind == "note":
        state["notes"].append({**meta, **body})
    elif kind == "status":
        state["statuses"].append({**meta, **body})
        if plain.get("status") == "referred":
            state["referred"] = True


def names(state: LocalState, network: str) -> dict[str, str]:
    """Key id -> organisation name, from the verified memberships held."""
    out: dict[str, str] = {}
    for _, env in state.docs("membership", (network,)):
        out[env["signed"]["member"]] = env["signed"]["name"]
    return out


@dataclass(frozen=True)
class RulesOverTime:
    """A network's rules under each policy version this partner verified (protocol.md
    §N.3): ``versions`` is ``(in force from, rules)``, the genesis's first."""

    versions: tuple[tuple[datetime, Rules], ...]

    def at(self, moment: datetime) -> Rules:
        """The rules in force at ``moment`` (the genesis's for anything earlier)."""
        current = self.versions[0][1]
        for since, rules in self.versions[1:]:
            if since <= moment:
                current = rules
        return current


def network_rules(state: LocalState, network: str) -> RulesOverTime:
    """The network's rules from the genesis and the policy versions this partner verified
    and kept (a header is stored only after its network's genesis verified, so a held case
    always has one; a policy version only after it verified, trust.py)."""
    genesis = state.get_doc("genesis", (network,))
    if genesis is None:
        raise NotFound(f"network {network} was never synced", details={"network": network})
    kind = genesis["signed"]["kind"]
    versions = [(when(genesis["signed"]["created"]), rules_of(genesis["signed"]["policy"], kind))]
    for _, env in state.docs("policy", (network,)):        # by version (the ref sorts so)
        versions.append((when(env["signed"]["issued"]), rules_of(env["signed"]["policy"], kind)))
    return RulesOverTime(tuple(versions))


def judge_action(action: Action, *, case_complex: bool, rules: Rules) -> Decision:
    """``schakel.protocol.policy.check_action`` on one action: what the writer's client checks
    before it sends an action and every reader's client on every action it folds
    (docs/protocol.md §7), with the case's complexity as folded before the action."""
    return check_action(help_type=action.help_type,
                        informal_not_possible=action.informal_not_possible,
                        supporting_professional=action.supporting_professional,
                        case_complex=case_complex, rules=rules)


def _readable(key: CaseKey | None, network: str, case: str, ev: dict[str, Any],
              version: int) -> tuple[dict[str, Any] | None, Action | None]:
    """An event's plaintext, and for an action its parsed form (the rules judge it), or
    (None, None) when this partner does not hold the key.  Both were verified at sync; a
    local file changed since reads as unreadable."""
    if key is None:
        return None, None
    try:
        plaintext: dict[str, Any] = envelopes.decrypt_json(
            key, ev["ciphertext"], envelopes.event_context(network, case, ev["event"],
                                                           version=version))
        if plaintext.get("kind") != "action":
            return plaintext, None
        action = parse_anonymous_event(plaintext)
    except ProtocolError:
        return None, None
    return plaintext, action if isinstance(action, Action) else None


def case_view(state: LocalState, network: str, case: str,
              member_names: dict[str, str] | None = None,
              rules: Rules | RulesOverTime | None = None) -> CaseView | None:
    """The case as this partner verified it; events decrypted with the keys it holds.
    Every readable action is judged against the network's rules (``rules``, default:
    those of the policy version in force when the action was written); one that breaks
    them is marked and listed in ``breaches``, never left out (docs/protocol.md §7)."""
    header = state.get_doc("header", (network, case))
    info = summary(state, network, case)
    if header is None or info is None:
        return None
    member_names = names(state, network) if member_names is None else member_names
    rules = network_rules(state, network) if rules is None else rules
    signed = header["signed"]
    keys: dict[int, CaseKey | None] = {}
    folded = empty_state()
    events: list[EventView] = []
    breaches: list[PolicyBreach] = []
    for _, env in state.docs("event", (network, case)):
        ev = env["signed"]
        version = int(ev["case_key_version"])
        if version not in keys:
            keys[version] = case_key(state, network, case, version)
        plaintext, parsed = _readable(keys[version], network, case, ev, version)
        view = EventView(seq=int(ev["seq"]), event=ev["event"], author=ev["author"],
                         author_name=member_names.get(ev["author"], ev["author"]),
                         created=ev["created"], plaintext=plaintext,
                         case_key_version=version, status=ev.get("status"))
        if parsed is not None:
            in_force = rules.at(when(view.created)) if isinstance(rules, RulesOverTime) else rules
            decision = judge_action(parsed, case_complex=bool(folded.get("complex")),
                                    rules=in_force)
            if not decision.allowed:
                view.breach = decision.reason
                breaches.append(PolicyBreach(seq=view.seq, event=view.event,
                                             author=view.author, author_name=view.author_name,
                                             reason=decision.reason, message=decision.message))
        fold_event(folded, view)
        events.append(view)
    current = int(info.get("version", signed["case_key_version"]))
    return CaseView(network=network, case=case, kind=signed["kind"], owner=signed["owner"],
                    status=str(info.get("status", "open")), created=signed["created"],
                    readable=case_key(state, network, case, current) is not None,
                    state=folded, events=events, case_key_version=current,
                    epoch=int(info.get("epoch", signed["epoch"])), breaches=breaches,
                    audience=tuple(signed["audience"]) if "audience" in signed else None)


def when(value: str) -> datetime:
    return parse_timestamp(value)


__all__ = ["Verifier", "case_view", "fold_event", "epoch_keys", "epochs_held", "store_epoch",
           "latest_epoch", "case_key", "summary", "versions", "seq_ref", "version_ref", "names",
           "RulesOverTime", "network_rules", "judge_action"]
