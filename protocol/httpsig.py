"""HTTP Message Signatures (RFC 9421, ``ed25519``) and ``Content-Digest`` (RFC 9530).

Sans-I/O: strings and bytes in, header values or one :mod:`schakel.protocol.errors`
exception out; ``now`` is an ``int`` UNIX time passed by the caller.

Two layers (docs/protocol.md §10):

* the generic RFC 9421 machinery: :func:`signature_base`, :func:`sign`,
  :func:`verify`, a bounded RFC 8941 structured-field subset
  (:func:`parse_dictionary`) and RFC 9530 digests (:func:`content_digest`,
  :func:`verify_content_digest`);
* the Schakel request profile: :func:`sign_request` / :func:`verify_request`,
  which fix the label, the covered components and the mandatory parameters,
  and :func:`replay_key`, the pure description of what the server's replay
  cache must remember.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Union
from urllib.parse import urlsplit

from schakel.protocol.crypto import SIGNATURE_BYTES, Signer, VerifyKey, constant_time_equal, sha256
from schakel.protocol.encoding import b64d
from schakel.protocol.errors import DigestMismatchError, SignatureError, StaleRequestError
from schakel.protocol.sfv import (  # re-exported: parse_dictionary, Token
    MAX_INT, MAX_SF_LENGTH, SF_KEY, Token, malformed, parse_dictionary, serialize_param_value,
)

# --------------------------------------------------------------------------- limits

MAX_FIELDS = 200              #: header fields in one message
MAX_FIELD_VALUE = 8192        #: characters in one header field value
MAX_URL = 8192                #: characters in a target URI
MAX_COVERED = 32              #: covered components in one signature

# --------------------------------------------------------------------------- Schakel profile

LABEL = "sig1"
ALG = "ed25519"
TAG = "schakel/v1"
ACTING_USER_HEADER = "Schakel-Acting-User"
#: Covered by every Schakel request, in this order (docs/protocol.md §10 (Covered components)).
COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest", "schakel-acting-user")
DEFAULT_MAX_SKEW = 300
NONCE_MIN_BYTES, NONCE_MAX_BYTES = 16, 64

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")                  # RFC 9110 §5.6.2
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,256}")           # lowercased token
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")                          # ASCII only, no CR/LF
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_ACTING_USER = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")
_METHOD = re.compile(r"[A-Z]{1,16}")
_HOST = re.compile(r"[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\]")
_DERIVED = frozenset({"@method", "@target-uri", "@authority", "@scheme", "@request-target",
                      "@path", "@query"})
_PARAM_TYPES: dict[str, type[int] | type[str]] = {                     # RFC 9421 §2.3
    "created": int, "expires": int, "keyid": str, "nonce": str, "alg": str, "tag": str}

_COMPONENTS_LIST = '(' + " ".join(f'"{c}"' for c in COMPONENTS) + ')'

Headers = Union[Mapping[str, str], Iterable[tuple[str, str]]]
ParamValue = Union[int, str]


# --------------------------------------------------------------------------- message parts


def _fields(headers: Headers) -> dict[str, list[str]]:
    """Header fields by lower-cased name, every field line kept, values stripped of
    surrounding whitespace (RFC 9421 §2.1).  Values are checked where they are used:
    covered fields in :func:`signature_base`, structured fields by their parser."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    count = 0
    for pair in pairs:
        if type(pair) is tuple and len(pair) == 2:
            name, value = pair
            count += 1
            if count > MAX_FIELDS:
                raise malformed(f"more than {MAX_FIELDS} header fields")
            # The common case, checked with exact types and the remembered names (a header
            # name may be a str subclass, e.g. aiohttp's istr: its plain string is looked up).
            if type(value) is str and len(value) <= MAX_FIELD_VALUE and isinstance(name, str):
                lname = _field_name(name if type(name) is str else str.__str__(name))
                if lname is not None:
                    values = out.get(lname)
                    if values is None:
                        out[lname] = [value.strip(" \t")]
                    else:
                        values.append(value.strip(" \t"))
                    continue
            count -= 1
        lname, value = _checked_pair(pair, count + 1)
        count += 1
        out.setdefault(lname, []).append(value.strip(" \t"))
    return out


