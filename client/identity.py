"""The identity of the cases this partner owns: sealing, backfill and rotation (design §3;
protocol.md §3.4, §C.1, §C.4, §C.5; ADR 0007, ADR 0011).

The owner is the only party that holds a case's class keys as their source: every other
holder got a copy through a release.  :class:`Identity` does what only the owner can do
with them, and reads what this partner holds:

* **seal** -- one class key per disclosure class, an identity record per class under it
  (AEAD context ``{layer: identity, class, version}``), and gated envelopes of each class
  key (:meth:`Identity.gated`);
* **backfill** -- at identity version 1, a gated envelope for every current member the
  policy could ever let receive a class who has none yet (a member who joined later); from
  version 2 on only for the members the server names as holding a basis now
  (``GET .../cases/{case}/holders``), as at the rotation that made the version;
* **rotate** (:meth:`Identity.rotate`) -- new class keys, the identity sealed
  again under them in a replacement header with the next ``identity_version``, and gated
  envelopes only for the members who hold a basis now.  The owner does it as a duty when
  a purge instruction about one of its open cases says that a recipient lost its basis (a
  consent revoked, a member removed): the old class keys that recipient may have kept
  open nothing sealed afterwards.

A rotation is prepared once and kept (``identity-rotation`` doc, the new class keys as
secrets) before it is sent, so a retry after a lost answer sends the same request, which
the server answers with its first answer.

:meth:`Identity.get` is the identity this partner holds for a case, as its owner or
through a release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schakel.protocol import envelopes
from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import ClassKey
from schakel.protocol.errors import ContextMismatchError, MalformedError, ProtocolError
from schakel.protocol.objects.cases import CaseHeader, GatedEnvelope, IdentityRecord
from schakel.protocol.objects.disclosure import PurgeInstruction
from schakel.protocol.objects.plaintext import identity_plaintext_for

from schakel.client.errors import ServerRefused
from schakel.client.feed import Feed
from schakel.client.fold import summary, version_ref
from schakel.client.purge import purge_pages
from schakel.client.session import Session
from schakel.client.shred import purged
from schakel.client.trust import MemberInfo, TrustView
from schakel.client.views import DutyReport
from schakel.client.wire import refuse

#: Most gated envelopes in one request (POST .../cases, .../header and .../gated).
GATED_PER_REQUEST = 64
#: Purge instructions after which the owner rotates the case's class keys: the recipient
#: lost its basis but may have kept the keys (ADR 0011).  ``bemoeizorg-expired`` is not
#: one -- the role is a standing basis -- nor ``retention``, which destroys the identity.
ROTATE_AFTER = frozenset({"consent-revoked", "membership-removed"})

Gated = tuple[str, str, dict[str, Any]]      #: (recipient, class, gated-envelope JSON)


class Identity:
    """Sealing, backfill and rotation of owned cases' identity, and the identity this
    partner holds (module docstring)."""

    def __init__(self, session: Session, feed: Feed) -> None:
        self.session, self.feed = session, feed

    def get(self, network: str, case: str) -> dict[str, dict[str, Any]]:
        """The identity this partner holds for ``case`` (as owner or through a
        release) that this session's acting user may read: class -> plaintext.  Purged
        or expired classes are gone; the classes :meth:`withheld` names are left out."""
        state = self.session.state
        hidden = set(self.withheld(network, case))
        out: dict[str, dict[str, Any]] = {}
        for ref in state.secret_refs("identity", (network, case)):
            value = state.get_secret("identity", ref)
            if value is not None and ref[2] not in hidden:
                out[ref[2]] = parse_json(value)
        return out

    def withheld(self, network: str, case: str) -> list[str]:
        """The classes of ``case`` this partner holds that this session's acting user may
        not read (protocol.md §N.4, "Users"): when the partner's membership lists its
        users, its keys hold what was released to (or sealed by) the organisation, and
        the acting user's party decides what it sees -- an informal acting user the
        policy's informal classes only, an unlisted one none.  A membership without users
        withholds nothing: the organisation is one party, and what it holds beyond that
        party's classes it sealed itself as the case's owner.  Enforced by this library,
        not by the keys (ADR 0032)."""
        s = self.session
        held = sorted({ref[2] for ref in s.state.secret_refs("identity", (network, case))})
        if not held:
            return []
        tv = s.local_trust(network)
        me = tv.member(s.key_id)
        if me is None or me.users is None:
            return []
        party = me.party_of(s.acting_user)
        if party == "formal":
            return []
        allowed = set(tv.policy.get("informal_classes", [])) if party == "informal" else set()
        return [cls for cls in held if cls not in allowed]

    # ------------------------------------------------------------------ sealing

    def seal(self, network: str, case: str, records: Mapping[str, Any], *,
             version: int) -> tuple[dict[str, ClassKey], list[dict[str, Any]]]:
        """A fresh class key per class and the owner's identity record of each under it."""
        class_keys = {cls: ClassKey.generate() for cls in records}
        signed = [IdentityRecord(network=network, case=case, class_=cls, version=version,
                                 ciphertext=envelopes.encrypt_json(
                                     class_keys[cls], records[cls],
                                     envelopes.identity_context(network, case, cls,
                                                                version=version)),
                                 ).sign(self.session.keys.signer)
                  for cls in sorted(records)]
        return class_keys, signed

    @staticmethod
    def _could_receive(tv: TrustView, member: MemberInfo, cls: str) -> bool:
        """Whether the policy could ever let ``member`` receive class ``cls`` (design §5:
        informal parties the informal classes; formal parties all but a restricted class
        without its role; bemoeizorg role-holders every class in an oggz network)."""
        policy = tv.policy
        if tv.kind == "oggz" and policy.get("bemoeizorg", {}).get("enabled") and \
                member.has_role("bemoeizorg") and member.party == "formal":
            return True
        if member.party == "informal":
            return cls in policy.get("informal_classes", [])
        role = policy.get("restricted", {}).get(cls)
        return role is None or member.has_role(role)

    def gated(self, network: str, tv: TrustView, case: str, class_keys: Mapping[str, ClassKey],
              *, version: int, skip: Iterable[tuple[str, str]] = (),
              holders: Mapping[str, frozenset[str]] | None = None) -> list[Gated]:
        """(recipient, class, gated-envelope) for every current member that could ever
        receive each class -- with ``holders``, only those of them that hold a basis for
        it now; for a subset case whose header this partner holds, only members of its
        audience (ADR 0031) -- core members first (they fit in the case's own request)."""
        members = sorted(tv.members(), key=lambda m: (m.ring != "core", m.key_id))
        header = self.session.state.get_doc("header", (network, case))
        audience = None if header is None else header["signed"].get("audience")
        if audience is not None:
            members = [m for m in members if m.key_id in audience]
        done = set(skip)
        out = []
        for m in members:
            for cls in sorted(class_keys):
                if (m.key_id, cls) in done or not self._could_receive(tv, m, cls):
                    continue
                if holders is not None and cls not in holders.get(m.key_id, ()):
                    continue
                context = envelopes.GateContext(network=network, case=case, cls=cls,
                                                version=version, recipient=m.key_id)
                blob = envelopes.make_gated(tv.server_gate, m.box, class_keys[cls], context)
                env = GatedEnvelope(network=network, case=case, class_=cls, version=version,
                                    recipient=m.key_id, blob=blob).to_json()
                out.append((m.key_id, cls, env))
        return out

    def note_gated(self, network: str, case: str, gated: Iterable[Gated]) -> None:
        for recipient, cls, env in gated:
            ref = (network, case, recipient, cls, version_ref(int(env["version"])))
            self.session.state.put_doc("gated", ref, {"stored": True})

    async def post_gated(self, network: str, case: str, gated: list[Gated]) -> None:
        s = self.session
        for i in range(0, len(gated), GATED_PER_REQUEST):
            chunk = gated[i:i + GATED_PER_REQUEST]
            await s.conn.post(s.path(network, f"/cases/{case}/gated"),
                              {"gated": [g for _, _, g in chunk]})
            self.note_gated(network, case, chunk)

    def _class_keys(self, network: str, case: str, version: int) -> dict[str, ClassKey]:
        """The class keys of ``version`` this partner holds for ``case``."""
        s = self.session
        out: dict[str, ClassKey] = {}
        for ref in s.state.secret_refs("class-key", (network, case)):
            raw = s.state.get_secret("class-key", ref)
            if raw is not None and int(ref[3]) == version:
                out[ref[2]] = ClassKey(raw)
        return out

    async def _holders(self, network: str, case: str) -> dict[str, frozenset[str]]:
        """Who holds a basis for which classes of ``case`` now, as the server decides it
        (``GET .../cases/{case}/holders``; the owner only).  Sealing stays limited to
        verified current members the policy could let receive a class (:meth:`gated`)."""
        s = self.session
        answer = await s.conn.get(s.path(network, f"/cases/{case}/holders"))
        with s.verifying(network, case=case):
            if answer["case"] != case:
                raise ContextMismatchError("the server answered the holders of another case")
            out: dict[str, frozenset[str]] = {}
            for item in answer["holders"]:
                partner, classes = item["partner"], item["classes"]
                if not isinstance(partner, str) or not isinstance(classes, list) or \
                        not all(isinstance(c, str) for c in classes):
                    raise MalformedError("a holder without a partner or classes")
                out[partner] = frozenset(classes)
        return out

    # ------------------------------------------------------------------ backfill

    async def backfill_duty(self, network: str, tv: TrustView, report: DutyReport) -> None:
        """Gated envelopes of each owned case's current identity version for the members
        who should have one and have none yet (module docstring)."""
        s = self.session
        for ref, info in s.state.docs("case", (network,)):
            case = ref[1]
            if info.get("owner") != s.key_id or info.get("kind") != "case":
                continue
            if await self.backfill(network, tv, case):
                report.backfilled.append(case)

    async def backfill(self, network: str, tv: TrustView, case: str) -> bool:
        """Gated envelopes of an owned case's current identity version for the members who
        should have one and have none yet (e.g. members just added to a subset case's
        audience); whether any were sent."""
        s = self.session
        version = s.header(network, case).identity_version or 1
        class_keys = self._class_keys(network, case, version)
        if not class_keys:
            return False
        done = {(r[2], r[3]) for r, _ in s.state.docs("gated", (network, case))
                if int(r[4]) == version}
        holders = await self._holders(network, case) if version > 1 else None
        missing = self.gated(network, tv, case, class_keys, version=version, skip=done,
                             holders=holders)
        if missing:
            await self.post_gated(network, case, missing)
        return bool(missing)

    # ------------------------------------------------------------------ rotation

    async def rotate(self, network: str, case: str, *,
                     identity: Mapping[str, Mapping[str, Any]] | None = None) -> int:
        """Seal ``case``'s identity under new class keys (ADR 0011): a replacement header
        with the next ``identity_version``, a new identity record per class, and gated
        envelopes only for the members who hold a basis now.  ``identity`` (class ->
        fields) replaces the named classes and may add classes; the others are sealed
        again as this owner holds them.  Returns the new identity version.

        Run as a duty after a recipient of the case's identity lost its basis; the owner
        may also call it to correct the identity (a new address)."""
        s = self.session
        tv = await s.trusted(network)
        await self.feed.pull(network, tv)
        if identity and s.state.get_doc("identity-rotation", (network, case)) is not None:
            await self._rotate_identity(network, tv, case)    # the one prepared before first
        return await self._rotate_identity(network, tv, case, identity=identity)

    async def _rotate_identity(self, network: str, tv: TrustView, case: str, *,
                               identity: Mapping[str, Mapping[str, Any]] | None = None) -> int:
        s = self.session
        pending = s.state.get_doc("identity-rotation", (network, case))
        if pending is None:
            pending = await self._prepare_rotation(network, tv, case, identity)
        header = pending["body"]["header"]
        version = int(header["signed"]["identity_version"])
        try:
            answer = await s.conn.post(s.path(network, f"/cases/{case}/header"),
                                       pending["body"])
        except ServerRefused as exc:
            if exc.status < 500:
                # Refused for good (the case closed, another version is current): the new
                # keys were never used, so they go with the request.
                self._drop_rotation(network, case, version)
            raise
        with s.verifying(network, case=case):
            if (answer["case"], answer["identity_version"]) != (case, version):
                raise ContextMismatchError("the server acknowledged another header")
        with s.state.transaction():
            await s.verifier(network, tv).header(header, case)
            self._adopt_rotation(network, case, pending, version)
        rest = [(r, c, g) for r, c, g in pending["rest"]]
        if rest:
            await self.post_gated(network, case, rest)
        return version

    async def _prepare_rotation(self, network: str, tv: TrustView, case: str,
                                identity: Mapping[str, Mapping[str, Any]] | None
                                ) -> dict[str, Any]:
        """Build the replacement and keep it, with its new class keys, before sending."""
        s = self.session
        held = s.header(network, case)
        if held.owner != s.key_id:
            raise refuse("not-case-owner", "only the case's owner seals its identity")
        if held.is_consult:
            raise refuse("consult-has-no-identity",
                         "a consult is anonymous: it has no identity to rotate")
        if (purged(s.state, network, case) or {}).get("erased"):
            raise refuse("identity-erased", "the identity of this case was erased: it is never "
                         "sealed again (ADR 0034)")
        if (summary(s.state, network, case) or {}).get("status") == "closed":
            raise refuse("case-closed", "a closed case's identity waits for retention; it is "
                         "not sealed again")
        policy_classes = set(tv.policy["classes"])
        records: dict[str, Any] = {}
        for cls in held.classes or ():
            value = s.state.get_secret("identity", (network, case, cls))
            if value is None:
                raise ProtocolError(f"this owner no longer holds class {cls} of case {case}",
                                    details={"case": case, "class": cls})
            records[cls] = parse_json(value)
        for cls, fields in (identity or {}).items():
            if cls not in policy_classes:
                raise refuse("class-not-in-policy",
                             f"class {cls!r} is not a disclosure class of this network")
            records[cls] = identity_plaintext_for(cls, dict(fields),
                                                  allowed=policy_classes).to_json()
        if not records:
            raise refuse("no-identity", "the case holds no identity to seal")
        version = (held.identity_version or 1) + 1
        class_keys, identity_envs = self.seal(network, case, records, version=version)
        fields = {k: v for k, v in held.to_json().items() if k != "type"}
        header = CaseHeader(**{**fields, "identity_version": version,
                               "classes": sorted(records)}).sign(s.keys.signer)
        gated = self.gated(network, tv, case, class_keys, version=version,
                           holders=await self._holders(network, case))
        pending = {"body": {"header": header, "identity": identity_envs,
                            "gated": [g for _, _, g in gated[:GATED_PER_REQUEST]]},
                   "first": [[r, c] for r, c, _ in gated[:GATED_PER_REQUEST]],
                   "rest": [list(g) for g in gated[GATED_PER_REQUEST:]]}
        with s.state.transaction():
            for cls, key in class_keys.items():
                s.state.put_secret("class-key", (network, case, cls, str(version)),
                                   key.export())
            s.state.put_doc("identity-rotation", (network, case), pending)
        return pending

    def _adopt_rotation(self, network: str, case: str, pending: Mapping[str, Any],
                        version: int) -> None:
        """The server holds the new version: its identity (opened from the records just
        sealed) becomes the owner's, and the keys of older versions are destroyed."""
        s = self.session
        keys = self._class_keys(network, case, version)
        for env in pending["body"]["identity"]:
            record = IdentityRecord.from_json(env["signed"])
            plain = envelopes.decrypt_json(
                keys[record.class_], record.ciphertext,
                envelopes.identity_context(network, case, record.class_, version=version))
            s.state.put_secret("identity", (network, case, record.class_),
                               canonical_json(plain))
        for ref in s.state.secret_refs("class-key", (network, case)):
            if int(ref[3]) < version:
                s.state.delete_secret("class-key", ref)
        self.note_gated(network, case, [(r, c, g) for (r, c), g in
                                        zip(pending["first"], pending["body"]["gated"])])
        s.state.delete_doc("identity-rotation", (network, case))

    def _owns(self, network: str, case: str) -> bool:
        s = self.session
        info = summary(s.state, network, case)
        return info is not None and info.get("owner") == s.key_id

    def _drop_rotation(self, network: str, case: str, version: int) -> None:
        s = self.session
        with s.state.transaction():
            for ref in s.state.secret_refs("class-key", (network, case)):
                if int(ref[3]) == version:
                    s.state.delete_secret("class-key", ref)
            s.state.delete_doc("identity-rotation", (network, case))

    async def rotation_duty(self, network: str, tv: TrustView, report: DutyReport) -> None:
        """Rotate every open owned case that a purge instruction says lost a recipient's
        basis (:data:`ROTATE_AFTER`).  The instructions come from ``GET
        .../purge-instructions/owned``, each verified with the genesis log key and for a
        case this partner owns; a case found due is kept as an ``identity-rotation-due``
        doc in the same local transaction as the feed's cursor, so a failure between the
        two is retried, not lost.  A partner that owns no case asks nothing."""
        s = self.session
        if not any(info.get("owner") == s.key_id for _, info in
                   s.state.docs("case", (network,))):
            return
        async for items in purge_pages(self.session, network, "owned", "owned-purge-instructions"):
            with s.state.transaction():
                for cursor, envelope in items:
                    with s.verifying(network):
                        instruction = PurgeInstruction.from_envelope(envelope, [tv.server_log])
                        if instruction.network != network or \
                                not self._owns(network, instruction.case):
                            raise ContextMismatchError("a purge instruction about a case this "
                                                       "partner does not own")
                    if instruction.reason in ROTATE_AFTER:
                        s.state.put_doc("identity-rotation-due",
                                        (network, instruction.case), {"due": True})
                s.state.set_cursor(network, "owned-purge-instructions", cursor)
        for ref, _ in s.state.docs("identity-rotation-due", (network,)):
            case = ref[1]
            erased = (purged(s.state, network, case) or {}).get("erased")
            if (summary(s.state, network, case) or {}).get("status") == "open" and not erased:
                await self._rotate_identity(network, tv, case)
                report.rotated.append(case)
            s.state.delete_doc("identity-rotation-due", ref)


__all__ = ["Identity", "GATED_PER_REQUEST", "ROTATE_AFTER"]
