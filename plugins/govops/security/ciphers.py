"""Hashes, MACs, pseudonyms and reversible field encryption over ``cryptography``, with the
Chinese commercial algorithms (SM3, SM4) next to their international counterparts.

- ``pseudonymize``: a keyed, deterministic pseudonym per value (HMAC-SHA256 or HMAC-SM3, hex),
  so joins still work across tables masked with the same key and nothing is reversible.
- ``encrypt_values`` / ``decrypt_values``: AES-256-GCM or SM4-GCM per value, a fresh random
  96-bit nonce each, stored as ``v{key_version}:{base64url(nonce || ciphertext || tag)}``. The
  key version travels with the value, so keys rotate without rewriting old data: decryption
  picks each value's key from a version -> key mapping.

Null (None) stays null everywhere. Errors name the row index, never the value.
"""

from __future__ import annotations

import binascii
import hmac as std_hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PseudonymAlgorithm = Literal["hmac-sha256", "hmac-sm3"]
AeadAlgorithm = Literal["aes-256-gcm", "sm4-gcm"]
PSEUDONYM_ALGORITHMS: tuple[str, ...] = ("hmac-sha256", "hmac-sm3")
AEAD_ALGORITHMS: tuple[str, ...] = ("aes-256-gcm", "sm4-gcm")
AEAD_KEY_SIZES = {"aes-256-gcm": 32, "sm4-gcm": 16}
NONCE_SIZE = 12
TAG_SIZE = 16
MIN_PSEUDONYM_KEY = 16  # bytes: a shorter HMAC key would make pseudonyms guessable by brute force
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")  # by len(body) % 4; 1 is never valid


class CiphertextError(ValueError):
    """A stored value cannot be decrypted: malformed, or under a key version we do not hold."""


class UnknownKeyVersion(CiphertextError, LookupError):
    pass


class TamperedCiphertext(CiphertextError, InvalidTag):
    """Authentication failed: the value was altered, or the key of its version is not the one
    it was encrypted with. Still an ``InvalidTag`` for callers that catch that."""


# --- hashes and MACs ---


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905-2016), 32 bytes."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return std_hmac.digest(key, data, "sha256")


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


# --- helpers ---


def _items(values: Iterable[Any]) -> list[Any]:
    """A Python list of a list, numpy array, pandas Series or pyarrow (chunked) array."""
    if hasattr(values, "to_pylist"):
        return values.to_pylist()  # type: ignore[no-any-return]
    if hasattr(values, "tolist"):
        return values.tolist()  # type: ignore[no-any-return]
    return list(values)