def _checked_pair(pair: object, count: int) -> tuple[str, str]:
    """One header field line, checked and worded (the slow path of :func:`_fields`)."""
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise malformed("headers must be name/value pairs")
    name, value = pair
    if count > MAX_FIELDS:
        raise malformed(f"more than {MAX_FIELDS} header fields")
    if not isinstance(name, str) or not isinstance(value, str):
        raise malformed("header names and values must be strings")
    lname = _field_name(name) if type(name) is str else None
    if lname is None:
        lname = name.lower()
        if not _FIELD_NAME.fullmatch(lname):
            raise malformed(f"invalid header name {name[:64]!r}")
    if len(value) > MAX_FIELD_VALUE:
        raise malformed(f"header {lname}: longer than {MAX_FIELD_VALUE} characters")
    return lname, value


@lru_cache(maxsize=1024)
def _field_name(name: str) -> str | None:
    """``name`` lower-cased if it is a valid field name, else None (the caller words the
    refusal).  Remembered: a server sees the same few header names on every request."""
    lname = name.lower()
    return lname if _FIELD_NAME.fullmatch(lname) else None


def _pairs(fields: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in fields.items() for value in values]


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise malformed(f"header {name} must occur exactly once")
    return values[0]


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    authority: str
    path: str
    query: str | None


def _target(uri: object) -> _Target:
    """Split an absolute http(s) target URI (RFC 9421 §2.2.2-§2.2.7)."""
    if not isinstance(uri, str) or len(uri) > MAX_URL or not _VISIBLE.fullmatch(uri):
        raise malformed("target URI must be visible ASCII without spaces")
    # A pure function of the string: a server sees the same few paths again and again.
    return _split_target(str(uri))


@lru_cache(maxsize=2048)
def _split_target(uri: str) -> _Target:
    if "#" in uri:
        raise malformed("target URI must not carry a fragment")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise malformed("target URI does not parse") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        raise malformed("target URI must be http(s)://host[:port]/path, without userinfo")
    try:
        port = parts.port
    except ValueError:
        raise malformed("target URI has an invalid port") from None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    if not _HOST.fullmatch(host):
        raise malformed("target URI has an invalid host")
    default = 443 if scheme == "https" else 80
    authority = host if port in (None, default) else f"{host}:{port}"
    if parts.path and not parts.path.startswith("/"):
        raise malformed("target URI path must be absolute")
    return _Target(scheme, authority, parts.path or "/", parts.query if "?" in uri else None)


def _derived(name: str, method: str, t: _Target) -> str:
    """Derived component values, RFC 9421 §2.2."""
    if name == "@method":
        return method                                                 # §2.2.1, no case change
    if name == "@authority":
        return t.authority                                            # §2.2.3
    if name == "@path":
        return t.path                                                 # §2.2.6
    query = "" if t.query is None else "?" + t.query
    if name == "@query":
        return query or "?"                                           # §2.2.7
    if name == "@target-uri":
        return f"{t.scheme}://{t.authority}{t.path}{query}"           # §2.2.2
    if name == "@scheme":
        return t.scheme                                               # §2.2.4
    if name == "@request-target":
        return t.path + query                                         # §2.2.5
    raise KeyError(name)


def _check_covered(covered: object) -> tuple[str, ...]:
    if isinstance(covered, (str, bytes)) or not isinstance(covered, Sequence):
        raise malformed("covered components must be a sequence of identifiers")
    if len(covered) > MAX_COVERED:
        raise malformed(f"more than {MAX_COVERED} covered components")
    out: list[str] = []
    for c in covered:
        if not isinstance(c, str) or not (c in _DERIVED or _FIELD_NAME.fullmatch(c)):
            raise malformed(f"unsupported component identifier {str(c)[:64]!r}")
        if c in out:
            raise malformed(f"component {c!r} covered twice")           # RFC 9421 §2.5
        out.append(c)
    return tuple(out)


