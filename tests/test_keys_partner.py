"""keys/partner.py, and the keys/ package's import rule (style: only protocol/crypto.py
imports nacl)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from schakel import keys
from schakel.keys.partner import PartnerKeys, PublicKeys
from schakel.protocol.errors import MalformedError

KEYS_DIR = Path(__file__).resolve().parent.parent / "keys"


def test_generate_gives_distinct_keys_with_key_id() -> None:
    a, b = PartnerKeys.generate(), PartnerKeys.generate()
    assert a.key_id != b.key_id
    assert a.public.key_id == a.key_id == a.signer.key_id == a.public.sign.key_id


def test_repr_shows_no_secret() -> None:
    k = PartnerKeys.generate()
    text = repr(k) + repr(k.signer) + repr(k.box_secret)
    assert k.key_id in repr(k)
    assert k.signer.export_seed().hex() not in text
    assert "export" not in dir(k)


def test_public_keys_json_round_trip() -> None:
    pub = PartnerKeys.generate().public
    assert PublicKeys.from_json(pub.to_json()) == pub


@pytest.mark.parametrize("obj", [{}, {"sign": "x", "box": "y"}, [], "k",
                                 {"sign": "A" * 43, "box": "A" * 43, "x": 1}])
def test_public_keys_from_json_is_strict(obj: object) -> None:
    with pytest.raises(MalformedError):
        PublicKeys.from_json(obj)


def test_public_keys_are_frozen() -> None:
    pub = PartnerKeys.generate().public
    with pytest.raises(AttributeError):
        pub.sign = pub.sign  # type: ignore[misc]


def test_keys_package_never_imports_nacl() -> None:
    for path in KEYS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "nacl" or n.startswith("nacl.") for n in names), path


def test_public_api_is_exported() -> None:
    assert getattr(keys, "__file__", None), (
        "`keys` was imported as a namespace package, so keys/__init__.py did not run: the "
        "editable install predates keys/__init__.py (re-run `pip install -e .`) or set "
        "pytest `pythonpath = [\".\"]`")
    for name in keys.__all__:
        assert hasattr(keys, name), name
