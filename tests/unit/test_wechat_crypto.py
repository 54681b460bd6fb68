"""Signatures and the AES envelope, checked against the documented layout built independently here."""
import base64
import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.wechat import crypto

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP = "wx1234567890abcdef"


def test_signature_is_sha1_of_the_sorted_parts():
    expected = hashlib.sha1("".join(sorted(["tok", "1700000000", "nonce1"])).encode()).hexdigest()
    assert crypto.signature("tok", "1700000000", "nonce1") == expected
    crypto.verify_signature(expected, "tok", "nonce1", "1700000000")       # order does not matter
    with pytest.raises(crypto.SignatureMismatch):
        crypto.verify_signature("0" * 40, "tok", "1700000000", "nonce1")
    with pytest.raises(crypto.SignatureMismatch):
        crypto.verify_signature(None, "tok", "1700000000", "nonce1")


def _documented_envelope(message: bytes, receive_id: str, random16: bytes) -> str:
    key = base64.b64decode(KEY + "=")
    body = random16 + struct.pack(">I", len(message)) + message + receive_id.encode()
    pad = 32 - len(body) % 32
    body += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(body) + enc.finalize()).decode()


def test_decrypts_an_envelope_built_from_the_documented_layout():
    box = crypto.MessageCrypto("tok", KEY, APP)
    envelope = _documented_envelope("<xml>你好</xml>".encode(), APP, b"R" * 16)
    assert box.decrypt(envelope) == "<xml>你好</xml>".encode()
    assert box.encrypt("<xml>你好</xml>".encode(), random16=b"R" * 16) == envelope


@pytest.mark.parametrize("size", [0, 1, 11, 12, 27, 28, 100, 4000])
def test_round_trip_across_padding_boundaries(size):
    box = crypto.MessageCrypto("tok", KEY, APP)
    message = os.urandom(size)
    assert box.decrypt(box.encrypt(message)) == message


def test_envelope_for_another_app_is_refused():
    other = crypto.MessageCrypto("tok", KEY, "wxOTHER")
    with pytest.raises(crypto.ReceiveIdMismatch) as err:
        crypto.MessageCrypto("tok", KEY, APP).decrypt(other.encrypt(b"hi"))
    assert err.value.status == 403 and err.value.code == "receive_id_mismatch"


@pytest.mark.parametrize("ciphertext", ["***", base64.b64encode(b"x" * 20).decode(), "",
                                        base64.b64encode(os.urandom(64)).decode()],
                         ids=["not_base64", "partial_block", "empty", "garbage_blocks"])  # stable across workers
def test_broken_ciphertext_is_a_400(ciphertext):
    with pytest.raises(crypto.BadCiphertext) as err:
        crypto.MessageCrypto("tok", KEY, APP).decrypt(ciphertext)
    assert err.value.status == 400


def test_lying_length_prefix_is_refused():
    key = base64.b64decode(KEY + "=")
    body = b"R" * 16 + struct.pack(">I", 10_000) + b"short" + APP.encode()
    body += bytes([32 - len(body) % 32]) * (32 - len(body) % 32)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    with pytest.raises(crypto.BadCiphertext):
        crypto.MessageCrypto("tok", KEY, APP).decrypt(base64.b64encode(enc.update(body) + enc.finalize()).decode())


def test_msg_signature_covers_the_ciphertext():
    box = crypto.MessageCrypto("tok", KEY, APP)
    enc = box.encrypt(b"x")
    box.verify(box.sign("1", "n", enc), "1", "n", enc)
    with pytest.raises(crypto.SignatureMismatch):
        box.verify(box.sign("1", "n", enc), "1", "n", box.encrypt(b"y"))


def test_timestamp_window():
    assert crypto.check_timestamp("1000", now=1100) == 1000
    for bad in (None, "", "abc", "1e3", "\u0661\u0660\u0660\u0660", "1_000", " 1000", "-1000"):
        with pytest.raises(crypto.StaleTimestamp):
            crypto.check_timestamp(bad, now=1000)
    with pytest.raises(crypto.StaleTimestamp):
        crypto.check_timestamp("1000", now=1000 + 301)


@pytest.mark.parametrize("key", ["short", "a" * 44, "!" * 43])
def test_malformed_encoding_aes_key_is_rejected_at_construction(key):
    with pytest.raises(ValueError):
        crypto.MessageCrypto("tok", key, APP)