def _check_params(params: object) -> dict[str, ParamValue]:
    return _checked_params(params)[0]


def _checked_params(params: object) -> tuple[dict[str, ParamValue], str]:
    """The checked parameters and their serialisation (``;name=value``...), made once."""
    if not isinstance(params, Mapping):
        raise malformed("signature parameters must be a mapping")
    out: dict[str, ParamValue] = {}
    text = []
    for name, value in params.items():
        expected = _PARAM_TYPES.get(name) if isinstance(name, str) else None
        if expected is None:
            raise malformed(f"unknown signature parameter {str(name)[:32]!r}")
        if isinstance(value, bool) or not isinstance(value, expected):
            raise malformed(f"signature parameter {name} must be {expected.__name__}")
        text.append(f";{name}={serialize_param_value(value)}")
        out[name] = value
    return out, "".join(text)


def _inner_list(ids: tuple[str, ...]) -> str:
    return "(" + " ".join(f'"{c}"' for c in ids) + ")"


def signature_params(covered: Sequence[str], params: Mapping[str, ParamValue]) -> str:
    """The ``@signature-params`` value (RFC 9421 §2.3): the inner list of covered
    component identifiers followed by the parameters in the order given."""
    return _inner_list(_check_covered(covered)) + _checked_params(params)[1]


def signature_base(method: str, target_uri: str, headers: Headers, covered: Sequence[str],
                   params: Mapping[str, ParamValue]) -> bytes:
    """The signature base of a request (RFC 9421 §2.5).

    One line ``"<component>": <value>`` per covered component, then
    ``"@signature-params": <signature_params>``; lines joined by LF, no trailing LF.
    Header names are matched case-insensitively; several field lines of one name are
    joined with ``", "`` (§2.1).  A covered field that is absent raises
    :class:`SignatureError`; anything unparseable raises :class:`MalformedError`.
    """
    _check_method_token(method)
    target, fields = _target(target_uri), _fields(headers)
    ids = _check_covered(covered)
    return _base(method, target, fields, ids, params, checked=False)


def _check_method_token(method: object) -> None:
    if not isinstance(method, str) or not _TOKEN.fullmatch(method) or len(method) > 32:
        raise malformed("method must be an HTTP token")


def _base(method: str, target: _Target, fields: dict[str, list[str]], ids: tuple[str, ...],
          params: Mapping[str, ParamValue], *, checked: bool, text: str | None = None) -> bytes:
    """The signature base from parsed parts; ``checked``: ``ids`` and ``params`` already
    passed :func:`_check_covered` and :func:`_check_params` (a parsed signature); ``text``:
    their ``@signature-params`` value, when already made from them."""
    lines = []
    for c in ids:
        if c[0] == "@":
            value = _derived(c, method, target)
        elif c in fields:
            value = ", ".join(fields[c])
            if not _FIELD_VALUE.fullmatch(value):
                raise malformed(f"covered header {c}: non-ASCII or control characters")
        else:
            raise SignatureError(f"covered header {c} is absent", details={"component": c})
        lines.append(f'"{c}": {value}')
    if text is None and checked:
        text = _inner_list(ids) + "".join(
            f";{k}={serialize_param_value(v)}" for k, v in params.items())
    elif text is None:
        text = signature_params(ids, params)
    lines.append(f'"@signature-params": {text}')
    return "\n".join(lines).encode("ascii")


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not SF_KEY.fullmatch(label):
        raise malformed("signature label must be an RFC 8941 key")
    return label


