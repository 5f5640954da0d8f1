"""What every service of one partner shares: its keys, home, configuration, local state,
connection and clock (ADR 0019).

A :class:`Session` is built once by :class:`schakel.client.partner.Partner` and passed
into each service's constructor.  Besides holding those six things it answers the
questions every flow asks before it acts, each from what this partner verified:

* *whom do I trust* -- :meth:`Session.trusted` fetches and verifies the network up to the
  coordinator fingerprint configured with :meth:`Session.set_anchor`
  (:mod:`schakel.client.trust`); :meth:`Session.local_trust` reads what was verified
  before, without a request;
* *what did the server get wrong* -- :meth:`Session.misbehaving` records a
  :class:`~schakel.client.errors.ServerMisbehaviour` in the local state before it is
  raised, and :meth:`Session.verifying` maps a failed check of a server's answer onto the
  ADR 0007 name it is;
* *may this text leave* -- :meth:`Session.refuse_pii`, the PII guard with the network
  policy's allow-list (protocol.md §16.7);
* *what do I hold of a case* -- :meth:`Session.header`, :meth:`Session.case_key`,
  :meth:`Session.verifier` (which verifies and stores what the server sends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from schakel.keys import PartnerKeys, make_key_bundle
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol import pii
from schakel.protocol.crypto import CaseKey
from schakel.protocol.errors import (
    ContextMismatchError, DecryptionError, MalformedError, ProofError,
    ProtocolError, SignatureError, UntrustedKeyError,
)
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import CaseHeader

from schakel.client.errors import NotFound, ServerMisbehaviour
from schakel.client.fold import Verifier, case_key, summary
from schakel.client.home import ClientConfig, Home
from schakel.client.pagecheck import PageChecker
from schakel.client.state import LocalState
from schakel.client.transport import Connection
from schakel.client.trust import TrustView, load_trust, local_view

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Session:
    """One partner's keys, home, configuration, state, connection and clock, with the
    checks every service shares (module docstring).  ``acting_user`` is the employee this
    session acts for (NEN 7513): it may differ from the configured one."""

    def __init__(self, *, home: Home, keys: PartnerKeys, config: ClientConfig,
                 state: LocalState, conn: Connection, acting_user: str,
                 clock: Clock = utc_now, sync_worker: bool = True) -> None:
        self.home, self.keys, self.config, self.state, self.conn = home, keys, config, state, conn
        self.acting_user = acting_user
        self.clock = clock
        #: Checks the signatures of long feeds on a second core (``sync_worker=False``: here).
        self.page_checker = PageChecker(sync_worker)

    @property
    def key_id(self) -> str:
        return self.keys.key_id

    @property
    def name(self) -> str:
        return self.config.name

    # ------------------------------------------------------------------ time and paths

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def stamp(self) -> str:
        return format_timestamp(self.now())

    @staticmethod
    def path(network: str, suffix: str = "") -> str:
        return f"/v1/networks/{network}{suffix}"

    # ------------------------------------------------------------------ who this partner is

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint.of(self.keys.public.sign)

    def bundle(self) -> dict[str, Any]:
        """The self-signed key bundle to hand a coordinator."""
        return make_key_bundle(self.keys, name=self.name, created=self.now())

    # ------------------------------------------------------------------ trust

    def set_anchor(self, network: str, coordinator_fingerprint: str) -> None:
        """Configure ``network``'s trust anchor; replacing one already set is refused."""
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

    def anchor(self, network: str) -> str:
        anchor = self.config.trusted.get(network)
        if anchor is None:
            raise UntrustedKeyError(f"network {network} is not trusted by this partner yet: "
                                    f"anchor it to its coordinator's fingerprint first",
                                    details={"network": network, "anchor": "missing"})
        return anchor

    async def trusted(self, network: str) -> TrustView:
        """The network as verified now from the server's answers (trust.py)."""
        return await load_trust(network=network, anchor=self.anchor(network),
                                get=self.conn.get, state=self.state, now=self.now(),
                                misbehaving=self.misbehaving)

    def local_trust(self, network: str) -> TrustView:
        """The network as this partner verified it before, without a request."""
        view = local_view(network=network, anchor=self.anchor(network), state=self.state,
                          now=self.now(), misbehaving=self.misbehaving)
        if view is None:
            raise NotFound(f"network {network} was never synced", details={"network": network})
        return view

    def is_core(self, tv: TrustView) -> bool:
        me = tv.member(self.key_id)
        return (me is not None and me.current and me.ring == "core") or \
            tv.coordinator_key_id == self.key_id

    # ------------------------------------------------------------------ believing

    def misbehaving(self, network: str, what: str, message: str,
                    **details: Any) -> ServerMisbehaviour:
        """Record the misbehaviour in the local state and return it for raising."""
        error = ServerMisbehaviour(what, message, details=details)
        self.state.record_misbehaviour(network, what, message, _jsonable(details))
        return error

    @contextmanager
    def verifying(self, network: str, *, malformed: str = "context-mismatch",
                  **details: Any) -> Iterator[None]:
        """Run checks of what the server sent; a failure is server misbehaviour,
        recorded (:meth:`misbehaving`) and raised.  ``malformed`` names what an answer
        that does not even parse is (the ADR 0007 name closest to the check)."""
        try:
            yield
        except ServerMisbehaviour:
            raise
        except SignatureError as exc:
            raise self.misbehaving(network, "bad-signature", exc.message, **details) from None
        except DecryptionError as exc:
            raise self.misbehaving(network, "ciphertext-swapped", exc.message, **details) from None
        except ContextMismatchError as exc:
            raise self.misbehaving(network, "context-mismatch", exc.message, **details) from None
        except ProofError as exc:
            raise self.misbehaving(network, "audit-entry-rewritten", exc.message,
                                   **details) from None
        except (MalformedError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, ProtocolError) else (
                f"the server's answer is malformed ({type(exc).__name__})")
            raise self.misbehaving(network, malformed, message, **details) from None

    def verifier(self, network: str, tv: TrustView) -> Verifier:
        """A :class:`~schakel.client.fold.Verifier` of ``network`` for this partner."""
        conn = self.conn

        async def fetch_case(case: str) -> Any:
            return await conn.get(self.path(network, f"/cases/{case}"))

        async def fetch_epochs() -> list[int]:
            answer = await conn.get(self.path(network, "/epochs/mine"))
            return verifier.open_epochs(answer.get("entries") if isinstance(answer, dict)
                                        else None)

        verifier = Verifier(network=network, tv=tv, state=self.state, me=self.key_id,
                            box=self.keys.box_secret, misbehaving=self.misbehaving,
                            fetch_case=fetch_case, fetch_epochs=fetch_epochs)
        return verifier

    # ------------------------------------------------------------------ refusing early

    def pii_allow(self, network: str) -> tuple[str, ...]:
        """The allow-list of the network policy this partner verified (protocol.md §N.2),
        read without a request: ``()`` before the network's first sync."""
        anchor = self.config.trusted.get(network)
        view = None if anchor is None else local_view(
            network=network, anchor=anchor, state=self.state, now=self.now(),
            misbehaving=self.misbehaving)
        return view.pii_allow if view is not None else ()

    def refuse_pii(self, network: str, obj: Any) -> None:
        """The PII guard (schakel.protocol.pii) on a text bound for ``network``, with the
        network policy's allow-list: identifying data is refused here, before any request
        is built (protocol.md §16.7)."""
        pii.check_anonymous(obj, allow=self.pii_allow(network))

    # ------------------------------------------------------------------ what is held

    def header(self, network: str, case: str) -> CaseHeader:
        """The verified header of ``case`` (NotFound if this partner holds none)."""
        env = self.state.get_doc("header", (network, case))
        if env is None:
            raise NotFound(f"case {case} is not known to this partner", details={"case": case})
        return CaseHeader.from_json(env["signed"])

    def case_key(self, network: str, case: str, version: int | None = None) -> CaseKey:
        """The case key of ``version`` (default: the case's current one)."""
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


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
            for k, v in details.items()}


__all__ = ["Session", "Clock", "utc_now"]
