"""Canonical JSON and signatures: the fast encoder equals RFC 8785 byte for byte."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sync.signing import (
    KeyRing,
    SignatureError,
    canonical,
    generate_key,
    load_private_key,
    load_public_key,
    public_b64,
    sign,
    sign_bytes,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fast_canonical_equals_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError, UnicodeEncodeError):
        return
    assert canonical(value) == expected


@pytest.mark.parametrize("value", [1.0, -0.0, 1e-7, 1e-5, 0.0001, 1e16, 1e21, 123456789.125, 5e-324,
                                   {"\U0001F600": 1, "\uffff": 2}, "a\u2028b\x7f\x1f", 2**53 - 1])
def test_edge_cases_match_rfc8785(value: object) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_sign_and_verify_with_rotation_and_tampering() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ring = KeyRing.from_config([("c-1", public_b64(old)), ("c-2", public_b64(new))])
    body = {"type": "manifests", "seq": 3, "items": [{"confidence": 0.93, "plate": "51C12345"}]}
    assert ring.verify(json.loads(sign_bytes(body, old, "c-1"))) == "c-1"
    assert ring.verify(json.loads(sign_bytes(body, new, "c-2"))) == "c-2"
    doc = sign(body, old, "c-1")
    # re-serialized with other member order and spacing: still verifies (canonical JSON)
    assert ring.verify(json.loads(json.dumps(doc, indent=3))) == "c-1"
    for tamper, code in [
        (lambda d: d["items"][0].__setitem__("plate", "51C12346"), "BAD_SIGNATURE"),
        (lambda d: d.__setitem__("kid", "c-2"), "BAD_SIGNATURE"),
        (lambda d: d.__setitem__("kid", "c-9"), "UNKNOWN_KEY"),
        (lambda d: d.pop("sig"), "UNSIGNED"),
        (lambda d: d.__setitem__("sig", "%%%"), "BAD_SIGNATURE"),
    ]:
        forged = json.loads(json.dumps(doc))
        tamper(forged)
        with pytest.raises(SignatureError) as err:
            ring.verify(forged)
        assert err.value.code == code


def test_nan_is_not_signable_silently() -> None:
    ring = KeyRing({"k": Ed25519PrivateKey.generate().public_key()})
    with pytest.raises(SignatureError):
        ring.verify({"x": math.nan, "kid": "k", "sig": base64.b64encode(b"0" * 64).decode()})


def test_key_files_round_trip(tmp_path: Path) -> None:
    made = generate_key(tmp_path / "k" / "site.key")
    assert (made.private_path.stat().st_mode & 0o777) == 0o600
    key = load_private_key(made.private_path)
    assert public_b64(key) == made.public_b64 == made.public_path.read_text().strip()
    assert public_b64(load_public_key(made.public_b64)) == made.public_b64
    with pytest.raises(FileExistsError):
        generate_key(made.private_path)
    with pytest.raises(ValueError, match="32 bytes"):
        load_public_key(base64.b64encode(b"short").decode())


_SIGNER = Ed25519PrivateKey.generate()
_RING = KeyRing({"c-1": _SIGNER.public_key()})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_loads_verified_agrees_with_the_general_path(body: dict[str, object]) -> None:
    """Wire bytes from sign_bytes: the fast path returns exactly what parse + verify returns."""
    try:
        payload = sign_bytes(body, _SIGNER, "c-1")
    except (ValueError, TypeError, UnicodeEncodeError, rfc8785.CanonicalizationError):
        return   # not signable (e.g. lone surrogates); the signer refuses, nothing to compare
    slow = json.loads(payload)
    try:
        expected = (slow, _RING.verify(slow))
    except SignatureError:
        # e.g. the float 2.0**53 is written "9007199254740992", which parses back as an integer
        # RFC 8785 refuses: the general path cannot re-canonicalize what the signer signed.
        # The fast path checks the bytes themselves, so it still vouches for them.
        assert _RING.loads_verified(payload) == (slow, "c-1")
        return
    assert _RING.loads_verified(payload) == expected
    assert _RING.loads_verified(payload + b"\n") == expected


def test_loads_verified_declines_what_it_cannot_vouch_for() -> None:
    """Anything but untouched sign_bytes output is left to the general path (None), never accepted."""
    body = {"type": "manifests", "seq": 3, "items": [{"plate": "51C12345"}]}
    payload = sign_bytes(body, _SIGNER, "c-1")
    other = Ed25519PrivateKey.generate()
    doc = json.loads(payload)
    assert _RING.loads_verified(payload) is not None
    assert _RING.loads_verified(json.dumps(doc, indent=2).encode()) is None   # re-serialized
    assert _RING.loads_verified(payload.replace(b"51C12345", b"51C12346")) is None   # tampered
    assert _RING.loads_verified(sign_bytes(body, other, "c-1")) is None       # wrong key
    assert _RING.loads_verified(sign_bytes(body, other, "c-9")) is None       # unknown key
    # signed bytes that hold a "sig" member of their own (sign_bytes never writes them)
    signed = canonical({**body, "kid": "c-1", "sig": "x"})
    sig = base64.b64encode(_SIGNER.sign(signed))
    assert _RING.loads_verified(signed[:-1] + b',"sig":"' + sig + b'"}') is None
    # a valid tail glued onto unsigned bytes
    tail = payload[payload.rfind(b',"sig"'):]
    assert _RING.loads_verified(b'{"kid":"c-1","seq":4' + tail) is None
    assert _RING.loads_verified(b"\xff\xfe" + payload) is None
    assert _RING.loads_verified(b"") is None