def sign(method: str, target_uri: str, headers: Headers, covered: Sequence[str],
         params: Mapping[str, ParamValue], signer: Signer, *, label: str = LABEL) -> dict[str, str]:
    """Sign a request with Ed25519 (RFC 9421 §3.1, §3.3.6); returns the
    ``Signature-Input`` and ``Signature`` header values to add."""
    label = _check_label(label)
    sig = signer.sign(signature_base(method, target_uri, headers, covered, params))
    return {"Signature-Input": f"{label}={signature_params(covered, params)}",
            "Signature": f"{label}=:{base64.b64encode(sig).decode('ascii')}:"}


@dataclass(frozen=True, slots=True)
class _Parsed:
    covered: tuple[str, ...]
    params: dict[str, ParamValue]
    signature: bytes
    text: str                     #: the ``@signature-params`` value of covered and params


def _parse_signature(fields: dict[str, list[str]], label: str) -> _Parsed:
    """Read one labelled signature from Signature-Input and Signature (RFC 9421 §4)."""
    raw_input, raw_sig = _single(fields, "signature-input"), _single(fields, "signature")
    if raw_input is None or raw_sig is None:
        raise SignatureError("request is not signed: Signature-Input or Signature missing")
    inputs = parse_dictionary(raw_input, "Signature-Input")
    sigs = parse_dictionary(raw_sig, "Signature")
    if label not in inputs or label not in sigs:
        raise SignatureError(f"no signature labelled {label!r}", details={"label": label})
    items, sf_params = inputs[label]
    if not isinstance(items, tuple):
        raise malformed("Signature-Input member must be an inner list")
    covered = []
    for value, item_params in items:
        if type(value) is not str or item_params:
            raise malformed("covered components must be plain strings without parameters")
        covered.append(value)
    params: dict[str, ParamValue] = {}
    for k, v in sf_params.items():
        if isinstance(v, (Token, bytes, bool)):
            raise malformed(f"signature parameter {k} has the wrong type")
        params[k] = v
    sig, sig_params = sigs[label]
    if not isinstance(sig, bytes) or sig_params:
        raise malformed("Signature member must be a byte sequence")
    if len(sig) != SIGNATURE_BYTES:
        raise SignatureError("an ed25519 signature is 64 bytes")
    ids = _check_covered(covered)
    checked, text = _checked_params(params)
    return _Parsed(ids, checked, sig, _inner_list(ids) + text)


def _verify_parsed(method: str, target_uri: str, fields: dict[str, list[str]], p: _Parsed,
                   key: VerifyKey) -> None:
    """Verify a parsed signature over the message's header ``fields`` (from :func:`_fields`)."""
    if p.params.get("alg", ALG) != ALG:                                 # RFC 9421 §3.2 step 6
        raise SignatureError("signature algorithm is not ed25519")
    _check_method_token(method)
    target = _target(target_uri)
    key.verify(_base(method, target, fields, p.covered, p.params, checked=True, text=p.text),
               p.signature)


def verify(method: str, target_uri: str, headers: Headers, key: VerifyKey, *,
           label: str = LABEL) -> None:
    """Verify the signature labelled ``label`` with ``key`` (RFC 9421 §3.2); returns
    None or raises.  Checks only the cryptography: the caller decides which
    components and parameters it requires (the Schakel profile: :func:`verify_request`)."""
    fields = _fields(headers)
    parsed = _parse_signature(fields, _check_label(label))
    _verify_parsed(method, target_uri, fields, parsed, key)


