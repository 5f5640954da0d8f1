"""The fast path of ``schakel.protocol.sfv.parse_dictionary`` gives exactly the general parser's
result (types included) on every value it takes, and leaves every other value to it."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol import httpsig
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import MalformedError
from schakel.protocol.sfv import _fast_dictionary, _Parser, parse_dictionary


def _general(text: str) -> Any:
    try:
        return _Parser(text, "x").dictionary()
    except MalformedError as exc:
        return ("error", exc.message)


def _typed(value: Any) -> Any:
    """``value`` with the type of every leaf, so that str and Token, 1 and True differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value).__name__, value)


def _same(text: str) -> None:
    fast = _fast_dictionary(text)
    if fast is not None:
        assert _typed(fast) == _typed(_general(text)), text
    assert _typed(_general(text)) == _typed(_general(text))


KEY = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,5}", fullmatch=True) | st.sampled_from(
    ["sig1", "sha-256", "created", "nonce", "keyid", "alg", "tag", "a" * 64, "a" * 65])
STRING = st.text(st.characters(min_codepoint=0x09, max_codepoint=0x7f), max_size=12).map(
    lambda s: '"' + s + '"') | st.sampled_from(['"@method"', '"a b"', '"x\\"y"', '""'])
INTEGER = st.from_regex(r"-?[0-9]{1,17}", fullmatch=True) | st.sampled_from(["1.5", "0", "-0"])
BYTES = st.binary(max_size=70).map(lambda b: ":" + base64.b64encode(b).decode() + ":") \
    | st.sampled_from([":AB=:", ":AA==:", ":A:", "::", ":====:", ":AAA=:"])
PARAM_VALUE = INTEGER | STRING | BYTES | st.sampled_from(["?1", "tok", ""])
PARAM = st.tuples(st.sampled_from([";", "; ", ";;"]), KEY, st.sampled_from(["=", ""]),
                  PARAM_VALUE).map("".join)
PARAMS = st.lists(PARAM, max_size=18).map("".join)
INNER = st.tuples(st.lists(STRING | INTEGER, max_size=34),
                  st.sampled_from([" ", "  "])).map(lambda x: "(" + x[1].join(x[0]) + ")")
MEMBER = st.tuples(KEY, st.sampled_from(["=", "= "]), INNER | BYTES | STRING, PARAMS).map(
    lambda x: "".join(x))
FIELD = st.lists(MEMBER, min_size=1, max_size=2).map(", ".join) | MEMBER.map(
    lambda m: " " + m) | MEMBER.map(lambda m: m + " ")

#: Values of the fast path's shape (most of them taken by it), with a few near misses.
PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e, exclude_characters='"\\'),
                max_size=10).map(lambda s: '"' + s + '"')
SHAPED = st.tuples(
    KEY, st.lists(PLAIN, max_size=34).map(lambda items: "=(" + " ".join(items) + ")"),
    st.lists(st.tuples(KEY, st.from_regex(r"-?[0-9]{1,16}", fullmatch=True) | PLAIN).map(
        lambda kv: f";{kv[0]}={kv[1]}"), max_size=18).map("".join)).map("".join) \
    | st.tuples(KEY, BYTES).map("=".join)


@settings(max_examples=1500, deadline=None)
@given(FIELD | SHAPED)
def test_fast_path_equals_the_parser(text: str) -> None:
    _same(text)


@settings(max_examples=1500, deadline=None)
@given(SHAPED)
def test_fast_path_equals_the_parser_on_its_shapes(text: str) -> None:
    _same(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60))
def test_fast_path_on_arbitrary_ascii(text: str) -> None:
    _same(text)


def test_real_signature_headers_take_the_fast_path() -> None:
    signer = Signer.generate()
    added = httpsig.sign_request("POST", "http://127.0.0.1:8080/v1/x?y=1", {}, b"{}", signer,
                                 created=1_700_000_000, nonce="A" * 22, acting_user="u-1")
    for name in ("Signature-Input", "Signature", "Content-Digest"):
        assert _fast_dictionary(added[name]) is not None, name
        _same(added[name])
        assert _typed(parse_dictionary(added[name])) == _typed(_general(added[name]))


def test_limits_are_left_to_the_parser() -> None:
    many = "sig1=(" + " ".join(f'"h{i}"' for i in range(33)) + ")"
    assert _fast_dictionary(many) is None
    params = "sig1=()" + "".join(f";p{i}=1" for i in range(17))
    assert _fast_dictionary(params) is None
    assert _fast_dictionary('sig1=();a=1;a=2') is None
    assert _fast_dictionary("sig1=:AB=:") is None           # non-canonical base64
    for text in (many, params, 'sig1=();a=1;a=2', "sig1=:AB=:"):
        assert _general(text)[0] == "error"