def _object_array(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _b64url(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def _check_aead(algorithm: str, key: bytes, version: int | None = None) -> None:
    if algorithm not in AEAD_KEY_SIZES:
        raise ValueError(f"unknown algorithm {algorithm!r}; one of {', '.join(AEAD_ALGORITHMS)}")
    if len(key) != AEAD_KEY_SIZES[algorithm]:
        which = "the key" if version is None else f"the key of version {version}"
        raise ValueError(f"{algorithm} needs a {AEAD_KEY_SIZES[algorithm]}-byte key, {which} has {len(key)}")


# --- pseudonyms ---


def pseudonymize(
    values: Sequence[str | bytes | None] | np.ndarray | Any,
    key: bytes,
    algorithm: PseudonymAlgorithm = "hmac-sha256",
    length: int = 64,
) -> np.ndarray:
    """Keyed pseudonyms: the first ``length`` hex characters of HMAC(key, UTF-8 value), an object
    array aligned with ``values`` (None stays None). The MAC is keyed once and copied per value
    (no re-keying); ``cryptography``'s HMAC copy measured faster than the stdlib's for both hashes."""
    if algorithm not in PSEUDONYM_ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; one of {', '.join(PSEUDONYM_ALGORITHMS)}")
    if not 1 <= length <= 64:
        raise ValueError(f"length is in hex characters, 1..64, got {length}")
    if len(key) < MIN_PSEUDONYM_KEY:
        raise ValueError(f"a pseudonym key needs at least {MIN_PSEUDONYM_KEY} bytes, got {len(key)}")
    items = _items(values)
    base = crypto_hmac.HMAC(key, hashes.SHA256() if algorithm == "hmac-sha256" else hashes.SM3())
    copy = base.copy
    out: list[str | None] = []
    append = out.append
    for value in items:
        mac = copy()
        try:
            mac.update(value.encode())
        except AttributeError:  # not a str: None stays None, bytes are taken as they are
            if value is None:
                append(None)
                continue
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"pseudonymize: the value at index {len(out)} is a {type(value).__name__}") from None
            mac.update(bytes(value))
        append(mac.finalize().hex()[:length])
    return _object_array(out)


# --- reversible encryption ---


def _sealer(algorithm: str, key: bytes) -> Any:
    """(nonce, plaintext, associated data) -> ciphertext || tag."""
    if algorithm == "aes-256-gcm":
        return AESGCM(key).encrypt
    sm4 = algorithms.SM4(key)

    def seal(nonce: bytes, data: bytes, associated: bytes) -> bytes:
        encryptor = Cipher(sm4, modes.GCM(nonce)).encryptor()
        if associated:
            encryptor.authenticate_additional_data(associated)
        body = encryptor.update(data) + encryptor.finalize()
        return body + encryptor.tag

    return seal


def _opener(algorithm: str, key: bytes) -> Any:
    """(nonce, ciphertext || tag, associated data) -> plaintext, raising InvalidTag."""
    if algorithm == "aes-256-gcm":
        return AESGCM(key).decrypt
    sm4 = algorithms.SM4(key)

    def open_(nonce: bytes, data: bytes, associated: bytes) -> bytes:
        if len(data) < TAG_SIZE:
            raise InvalidTag()
        decryptor = Cipher(sm4, modes.GCM(nonce, data[-TAG_SIZE:])).decryptor()
        if associated:
            decryptor.authenticate_additional_data(associated)
        return decryptor.update(data[:-TAG_SIZE]) + decryptor.finalize()

    return open_


def encrypt_values(
    values: Sequence[str | None] | np.ndarray | Any,
    key: bytes,
    algorithm: AeadAlgorithm,
    key_version: int,
    associated_data: bytes = b"",
) -> np.ndarray:
    """Encrypt each value (UTF-8) with a fresh random nonce; an object array of
    ``v{key_version}:{base64url(nonce || ciphertext || tag)}`` strings, None kept.
    ``associated_data`` (say, the table and column) is authenticated, not stored: decryption
    needs the same bytes."""
    _check_aead(algorithm, key)
    if not isinstance(key_version, int) or key_version < 0:
        raise ValueError(f"key_version must be a non-negative int, got {key_version!r}")
    items = _items(values)
    seal = _sealer(algorithm, key)
    prefix = f"v{key_version}:"
    nonces = os.urandom(NONCE_SIZE * len(items))  # one system call, a distinct 96-bit nonce per value
    out: list[str | None] = []
    append = out.append
    for i, value in enumerate(items):
        if value is None:
            append(None)
            continue
        if not isinstance(value, str):
            raise TypeError(f"encrypt_values: the value at index {i} is a {type(value).__name__}, not a str")
        nonce = nonces[NONCE_SIZE * i : NONCE_SIZE * i + NONCE_SIZE]
        append(prefix + _b64url(nonce + seal(nonce, value.encode(), associated_data)))
    return _object_array(out)


def decrypt_values(
    values: Sequence[str | None] | np.ndarray | Any,
    keys: Mapping[int, bytes],
    algorithm: AeadAlgorithm,
    associated_data: bytes = b"",
) -> np.ndarray:
    """Decrypt values made by ``encrypt_values``, each with the key of the version it names;
    an object array of str, None kept. Raises ``UnknownKeyVersion``, ``CiphertextError``
    (malformed) or ``TamperedCiphertext`` (authentication failed), naming the row."""
    if algorithm not in AEAD_KEY_SIZES:
        raise ValueError(f"unknown algorithm {algorithm!r}; one of {', '.join(AEAD_ALGORITHMS)}")
    openers: dict[str, Any] = {}  # "v3" -> its key's opener, built on first use
    out: list[str | None] = []
    append = out.append
    for i, value in enumerate(_items(values)):
        if value is None:
            append(None)
            continue
        if not isinstance(value, str):
            raise TypeError(f"decrypt_values: the value at index {i} is a {type(value).__name__}, not a str")
        head, _, body = value.partition(":")
        open_ = openers.get(head)
        if open_ is None:
            if not (head[:1] == "v" and head[1:].isdigit() and head[1:].isascii() and body):
                raise CiphertextError(f"decrypt_values: the value at index {i} is not 'v<version>:<base64url>'")
            version = int(head[1:])
            if version not in keys:
                held = ", ".join(str(v) for v in sorted(keys)) or "none"
                raise UnknownKeyVersion(
                    f"decrypt_values: the value at index {i} is under key version {version}; keys held: {held}"
                )
            _check_aead(algorithm, keys[version], version)
            open_ = openers[head] = _opener(algorithm, keys[version])
        try:
            encoded = body.encode("ascii").translate(_FROM_URLSAFE) + _PADDING[len(body) % 4]
            raw = binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
            raise CiphertextError(f"decrypt_values: the value at index {i} is not valid base64url") from None
        if len(raw) < NONCE_SIZE + TAG_SIZE:
            raise CiphertextError(f"decrypt_values: the value at index {i} is too short to be a ciphertext")
        try:
            plain = open_(raw[:NONCE_SIZE], raw[NONCE_SIZE:], associated_data)
        except InvalidTag:
            raise TamperedCiphertext(
                f"decrypt_values: the value at index {i} failed authentication "
                f"(altered, or not encrypted with the key of {head} and this associated data)"
            ) from None
        append(plain.decode())
    return _object_array(out)