# --------------------------------------------------------------------------- RFC 9530


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value Schakel sends (RFC 9530 §2): ``sha-256=:<base64>:``."""
    if not isinstance(body, (bytes, bytearray)):
        raise malformed("body must be bytes")
    return "sha-256=:" + base64.b64encode(sha256(bytes(body))).decode("ascii") + ":"


def verify_content_digest(body: bytes, header_value: str) -> None:
    """Check ``Content-Digest`` against ``body`` (RFC 9530 §2); returns None or raises.

    ``sha-256`` must be present (:class:`MalformedError` otherwise); ``sha-512`` is
    checked too when present; other algorithms are ignored (RFC 9530 §2 allows it).
    A digest that differs raises :class:`DigestMismatchError`.
    """
    if not isinstance(body, (bytes, bytearray)):
        raise malformed("body must be bytes")
    digest = sha256(bytes(body))
    if header_value == "sha-256=:" + base64.b64encode(digest).decode("ascii") + ":":
        return        # exactly what content_digest sends: parses to one matching sha-256 member
    members = parse_dictionary(header_value, "Content-Digest")
    if "sha-256" not in members:
        raise malformed("Content-Digest must contain sha-256")
    for alg, fn, size in (("sha-256", hashlib.sha256, 32), ("sha-512", hashlib.sha512, 64)):
        if alg in members:
            value = members[alg][0]
            if not isinstance(value, bytes) or len(value) != size:
                raise malformed(f"Content-Digest {alg} must be a {size}-byte byte sequence")
            computed = digest if alg == "sha-256" else fn(bytes(body)).digest()
            if not constant_time_equal(value, computed):
                raise DigestMismatchError("Content-Digest does not match the body",
                                          details={"algorithm": alg})


# --------------------------------------------------------------------------- Schakel profile


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedRequest:
    """The parameters of a Schakel request, returned only *after* its signature,
    time window and content digest verified."""

    keyid: str
    created: int
    nonce: str
    acting_user: str
    label: str
    covered: tuple[str, ...]
    max_skew: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayKey:
    """What the server's replay cache must hold: ``(keyid, nonce)`` until ``remember_until``
    (UNIX seconds); after that the request is refused as stale anyway."""

    keyid: str
    nonce: str
    remember_until: int


def replay_key(verified: VerifiedRequest) -> ReplayKey:
    """The replay-cache entry for a verified request (docs/protocol.md §10 (Replay))."""
    return ReplayKey(keyid=verified.keyid, nonce=verified.nonce,
                     remember_until=verified.created + verified.max_skew)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise malformed(f"{what} must be a non-negative integer (UNIX seconds)")
    return value


def _check_nonce(nonce: object) -> str:
    if not isinstance(nonce, str):
        raise malformed("nonce must be a string")
    raw = b64d(nonce, max_length=NONCE_MAX_BYTES, what="nonce")
    if len(raw) < NONCE_MIN_BYTES:
        raise malformed(f"nonce must carry at least {NONCE_MIN_BYTES} random bytes")
    return nonce


def _check_acting_user(value: object) -> str:
    if not isinstance(value, str) or not _ACTING_USER.fullmatch(value):
        raise malformed("acting user must be 1..128 printable ASCII characters, "
                         "without leading or trailing spaces")
    return value


def _check_method(method: object) -> str:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise malformed("Schakel methods are upper-case letters only")
    return method


def sign_request(method: str, url: str, headers: Headers, body: bytes, signer: Signer, *,
                 created: int, nonce: str, acting_user: str) -> dict[str, str]:
    """Sign a Schakel request; returns the headers to add: ``Content-Digest``,
    ``Schakel-Acting-User``, ``Signature-Input`` and ``Signature``.

    ``nonce`` is >= 16 fresh random bytes, unpadded base64url, chosen by the caller
    (``b64e(random_bytes(16))``); ``created`` is the current UNIX time.
    """
    fields = _fields(headers)
    clash = {"content-digest", "schakel-acting-user", "signature", "signature-input"} & set(fields)
    if clash:
        raise malformed(f"headers already contain {sorted(clash)}")
    added = {"Content-Digest": content_digest(body),
             ACTING_USER_HEADER: _check_acting_user(acting_user)}
    params: dict[str, ParamValue] = {"created": _int(created, "created"),
                                     "nonce": _check_nonce(nonce), "keyid": signer.key_id,
                                     "alg": ALG, "tag": TAG}
    # As sign(method, url, _pairs(fields) + added, COMPONENTS, params, signer), with the
    # headers parsed and the parameters checked and serialised once.
    if sum(map(len, fields.values())) + len(added) > MAX_FIELDS:
        raise malformed(f"more than {MAX_FIELDS} header fields")
    fields["content-digest"] = [added["Content-Digest"]]
    fields["schakel-acting-user"] = [added[ACTING_USER_HEADER]]
    method = _check_method(method)
    _check_method_token(method)
    checked, text = _checked_params(params)
    text = _COMPONENTS_LIST + text
    sig = signer.sign(_base(method, _target(url), fields, COMPONENTS, checked, checked=True,
                            text=text))
    return {**added, "Signature-Input": f"{LABEL}={text}",
            "Signature": f"{LABEL}=:{base64.b64encode(sig).decode('ascii')}:"}


def verify_request(method: str, url: str, headers: Headers, body: bytes, *,
                   resolve_key: Callable[[str], VerifyKey], now: int,
                   max_skew: int = DEFAULT_MAX_SKEW) -> VerifiedRequest:
    """Verify a Schakel request (docs/protocol.md §10 (Verification)) or raise.

    ``url`` is the target URI as the *server* knows it (its public origin plus the
    raw path and query); ``now`` is UNIX seconds; ``resolve_key`` maps a keyid to the
    partner's :class:`VerifyKey` or raises.  The replay check is the caller's: look up
    :func:`replay_key` of the result and raise ``ReplayError`` on a hit.
    """
    method, now = _check_method(method), _int(now, "now")
    if isinstance(max_skew, bool) or not isinstance(max_skew, int) or not 0 < max_skew <= 3600:
        raise malformed("max_skew must be 1..3600 seconds")
    if not isinstance(body, (bytes, bytearray)):
        raise malformed("body must be bytes")
    fields = _fields(headers)
    digest, acting_user = _single(fields, "content-digest"), _single(fields, "schakel-acting-user")
    p = _parse_signature(fields, LABEL)
    missing = [c for c in COMPONENTS if c not in p.covered]
    if missing:
        raise SignatureError(f"signature does not cover {missing}", details={"missing": missing})
    for name in ("created", "nonce", "keyid", "alg", "tag"):
        if name not in p.params:
            raise SignatureError(f"signature parameter {name} missing", details={"param": name})
    if p.params["alg"] != ALG or p.params["tag"] != TAG:
        raise SignatureError("not a Schakel ed25519 request signature")
    created, keyid = _int(p.params["created"], "created"), str(p.params["keyid"])
    nonce = _check_nonce(p.params["nonce"])
    if not 0 < len(keyid) <= 128:
        raise malformed("keyid must be 1..128 characters")
    if abs(now - created) > max_skew:
        raise StaleRequestError("request created outside the allowed clock skew",
                                details={"max_skew": max_skew})
    if "expires" in p.params and now > _int(p.params["expires"], "expires"):
        raise StaleRequestError("request signature expired")
    key = resolve_key(keyid)
    if not isinstance(key, VerifyKey) or key.key_id != keyid:
        raise SignatureError("keyid does not name the resolved key")
    _verify_parsed(method, url, fields, p, key)
    # Covered (hence present) and signed; now the body (RFC 9530) and the acting user's form.
    if digest is None or acting_user is None:
        raise SignatureError("covered header missing")
    verify_content_digest(body, digest)
    return VerifiedRequest(keyid=keyid, created=created, nonce=nonce,
                           acting_user=_check_acting_user(acting_user), label=LABEL,
                           covered=p.covered, max_skew=max_skew)


__all__ = [
    "LABEL", "ALG", "TAG", "ACTING_USER_HEADER", "COMPONENTS", "DEFAULT_MAX_SKEW",
    "NONCE_MIN_BYTES", "NONCE_MAX_BYTES", "MAX_SF_LENGTH",
    "Token", "parse_dictionary", "signature_params", "signature_base", "sign", "verify",
    "content_digest", "verify_content_digest",
    "VerifiedRequest", "ReplayKey", "replay_key", "sign_request", "verify_request",
]
