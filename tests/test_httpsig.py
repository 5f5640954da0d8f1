"""Tests for schakel.protocol.httpsig: RFC 9421 / RFC 9530 known answers, the Schakel
request profile, one test per attack, property tests and the vector file.

Regenerate protocol/vectors/httpsig.json (only after a deliberate profile change):
    .venv/bin/python tests/test_httpsig.py --regenerate
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python tests/test_httpsig.py --regenerate`
    sys.path.insert(0, str(ROOT))

from schakel.protocol import httpsig  # noqa: E402
from schakel.protocol.crypto import Signer, VerifyKey  # noqa: E402
from schakel.protocol.encoding import b64d, b64e  # noqa: E402
from schakel.protocol.errors import (  # noqa: E402
    DigestMismatchError, MalformedError, ProtocolError, SignatureError, StaleRequestError,
    UntrustedKeyError,
)

# --------------------------------------------------------------------------- RFC vectors
# RFC 9421 Appendix B.1.4 "Example Ed25519 Test Key" (test-key-ed25519), JWK form:
RFC_KEY_D = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU"
RFC_KEY_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
# ... and the same private key as PKCS#8 (PEM body); the last 32 DER bytes are the seed.
RFC_KEY_PKCS8 = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"

# RFC 9421 Appendix B.2 test request.
RFC_METHOD = "POST"
RFC_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNN"
                      "yealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
RFC_BODY = b'{"hello": "world"}'

# RFC 9421 Appendix B.2.6 "Signing a Request Using ed25519" (RFC 8792 line wrapping undone).
B26_COVERED = ["date", "@method", "@path", "@authority", "content-type", "content-length"]
B26_PARAMS = {"created": 1618884473, "keyid": "test-key-ed25519"}
B26_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    b'"content-length");created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE_INPUT = ('sig-b26=("date" "@method" "@path" "@authority" "content-type" '
                       '"content-length");created=1618884473;keyid="test-key-ed25519"')
B26_SIGNATURE = ("sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6v"
                 "uQv5lIp5WPpBKRCw==:")

# RFC 9421 Appendix B.2.3 "Full Coverage" signature base (its RSA-PSS signature is randomised,
# so only the base is a known answer).  Exercises @query and a content-digest field.
B23_COVERED = ["date", "@method", "@path", "@query", "@authority", "content-type",
               "content-digest", "content-length"]
B23_PARAMS = {"created": 1618884473, "keyid": "test-key-rsa-pss"}
B23_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@query": ?param=Value&Pet=dog\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNN'
    b'yealdVLvRwEmTHWXvJwew==:\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" '
    b'"content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"'
)

# RFC 9530 Appendix B.1: {"hello": "world"} followed by an LF (Content-Length: 19).
RFC9530_B1_BODY = b'{"hello": "world"}\n'
RFC9530_B1_DIGEST = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"


def rfc_signer() -> Signer:
    return Signer(b64d(RFC_KEY_D, length=32))


def test_rfc9421_b14_key_material_is_consistent() -> None:
    signer = rfc_signer()
    assert signer.verify_key.b64() == RFC_KEY_X
    assert base64.b64decode(RFC_KEY_PKCS8)[-32:] == b64d(RFC_KEY_D)


def test_rfc9421_b26_signature_base_byte_for_byte() -> None:
    base = httpsig.signature_base(RFC_METHOD, RFC_URL, RFC_HEADERS, B26_COVERED, B26_PARAMS)
    assert base == B26_BASE


def test_rfc9421_b26_signature_byte_for_byte() -> None:
    out = httpsig.sign(RFC_METHOD, RFC_URL, RFC_HEADERS, B26_COVERED, B26_PARAMS, rfc_signer(),
                       label="sig-b26")
    assert out == {"Signature-Input": B26_SIGNATURE_INPUT, "Signature": B26_SIGNATURE}


def test_rfc9421_b26_verifies() -> None:
    headers = {**RFC_HEADERS, "Signature-Input": B26_SIGNATURE_INPUT, "Signature": B26_SIGNATURE}
    key = VerifyKey.from_b64(RFC_KEY_X)
    assert httpsig.verify(RFC_METHOD, RFC_URL, headers, key, label="sig-b26") is None
    with pytest.raises(SignatureError):
        httpsig.verify("PUT", RFC_URL, headers, key, label="sig-b26")


def test_rfc9421_b23_signature_base_byte_for_byte() -> None:
    assert httpsig.signature_base(RFC_METHOD, RFC_URL, RFC_HEADERS, B23_COVERED,
                                  B23_PARAMS) == B23_BASE


def test_rfc9530_b1_sha256_digest() -> None:
    assert httpsig.content_digest(RFC9530_B1_BODY) == RFC9530_B1_DIGEST
    httpsig.verify_content_digest(RFC9530_B1_BODY, RFC9530_B1_DIGEST)
    with pytest.raises(DigestMismatchError):
        httpsig.verify_content_digest(RFC_BODY, RFC9530_B1_DIGEST)


def test_rfc9421_b2_sha512_digest_is_checked_when_present() -> None:
    sha512 = RFC_HEADERS["Content-Digest"]
    httpsig.verify_content_digest(RFC_BODY, f"{httpsig.content_digest(RFC_BODY)}, {sha512}")
    with pytest.raises(DigestMismatchError):   # right sha-256, wrong sha-512
        httpsig.verify_content_digest(RFC9530_B1_BODY,
                                      f"{httpsig.content_digest(RFC9530_B1_BODY)}, {sha512}")
    with pytest.raises(MalformedError):        # sha-256 is mandatory
        httpsig.verify_content_digest(RFC_BODY, sha512)


def test_content_digest_ignores_unknown_algorithms_and_rejects_bad_shapes() -> None:
    good = httpsig.content_digest(b"x")
    httpsig.verify_content_digest(b"x", f"md5=:AAAA:, {good}, unixsum=7")
    for bad in ("sha-256=:AAAA:", "sha-256=1", "sha-256=(:AAAA:)", "sha-256", good + ", " + good,
                "sha-256=:" + "A" * 43 + ":"):
        with pytest.raises(MalformedError):
            httpsig.verify_content_digest(b"x", bad)


# --------------------------------------------------------------------------- derived components


def base_lines(url: str, covered: list[str], method: str = "GET",
               headers: httpsig.Headers = ()) -> list[str]:
    return httpsig.signature_base(method, url, headers, covered, {}).decode().split("\n")[:-1]


def test_derived_components() -> None:
    cov = ["@method", "@authority", "@scheme", "@path", "@query", "@request-target", "@target-uri"]
    assert base_lines("HTTPS://Example.COM:443/a/b%2Fc?x=1&y=%20", cov, "post") == [
        '"@method": post',                      # RFC 9421 §2.2.1: no case change
        '"@authority": example.com',
        '"@scheme": https',
        '"@path": /a/b%2Fc',
        '"@query": ?x=1&y=%20',
        '"@request-target": /a/b%2Fc?x=1&y=%20',
        '"@target-uri": https://example.com/a/b%2Fc?x=1&y=%20',
    ]
    assert base_lines("http://example.com:8080", ["@authority", "@path", "@query"]) == [
        '"@authority": example.com:8080', '"@path": /', '"@query": ?']
    assert base_lines("http://example.com:80/p?", ["@authority", "@query"]) == [
        '"@authority": example.com', '"@query": ?']
    assert base_lines("https://[2001:DB8::1]:8443/", ["@authority"]) == [
        '"@authority": [2001:db8::1]:8443']


def test_header_names_any_case_and_multiple_lines() -> None:
    a = base_lines("https://h/", ["x-a", "x-b"], headers={"X-A": " one ", "x-b": "two"})
    b = base_lines("https://h/", ["x-a", "x-b"], headers=[("x-a", "one"), ("X-B", "two")])
    assert a == b == ['"x-a": one', '"x-b": two']
    assert base_lines("https://h/", ["x-a"], headers=[("X-A", "1"), ("x-a", "2")]) == [
        '"x-a": 1, 2']                          # RFC 9421 §2.1


@pytest.mark.parametrize("url", [
    "ftp://h/", "https://user@h/", "https://h/#frag", "https://h/a b", "h/path", "https://",
    "https://h:99999/", "https://[::1/", "https://h\n/", "https://h/\u00e9", "https://h%41/",
    "https://h" + "/a" * 5000,
])
def test_bad_target_uri_is_malformed(url: str) -> None:
    with pytest.raises(MalformedError):
        httpsig.signature_base("GET", url, {}, ["@path"], {})


@pytest.mark.parametrize("covered", [
    "@method", ["@method", "@method"], ["@status"], ["Content-Type"], ["@signature-params"],
    ["a b"], [1], [f"h{i}" for i in range(33)],
])
def test_bad_covered_lists_are_malformed(covered: Any) -> None:
    with pytest.raises(MalformedError):
        httpsig.signature_base("GET", "https://h/", {f"h{i}": "v" for i in range(33)}, covered, {})


@pytest.mark.parametrize("params", [
    {"created": "1"}, {"created": True}, {"keyid": 1}, {"unknown": "x"}, {"keyid": "\u00e9"},
    {"created": 10 ** 16},
])
def test_bad_params_are_malformed(params: Any) -> None:
    with pytest.raises(MalformedError):
        httpsig.signature_base("GET", "https://h/", {}, ["@path"], params)


def test_params_serialised_in_given_order_with_escapes() -> None:
    sp = httpsig.signature_params(["@path"], {"tag": 'a"b\\c', "created": 5, "alg": "ed25519"})
    assert sp == '("@path");tag="a\\"b\\\\c";created=5;alg="ed25519"'


def test_covered_header_absent_or_with_newline() -> None:
    with pytest.raises(SignatureError):
        httpsig.signature_base("GET", "https://h/", {}, ["date"], {})
    with pytest.raises(MalformedError):   # a CR/LF would let a value forge base lines
        httpsig.signature_base("GET", "https://h/", {"x": 'v\n"@method": PUT'}, ["x"], {})


# --------------------------------------------------------------------------- Schakel profile

SEED = bytes(range(32))
SIGNER = Signer(SEED)
OTHER = Signer(bytes(range(1, 33)))
CREATED = 1767225600  # 2026-01-01T00:00:00Z
NONCE = b64e(bytes(range(0xA0, 0xB0)))
URL = "https://schakel.example/v1/networks/AAECAwQFBgcICQoLDA0ODw/cases?status=open"
BODY = b'{"kind":"case","severity":2}'
USER = "mw-0042"


def resolver(*signers: Signer) -> Callable[[str], VerifyKey]:
    keys = {s.key_id: s.verify_key for s in signers}

    def resolve(keyid: str) -> VerifyKey:
        if keyid not in keys:
            raise UntrustedKeyError("unknown key")
        return keys[keyid]
    return resolve


def signed(method: str = "POST", url: str = URL, body: bytes = BODY, *,
           signer: Signer = SIGNER, created: int = CREATED, nonce: str = NONCE,
           acting_user: str = USER, headers: dict[str, str] | None = None) -> dict[str, str]:
    extra = dict(headers or {"Content-Type": "application/json"})
    return {**extra, **httpsig.sign_request(method, url, extra, body, signer, created=created,
                                            nonce=nonce, acting_user=acting_user)}


def crafted(*, covered: Any = httpsig.COMPONENTS, params: dict[str, Any] | None = None,
            signer: Signer = SIGNER, label: str = "sig1", method: str = "POST",
            body: bytes = BODY, acting_user: str = USER) -> dict[str, str]:
    """A request signed with the generic RFC 9421 signer, to build profile violations."""
    if params is None:
        params = {"created": CREATED, "nonce": NONCE, "keyid": signer.key_id, "alg": "ed25519",
                  "tag": "schakel/v1"}
    headers = {"Content-Digest": httpsig.content_digest(body), "Schakel-Acting-User": acting_user}
    return {**headers, **httpsig.sign(method, URL, headers, covered, params, signer, label=label)}


def check(headers: httpsig.Headers, method: str = "POST", url: str = URL, body: bytes = BODY, *,
          now: int = CREATED, resolve: Callable[[str], VerifyKey] | None = None,
          ) -> httpsig.VerifiedRequest:
    return httpsig.verify_request(method, url, headers, body, resolve_key=resolve or resolver(SIGNER),
                                  now=now)


def test_round_trip() -> None:
    headers = signed()
    assert set(headers) == {"Content-Type", "Content-Digest", "Schakel-Acting-User",
                            "Signature-Input", "Signature"}
    v = check(headers)
    assert (v.keyid, v.created, v.nonce, v.acting_user, v.label) == (
        SIGNER.key_id, CREATED, NONCE, USER, "sig1")
    assert v.covered == httpsig.COMPONENTS
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@authority" "@path" "@query" "content-digest" "schakel-acting-user")'
        f';created={CREATED};nonce="{NONCE}";keyid="{SIGNER.key_id}";alg="ed25519"'
        ';tag="schakel/v1"')


def test_round_trip_empty_body_covers_digest_of_nothing() -> None:
    headers = signed("GET", "https://schakel.example/v1/openapi.json", b"", headers={})
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    check(headers, "GET", "https://schakel.example/v1/openapi.json", b"")


def test_round_trip_with_case_insensitive_header_pairs() -> None:
    pairs = [(k.upper(), v) for k, v in signed().items()]
    check(pairs)


@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       path=st.from_regex(r"/v1(/[A-Za-z0-9._~%-]{0,12}){0,4}", fullmatch=True),
       query=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9=&%_-]{0,20}", fullmatch=True)),
       body=st.binary(max_size=256), user=st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True),
       skew=st.integers(-300, 300))
def test_round_trip_property(method: str, path: str, query: str | None, body: bytes, user: str,
                             skew: int) -> None:
    url = "https://schakel.example" + path + ("" if query is None else "?" + query)
    v = check(signed(method, url, body, acting_user=user), method, url, body, now=CREATED + skew)
    assert v.acting_user == user


def test_replay_key_describes_what_to_remember() -> None:
    key = httpsig.replay_key(check(signed()))
    assert key == httpsig.ReplayKey(keyid=SIGNER.key_id, nonce=NONCE, remember_until=CREATED + 300)


# ---- one test per attack


def test_tampered_method() -> None:
    with pytest.raises(SignatureError):
        check(signed("POST"), "PUT")


def test_lowercase_method_refused() -> None:
    with pytest.raises(MalformedError):
        check(signed(), "post")


def test_tampered_path() -> None:
    with pytest.raises(SignatureError):
        check(signed(), url=URL.replace("/cases", "/cases/other"))


def test_tampered_query() -> None:
    for url in (URL.replace("open", "closed"), URL.split("?")[0], URL + "&all=1"):
        with pytest.raises(SignatureError):
            check(signed(), url=url)


def test_tampered_authority() -> None:
    for url in (URL.replace("schakel.example", "evil.example"),
                URL.replace("schakel.example", "schakel.example:8443"),
                URL.replace("https://", "http://").replace("schakel.example", "schakel.example:443")):
        with pytest.raises(SignatureError):
            check(signed(), url=url)


def test_tampered_body_digest_mismatch() -> None:
    with pytest.raises(DigestMismatchError):
        check(signed(), body=BODY.replace(b"2", b"3"))


def test_tampered_body_with_recomputed_digest() -> None:
    headers = signed()
    headers["Content-Digest"] = httpsig.content_digest(b"{}")
    with pytest.raises(SignatureError):
        check(headers, body=b"{}")


def test_acting_user_changed() -> None:
    headers = signed()
    headers["Schakel-Acting-User"] = "someone-else"
    with pytest.raises(SignatureError):
        check(headers)


def test_content_digest_header_stripped() -> None:
    headers = signed()
    del headers["Content-Digest"]
    with pytest.raises(SignatureError):
        check(headers)


def test_content_digest_not_covered() -> None:
    covered = [c for c in httpsig.COMPONENTS if c != "content-digest"]
    with pytest.raises(SignatureError):
        check(crafted(covered=covered))


@pytest.mark.parametrize("component", httpsig.COMPONENTS)
def test_required_component_removed(component: str) -> None:
    covered = [c for c in httpsig.COMPONENTS if c != component]
    with pytest.raises(SignatureError):
        check(crafted(covered=covered))


def test_extra_covered_components_are_fine() -> None:
    headers = crafted(covered=[*httpsig.COMPONENTS, "@scheme"])
    assert check(headers).covered[-1] == "@scheme"


@pytest.mark.parametrize("param", ["created", "nonce", "keyid", "alg", "tag"])
def test_mandatory_parameter_missing(param: str) -> None:
    params = {"created": CREATED, "nonce": NONCE, "keyid": SIGNER.key_id, "alg": "ed25519",
              "tag": "schakel/v1"}
    del params[param]
    with pytest.raises(SignatureError):
        check(crafted(params=params))


def test_created_missing() -> None:
    with pytest.raises(SignatureError):
        check(crafted(params={"nonce": NONCE, "keyid": SIGNER.key_id, "alg": "ed25519",
                              "tag": "schakel/v1"}))


def test_nonce_missing() -> None:
    with pytest.raises(SignatureError):
        check(crafted(params={"created": CREATED, "keyid": SIGNER.key_id, "alg": "ed25519",
                              "tag": "schakel/v1"}))


@pytest.mark.parametrize("nonce", [b64e(bytes(15)), b64e(bytes(65)), "AAAAAAAAAAAAAAAAAAAAAA==",
                                   "not base64url!!!!!!!!!!", "AAAAAAAAAAAAAAAAAAAAAB"])
def test_bad_nonce_form(nonce: str) -> None:
    params = {"created": CREATED, "nonce": nonce, "keyid": SIGNER.key_id, "alg": "ed25519",
              "tag": "schakel/v1"}
    with pytest.raises(MalformedError):
        check(crafted(params=params))
    with pytest.raises(MalformedError):
        signed(nonce=nonce)


def test_stale_created_past() -> None:
    check(signed(), now=CREATED + 300)
    with pytest.raises(StaleRequestError):
        check(signed(), now=CREATED + 301)


def test_stale_created_future() -> None:
    check(signed(), now=CREATED - 300)
    with pytest.raises(StaleRequestError):
        check(signed(), now=CREATED - 301)


def test_expired_signature() -> None:
    params = {"created": CREATED, "nonce": NONCE, "keyid": SIGNER.key_id, "alg": "ed25519",
              "tag": "schakel/v1", "expires": CREATED + 10}
    check(crafted(params=params), now=CREATED + 10)
    with pytest.raises(StaleRequestError):
        check(crafted(params=params), now=CREATED + 11)


def test_wrong_alg_or_tag() -> None:
    for alg, tag in (("hmac-sha256", "schakel/v1"), ("ed25519", "other-app")):
        params = {"created": CREATED, "nonce": NONCE, "keyid": SIGNER.key_id, "alg": alg,
                  "tag": tag}
        with pytest.raises(SignatureError):
            check(crafted(params=params))


def test_wrong_key_for_keyid() -> None:
    # The resolver maps our keyid to another key (a resolver bug or a swapped key store).
    with pytest.raises(SignatureError):
        check(signed(), resolve=lambda keyid: OTHER.verify_key)


def test_unknown_keyid() -> None:
    with pytest.raises(UntrustedKeyError):
        check(signed(signer=OTHER))


def test_signature_from_another_key() -> None:
    # The attacker signs with its own key but claims the victim's keyid.
    params = {"created": CREATED, "nonce": NONCE, "keyid": SIGNER.key_id, "alg": "ed25519",
              "tag": "schakel/v1"}
    with pytest.raises(SignatureError):
        check(crafted(params=params, signer=OTHER), resolve=resolver(SIGNER, OTHER))


def test_signature_label_mismatch() -> None:
    headers = signed()
    headers["Signature"] = headers["Signature"].replace("sig1=", "sig2=", 1)
    with pytest.raises(SignatureError):
        check(headers)
    with pytest.raises(SignatureError):   # consistent but not the Schakel label
        check(crafted(label="sig2"))


def test_other_labels_are_ignored() -> None:
    headers = signed()
    extra = httpsig.sign("POST", URL, {}, ["@path"], {"created": 1}, OTHER, label="proxy")
    headers["Signature-Input"] += ", " + extra["Signature-Input"]
    headers["Signature"] = extra["Signature"] + ", " + headers["Signature"]
    check(headers)


@pytest.mark.parametrize("name", ["Signature", "Signature-Input", "Content-Digest",
                                  "Schakel-Acting-User"])
def test_duplicated_headers(name: str) -> None:
    headers = signed()
    pairs = [*headers.items(), (name.lower(), headers[name])]
    with pytest.raises(MalformedError):
        check(pairs)
    with pytest.raises(MalformedError):   # the same name twice in a dict, differing in case
        check({**headers, name.upper(): headers[name]})


@pytest.mark.parametrize("name,value", [
    ("Signature-Input", 'sig1=("@method" "@path"'),
    ("Signature-Input", 'sig1=("@method");created=1;created=2'),
    ("Signature-Input", 'sig1=("@method";x);created=1'),
    ("Signature-Input", "sig1=:AAAA:"),
    ("Signature-Input", 'sig1=("@method");keyid=tok'),
    ("Signature", "sig1=:not base64:"),
    ("Signature", "sig1=:AAAA"),
    ("Signature", 'sig1="text"'),
    ("Signature", "sig1=:AAAA:, sig1=:AAAA:"),
])
def test_garbled_signature_headers(name: str, value: str) -> None:
    headers = signed()
    headers[name] = value
    with pytest.raises(MalformedError):
        check(headers)


@pytest.mark.parametrize("name,value", [("Content-Digest", "sha-256=:x:"),
                                        ("Schakel-Acting-User", "")])
def test_garbled_covered_headers(name: str, value: str) -> None:
    # Covered headers are signed: garbling one breaks the signature before anything parses it.
    headers = signed()
    headers[name] = value
    with pytest.raises(SignatureError):
        check(headers)


def test_short_signature_rejected() -> None:
    headers = signed()
    headers["Signature"] = "sig1=:" + base64.b64encode(bytes(63)).decode() + ":"
    with pytest.raises(SignatureError):
        check(headers)


def test_not_signed_at_all() -> None:
    headers = signed()
    del headers["Signature"], headers["Signature-Input"]
    with pytest.raises(SignatureError):
        check(headers)


def test_oversized_headers() -> None:
    headers = signed()
    big = dict(headers, **{"Signature-Input": headers["Signature-Input"] + ";x" * 3000})
    with pytest.raises(MalformedError):
        check(big)
    with pytest.raises(MalformedError):
        check({**headers, "X-Junk": "a" * 9000})
    with pytest.raises(MalformedError):
        check([*headers.items(), *((f"x-{i}", "v") for i in range(300))])
    with pytest.raises(MalformedError):
        check(headers, url="https://schakel.example/" + "a" * 9000)


@pytest.mark.parametrize("user", ["", " lead", "trail ", "x" * 129, "tab\there", "caf\u00e9"])
def test_bad_acting_user(user: str) -> None:
    with pytest.raises(MalformedError):
        signed(acting_user=user)


def test_acting_user_too_long_on_the_wire() -> None:
    with pytest.raises(MalformedError):
        check(crafted(acting_user="x" * 129))


def test_sign_request_refuses_preexisting_signature_headers() -> None:
    for name in ("Signature", "content-digest", "Schakel-Acting-User", "Signature-Input"):
        with pytest.raises(MalformedError):
            signed(headers={name: "x"})


def test_uncovered_non_ascii_header_does_not_break_verification() -> None:
    check({**signed(), "User-Agent": "caf\u00e9/1.0"})


# ---- property tests


SIGNED = signed()
RAW_SIG = base64.b64decode(SIGNED["Signature"][len("sig1=:"):-1])


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(0, 8 * len(RAW_SIG) - 1))
def test_flipping_any_signature_bit_is_rejected(bit: int) -> None:
    flipped = bytearray(RAW_SIG)
    flipped[bit // 8] ^= 1 << (bit % 8)
    headers = dict(SIGNED, Signature="sig1=:" + base64.b64encode(bytes(flipped)).decode() + ":")
    with pytest.raises(SignatureError):
        check(headers)


SF_ALPHABET = ' \t;=,:()"?*-_.+/\\01239azAZ@%\x7f\u00e9'


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.text(alphabet=SF_ALPHABET, max_size=80)))
def test_structured_field_parser_only_raises_malformed(text: str) -> None:
    try:
        httpsig.parse_dictionary(text)
    except MalformedError:
        pass


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["Signature-Input", "Signature", "Content-Digest"]),
       text=st.text(alphabet=SF_ALPHABET, max_size=60))
def test_garbage_headers_only_raise_protocol_errors(name: str, text: str) -> None:
    try:
        check(dict(SIGNED, **{name: text}))
    except ProtocolError:
        pass


def test_parse_dictionary_shapes() -> None:
    parsed = httpsig.parse_dictionary(
        'a=("x" "y";p=1);q=?0, b=:AAE=:, c, d=tok/en;z=-5, e="s\\"q"')
    assert parsed["a"] == (((("x", {}), ("y", {"p": 1}))), {"q": False})
    assert parsed["b"] == (b"\x00\x01", {})
    assert parsed["c"] == (True, {})
    assert parsed["d"] == ("tok/en", {"z": -5}) and isinstance(parsed["d"][0], httpsig.Token)
    assert parsed["e"] == ('s"q', {})
    for bad in ("a=1.5", "a=1234567890123456", "A=1", "a=1,", "a=:AAE:", "a=(1", "a=\u00e9",
                "a=1 b=2", 5, "a=" + "1" * 5000):
        with pytest.raises(MalformedError):
            httpsig.parse_dictionary(bad)


# --------------------------------------------------------------------------- vector file

VECTOR_PATH = ROOT / "protocol" / "vectors" / "httpsig.json"
VECTOR_CASES = [
    {"description": "POST with a JSON body and a query string",
     "method": "POST", "url": URL, "headers": {"Content-Type": "application/json"},
     "body": BODY.decode(), "created": CREATED, "nonce": NONCE, "acting_user": USER},
    {"description": "GET without a body or query: digest of the empty body, @query is '?'",
     "method": "GET", "url": "https://schakel.example/v1/networks/AAECAwQFBgcICQoLDA0ODw",
     "headers": {}, "body": "", "created": CREATED + 60, "nonce": b64e(bytes(range(16))),
     "acting_user": "vrijwilliger 7"},
]


def build_vectors() -> dict[str, Any]:
    cases = []
    for case in VECTOR_CASES:
        body = case["body"].encode()
        added = httpsig.sign_request(case["method"], case["url"], case["headers"], body, SIGNER,
                                     created=case["created"], nonce=case["nonce"],
                                     acting_user=case["acting_user"])
        params = httpsig.parse_dictionary(added["Signature-Input"])["sig1"][1]
        base = httpsig.signature_base(case["method"], case["url"], {**case["headers"], **added},
                                      httpsig.COMPONENTS, params)
        cases.append({**case, "signature_base": base.decode(), "added_headers": added,
                      "verify_at": case["created"]})
    return {
        "description": "Schakel request-signing profile (docs/protocol.md §10): RFC 9421 "
                       "ed25519 over a fixed component list, RFC 9530 Content-Digest. "
                       "Deterministic test key; never use it for anything real.",
        "seed_hex": SEED.hex(), "public_key": SIGNER.verify_key.b64(), "keyid": SIGNER.key_id,
        "cases": cases,
    }


def render_vectors() -> str:
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


def test_vector_file_is_current() -> None:
    assert VECTOR_PATH.read_text(encoding="utf-8") == render_vectors(), (
        "protocol/vectors/httpsig.json is stale: review the change, then run "
        "`.venv/bin/python tests/test_httpsig.py --regenerate`")


def test_vector_file_verifies_on_its_own() -> None:
    data = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))
    key = VerifyKey.from_b64(data["public_key"])
    assert Signer(bytes.fromhex(data["seed_hex"])).verify_key == key
    for case in data["cases"]:
        headers = {**case["headers"], **case["added_headers"]}
        v = httpsig.verify_request(case["method"], case["url"], headers, case["body"].encode(),
                                   resolve_key=lambda keyid: key, now=case["verify_at"])
        assert (v.keyid, v.nonce, v.acting_user) == (data["keyid"], case["nonce"],
                                                     case["acting_user"])


def test_spec_example_matches_vector_file() -> None:
    spec = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    case = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))["cases"][0]
    assert case["signature_base"] in spec
    for name, value in case["added_headers"].items():
        assert f"{name}: {value}" in spec


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        VECTOR_PATH.write_text(render_vectors(), encoding="utf-8")
        print(f"wrote {VECTOR_PATH}")
    else:
        print(__doc__)
