"""Key ids, key loading, record key shares and protected user keys."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeperpam.crypto import errors, keys

FAST = 1000  # PBKDF2 iterations for tests only; readers refuse it unless told


@pytest.fixture(scope="module")
def user_key():
    return keys.record_key_generate()


def test_share_round_trip(keyset, user_key) -> None:
    share = keys.record_key_share_wrap(record_private_key=keyset.record,
                                       user_public_key=user_key.public_key(), user_id="7")
    opened = keys.record_key_share_unwrap(share, user_private_key=user_key, user_id="7",
                                          record_kid=keys.record_key_id(keyset.record))
    assert keys.private_key_der(opened) == keys.private_key_der(keyset.record)


def test_share_for_another_user_id_fails(keyset, user_key) -> None:
    share = keys.record_key_share_wrap(record_private_key=keyset.record,
                                       user_public_key=user_key.public_key(), user_id="7")
    with pytest.raises(errors.BadKeyShare):
        keys.record_key_share_unwrap(share, user_private_key=user_key, user_id="8",
                                     record_kid=keys.record_key_id(keyset.record))


def test_share_claiming_another_record_key_fails(keyset, user_key) -> None:
    share = keys.record_key_share_wrap(record_private_key=keyset.record,
                                       user_public_key=user_key.public_key(), user_id="7")
    with pytest.raises(errors.BadKeyShare):
        keys.record_key_share_unwrap(share, user_private_key=user_key, user_id="7",
                                     record_kid=keys.record_key_id(keyset.other_record))


def test_share_for_another_user_key_fails(keyset, user_key) -> None:
    share = keys.record_key_share_wrap(record_private_key=keyset.record,
                                       user_public_key=user_key.public_key(), user_id="7")
    with pytest.raises(errors.BadKeyShare):
        keys.record_key_share_unwrap(share, user_private_key=keyset.other_record, user_id="7",
                                     record_kid=keys.record_key_id(keyset.record))


def test_protect_unlock_round_trip(user_key) -> None:
    protected = keys.user_key_protect(user_key, passphrase="pw", user_id="1", iterations=FAST)
    assert set(protected) == {"kdf", "iterations", "salt", "nonce", "ct"}
    unlocked = keys.user_key_unlock(protected, passphrase="pw", user_id="1",
                                    min_iterations=FAST)
    assert keys.record_key_id(unlocked) == keys.record_key_id(user_key)


def test_default_iterations_are_at_least_a_million(user_key) -> None:
    assert keys.DEFAULT_PBKDF2_ITERATIONS >= 1_000_000
    assert keys.MIN_PBKDF2_ITERATIONS >= 1_000_000


def test_wrong_passphrase(user_key) -> None:
    protected = keys.user_key_protect(user_key, passphrase="pw", user_id="1", iterations=FAST)
    with pytest.raises(errors.WrongPassphrase):
        keys.user_key_unlock(protected, passphrase="pW", user_id="1", min_iterations=FAST)


def test_wrong_user_id_in_aad(user_key) -> None:
    protected = keys.user_key_protect(user_key, passphrase="pw", user_id="1", iterations=FAST)
    with pytest.raises(errors.WrongPassphrase):
        keys.user_key_unlock(protected, passphrase="pw", user_id="2", min_iterations=FAST)


def test_absurd_iterations_refused(user_key) -> None:
    protected = keys.user_key_protect(user_key, passphrase="pw", user_id="1", iterations=FAST)
    protected["iterations"] = 10**12
    with pytest.raises(errors.WeakKeyProtection):
        keys.user_key_unlock(protected, passphrase="pw", user_id="1", min_iterations=FAST)


@pytest.mark.parametrize("field", ["kdf", "salt", "nonce", "ct", "iterations"])
def test_malformed_protected_key(user_key, field) -> None:
    protected = keys.user_key_protect(user_key, passphrase="pw", user_id="1", iterations=FAST)
    protected[field] = "x" if field != "iterations" else "1000"
    with pytest.raises(errors.MalformedKey):
        keys.user_key_unlock(protected, passphrase="pw", user_id="1", min_iterations=FAST)


@settings(max_examples=15, deadline=None)
@given(passphrase=st.text(min_size=1, max_size=12))
def test_nfc_and_nfd_unlock_the_same_key(passphrase: str) -> None:
    key = keys.record_key_generate()
    protected = keys.user_key_protect(key, passphrase=unicodedata.normalize("NFD", passphrase),
                                      user_id="u", iterations=10)
    for form in ("NFC", "NFD"):
        unlocked = keys.user_key_unlock(protected, passphrase=unicodedata.normalize(form,
                                                                                     passphrase),
                                        user_id="u", min_iterations=10)
        assert keys.record_key_id(unlocked) == keys.record_key_id(key)


def test_nfc_nfd_concrete() -> None:
    key = keys.record_key_generate()
    nfc, nfd = "Jürgen", unicodedata.normalize("NFD", "Jürgen")
    assert nfc != nfd
    protected = keys.user_key_protect(key, passphrase=nfc, user_id="u", iterations=10)
    keys.user_key_unlock(protected, passphrase=nfd, user_id="u", min_iterations=10)


def test_signer_key_loading_forms(keyset) -> None:
    kid = keys.signer_key_id(keyset.signer)
    public = keyset.signer.public_key()
    raw = public.public_bytes_raw()
    forms = [keys.public_key_pem(public), keys.private_key_pem(keyset.signer), raw,
             raw.hex().encode() + b"\n", keys.b64u_encode(raw).encode()]
    for form in forms:
        assert keys.signer_key_id(keys.signer_public_key_load(form)) == kid
    seed = keyset.signer.private_bytes_raw()
    assert keys.signer_key_id(keys.signer_private_key_load(seed)) == kid
    with pytest.raises(errors.MalformedKey):
        keys.signer_public_key_load(keys.public_key_pem(keyset.record.public_key()))


def test_record_key_loading_forms(keyset) -> None:
    kid = keys.record_key_id(keyset.record)
    pem = keys.private_key_pem(keyset.record)
    assert keys.record_key_id(keys.record_private_key_load(pem)) == kid
    assert keys.record_key_id(keys.record_public_key_load(pem)) == kid
    assert keys.record_key_id(keys.record_public_key_load(
        keys.public_key_der(keyset.record.public_key()))) == kid
    with pytest.raises(errors.MalformedKey):
        keys.record_private_key_load(b"not a key")


@given(st.binary(max_size=64))
def test_b64u_round_trip(data: bytes) -> None:
    assert keys.b64u_decode(keys.b64u_encode(data)) == data


@pytest.mark.parametrize("text", ["QQ==", "QR", "Q", "Q+", "Q/", "QQ "])
def test_b64u_rejects_non_canonical(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        keys.b64u_decode(text)
