"""WeChat / WeCom callback security: signatures and the AES message envelope.

Signature: sha1 of the sorted concatenation of token, timestamp, nonce (and, in safe mode, the
ciphertext). Envelope: AES-256-CBC with key = base64(EncodingAESKey + "="), IV = key[:16], PKCS#7
padded to 32 bytes (not AES's 16), plaintext = random16 ‖ len(msg) as big-endian uint32 ‖ msg ‖ receive_id,
where receive_id is the appid (OA / mini-program) or the corpid (WeCom; a third-party suite's own
callbacks carry the suite id instead).
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import struct
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CallbackError(Exception):
    """A callback the caller got wrong: `.status` (HTTP 4xx), `.code` (snake_case), `.message`."""
    status = 400
    code = "bad_callback"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SignatureMismatch(CallbackError):
    status, code = 401, "bad_signature"


class StaleTimestamp(CallbackError):
    status, code = 401, "stale_timestamp"


class BadCiphertext(CallbackError):
    status, code = 400, "bad_ciphertext"


class ReceiveIdMismatch(CallbackError):
    status, code = 403, "receive_id_mismatch"


def signature(token: str, *parts: str) -> str:
    """WeChat's signature: sha1 hex of the sorted, concatenated token and parts."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def verify_signature(given: str | None, token: str, *parts: str) -> None:
    """Raises SignatureMismatch unless `given` is the signature of token+parts (constant time)."""
    if not given or not hmac.compare_digest(given.lower().encode(), signature(token, *parts).encode()):
        raise SignatureMismatch("signature does not match the brand's token")


def check_timestamp(timestamp: str | None, now: float, window: int = 300) -> int:
    """The callback's timestamp as an int; StaleTimestamp if missing or more than `window` s off."""
    # ASCII digits only: int() also reads "٢" or " 1_0 ", which no WeChat server sends
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise StaleTimestamp("timestamp must be an integer number of seconds")
    value = int(timestamp)
    if abs(now - value) > window:
        raise StaleTimestamp(f"timestamp is more than {window} s away from now")
    return value


@functools.lru_cache(maxsize=256)
def _aes_cbc(key: bytes) -> Cipher:
    """One Cipher per key for the container's life (building one checks the key and mode each time).
    It holds no state between messages: each encryptor() is a fresh context."""
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


class _CbcDecryptor:
    """AES-CBC decryption with the IV WeChat fixes (key[:16]) through one OpenSSL context per key,
    kept for the container's life: creating a context cost more than the rest of a callback's
    decryption. CBC is P[i] = AES-decrypt(C[i]) xor C[i-1], with C[-1] = IV; a context in ECB mode
    does the block decryptions, keeps nothing from one call to the next (whole blocks in, whole
    blocks out, padding off, never finalized), and the xor is done here. tests/unit/test_callback_xml.py
    checks it against the library's own CBC."""

    def __init__(self, key: bytes):
        self._iv = key[:16]
        self._blocks = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        self._lock = threading.Lock()        # one context, any number of threads (the local dev server)

    def decrypt(self, raw: bytes) -> bytes:
        """`raw` is a whole, non-zero number of 16-byte blocks (the caller checks)."""
        with self._lock:
            decrypted = self._blocks.update(raw)
        chained = self._iv + raw[:-16]
        return (int.from_bytes(decrypted, "big") ^ int.from_bytes(chained, "big")).to_bytes(len(raw), "big")


@functools.lru_cache(maxsize=256)
def _cbc_decryptor(key: bytes) -> _CbcDecryptor:
    return _CbcDecryptor(key)


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


class MessageCrypto:
    """Encrypt / decrypt one app's callback envelopes."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str, *, also_receive: tuple[str, ...] = ()):
        """`receive_id` is the id this box encrypts for; decryption accepts it or any of `also_receive`."""
        if not encoding_aes_key or len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise ValueError("EncodingAESKey is not base64") from None
        if len(self.key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self._encoding_aes_key = encoding_aes_key
        self.token = token
        self.receive_id = receive_id
        self.accepted_ids = (receive_id, *(r for r in also_receive if r and r != receive_id))

    def _cipher(self) -> Cipher:
        return _aes_cbc(self.key)

    def encrypt(self, plaintext: bytes, random16: bytes | None = None) -> str:
        random16 = random16 if random16 is not None else os.urandom(16)
        if len(random16) != 16:
            raise ValueError("random16 must be 16 bytes")
        body = random16 + struct.pack(">I", len(plaintext)) + plaintext + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(_pad(body)) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext_b64: str) -> bytes:
        """The message inside an envelope. BadCiphertext for anything malformed, ReceiveIdMismatch
        when the envelope was made for another app."""
        return self.open(ciphertext_b64)[0]

    def open(self, ciphertext_b64: str) -> tuple[bytes, str]:
        """decrypt(), and which of the accepted receive ids the envelope was made for."""
        try:
            raw = binascii.a2b_base64(ciphertext_b64, strict_mode=True)
        except (binascii.Error, ValueError, TypeError):
            raise BadCiphertext("Encrypt is not valid base64") from None
        if not raw or len(raw) % 16:
            raise BadCiphertext("ciphertext is not a whole number of AES blocks")
        padded = _cbc_decryptor(self.key).decrypt(raw)
        n = padded[-1]
        if not 1 <= n <= BLOCK or n > len(padded) or padded[-n:] != bytes([n]) * n:
            raise BadCiphertext("bad PKCS#7 padding")
        body = padded[:-n]
        if len(body) < 20:
            raise BadCiphertext("envelope too short")
        (length,) = struct.unpack(">I", body[16:20])
        if 20 + length > len(body):
            raise BadCiphertext("message length exceeds the envelope")
        message, receive_id = body[20:20 + length], body[20 + length:]
        for accepted in self.accepted_ids:
            if hmac.compare_digest(receive_id, accepted.encode()):
                return message, accepted
        raise ReceiveIdMismatch("the message was encrypted for another app id / corp id")

    def replying_as(self, receive_id: str) -> "MessageCrypto":
        """The same keys encrypting for `receive_id` (a reply goes back under the id the callback came with)."""
        if receive_id == self.receive_id:
            return self
        return MessageCrypto(self.token, self._encoding_aes_key, receive_id)

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)

    def verify(self, msg_signature: str | None, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raises SignatureMismatch unless msg_signature covers this ciphertext."""
        if not msg_signature or not hmac.compare_digest(msg_signature.lower().encode(),
                                                        self.sign(timestamp, nonce, encrypt).encode()):
            raise SignatureMismatch("msg_signature does not match the brand's token")
