"""FF1 format-preserving encryption (NIST SP 800-38G, AES-128/192/256).

Two implementations of the same algorithm:

- ``ff1_encrypt`` / ``ff1_decrypt``: the reference, one value at a time with Python ints,
  written to read like the spec; the tests hold the fast one to it.
- ``FF1``: the one the project uses on its hot path. Values are grouped by length and every
  row of a group goes through each Feistel round at once: the round's PRF is a CBC-MAC whose
  leading blocks (P, the tweak, the round number) are the same for every row, so their MAC
  is one AES call per round, and the last block(s), which carry NUM(B), are one AES-ECB call
  over the whole group. The halves stay numbers (NUM_radix) between rounds, in numpy uint64
  when radix^v fits in 56 bits (radix 10 up to 32 digits), else in Python ints held in object
  arrays, still one numpy operation per step.

Error messages name a value's index and never the value: these are personal identifiers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MIN_DOMAIN = 1_000_000  # SP 800-38G Rev. 1: radix^minlen >= 1,000,000
MAX_RADIX = 1 << 16
MAX_LENGTH = 1 << 32  # the spec's maxlen for FF1
ROUNDS = 10
KEY_SIZES = (16, 24, 32)
DEFAULT_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_FAST_LIMIT = 1 << 56  # radix^v at most this: halves, y mod radix^m and sums all fit in uint64
_MASK64 = (1 << 64) - 1


# --- parameters shared by both implementations ---


def _check_key(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise ValueError(f"FF1 needs an AES key of 16, 24 or 32 bytes, got {len(key)}")


def _check_radix(radix: int) -> None:
    if not 2 <= radix <= MAX_RADIX:
        raise ValueError(f"FF1 radix must be in 2..{MAX_RADIX}, got {radix}")


def min_length(radix: int) -> int:
    """The shortest value FF1 accepts for this radix (radix^n >= 1,000,000 and n >= 2)."""
    _check_radix(radix)
    n = 2
    while radix**n < MIN_DOMAIN:
        n += 1
    return n


@dataclass(frozen=True)
class _Layout:
    """What steps 1-5 of FF1 derive from (radix, n, t): the same for every value of a group."""

    radix: int
    n: int
    t: int
    u: int
    v: int
    b: int  # bytes of NUM_radix(B) in Q
    d: int  # bytes of S that make y
    p: bytes  # the first PRF block
    pad: int  # zero bytes between the tweak and the round number in Q

    @property
    def fast(self) -> bool:
        return self.radix**self.v <= _FAST_LIMIT

    def q_prefix(self, tweak: bytes, i: int) -> bytes:
        """P || Q with NUM(B) left as zero bytes: the part of the PRF input every row shares."""
        return self.p + tweak + bytes(self.pad) + bytes([i]) + bytes(self.b)


@functools.lru_cache(maxsize=256)
def _layout(radix: int, n: int, t: int) -> _Layout:
    _check_radix(radix)
    if n < 2 or radix**n < MIN_DOMAIN:
        raise ValueError(
            f"FF1 length {n} is too short for radix {radix}: radix^length must be at least {MIN_DOMAIN} "
            f"(length at least {min_length(radix)})"
        )
    if n > MAX_LENGTH:
        raise ValueError(f"FF1 length {n} exceeds the maximum {MAX_LENGTH}")
    if t >= 1 << 32:
        raise ValueError(f"FF1 tweak of {t} bytes is too long (at most 2^32 - 1)")
    u = n // 2
    v = n - u
    # ceil(v * log2(radix)) computed exactly: the bit length of radix^v - 1.
    b = ((radix**v - 1).bit_length() + 7) // 8
    d = 4 * ((b + 3) // 4) + 4
    p = bytes([1, 2, 1]) + radix.to_bytes(3, "big") + bytes([10, u % 256]) + n.to_bytes(4, "big") + t.to_bytes(4, "big")
    return _Layout(radix, n, t, u, v, b, d, p, (-t - b - 1) % 16)


def _ecb(key: bytes) -> Any:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


def _cbc_mac(key: bytes, data: bytes) -> bytes:
    """CBC-MAC with a zero IV (the spec's PRF) in one AES call: the last CBC block."""
    return Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor().update(data)[-16:]


# --- the reference: one value, Python ints, as the spec reads ---


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def _num(numerals: Sequence[int], radix: int) -> int:
    x = 0
    for digit in numerals:
        x = x * radix + digit
    return x


def _str(x: int, radix: int, m: int) -> list[int]:
    digits = [0] * m
    for k in range(m - 1, -1, -1):
        x, digits[k] = divmod(x, radix)
    return digits


def _reference_y(ecb: Any, lay: _Layout, tweak: bytes, i: int, half: int) -> int:
    """Steps 6.i-6.iv: y = NUM(S) for round i, where half is the numeric value of B (A when decrypting)."""
    q = tweak + bytes(lay.pad) + bytes([i]) + half.to_bytes(lay.b, "big")
    data = lay.p + q
    r = bytes(16)
    for j in range(0, len(data), 16):  # PRF: CBC-MAC
        r = ecb.update(_xor16(r, data[j : j + 16]))
    s = r
    for j in range(1, -(-lay.d // 16)):
        s += ecb.update(_xor16(r, j.to_bytes(16, "big")))
    return int.from_bytes(s[: lay.d], "big")


def _reference(key: bytes, tweak: bytes, radix: int, numerals: Sequence[int], decrypt: bool) -> list[int]:
    _check_key(key)
    lay = _layout(radix, len(numerals), len(tweak))
    for position, digit in enumerate(numerals):
        if not 0 <= digit < radix:
            raise ValueError(f"numeral {position} is not in 0..{radix - 1}")
    ecb = _ecb(key)
    a = _num(numerals[: lay.u], radix)
    b = _num(numerals[lay.u :], radix)
    if not decrypt:
        for i in range(ROUNDS):
            m = lay.u if i % 2 == 0 else lay.v
            c = (a + _reference_y(ecb, lay, tweak, i, b)) % radix**m
            a, b = b, c
    else:
        for i in range(ROUNDS - 1, -1, -1):
            m = lay.u if i % 2 == 0 else lay.v
            c = (b - _reference_y(ecb, lay, tweak, i, a)) % radix**m
            b, a = a, c
    return _str(a, radix, lay.u) + _str(b, radix, lay.v)


def ff1_encrypt(key: bytes, tweak: bytes, radix: int, numerals: Sequence[int]) -> list[int]:
    """FF1.Encrypt(K, T, X) of SP 800-38G, the reference implementation."""
    return _reference(key, tweak, radix, numerals, decrypt=False)


def ff1_decrypt(key: bytes, tweak: bytes, radix: int, numerals: Sequence[int]) -> list[int]:
    """FF1.Decrypt(K, T, Y) of SP 800-38G, the reference implementation."""
    return _reference(key, tweak, radix, numerals, decrypt=True)


# --- the vectorized implementation: one length group at a time ---


def _code_dtype(radix: int) -> type[np.unsignedinteger]:
    return np.uint8 if radix <= 256 else np.uint16


def _num_rows(codes: np.ndarray, radix: int, fast: bool) -> np.ndarray:
    """NUM_radix of every row of a (rows, m) numeral matrix: uint64, or Python ints in an object array."""
    m = codes.shape[1]
    if not fast:
        x = np.zeros(len(codes), dtype=object)
        for j in range(m):
            x = x * radix + codes[:, j].astype(object)
        return x
    word = np.uint32 if radix**m <= 1 << 32 else np.uint64  # 32-bit multiplies are cheaper
    x = np.zeros(len(codes), dtype=word)
    r = word(radix)
    for j in range(m):
        x *= r
        x += codes[:, j]
    return x.astype(np.uint64, copy=False)


def _str_rows(x: np.ndarray, radix: int, m: int) -> np.ndarray:
    """STR^m_radix of every number, as an (m, rows) numeral matrix (row k = the k-th numeral):
    whole-row writes are contiguous, the caller transposes once."""
    out = np.empty((m, len(x)), dtype=_code_dtype(radix))
    if x.dtype == object:
        for k in range(m - 1, -1, -1):
            x, digit = x // radix, x % radix
            out[k] = digit.astype(np.int64)
        return out
    word = np.uint32 if radix**m <= 1 << 32 else np.uint64
    x = x.astype(word)
    r = word(radix)
    for k in range(m - 1, -1, -1):
        q = x // r
        out[k] = x - q * r
        x = q
    return out


def _ints_to_bytes(x: np.ndarray, width: int) -> np.ndarray:
    """Big-endian bytes of Python ints (an object array): (rows, width) uint8, via 64-bit limbs."""
    limbs = -(-width // 8)
    words = np.empty((len(x), limbs), dtype=">u8")
    for k in range(limbs):
        words[:, k] = ((x >> (64 * (limbs - 1 - k))) & _MASK64).astype(np.uint64)
    return words.view(np.uint8).reshape(len(x), 8 * limbs)[:, 8 * limbs - width :]


def _bytes_to_ints(data: np.ndarray) -> np.ndarray:
    """Python ints (an object array) of big-endian (rows, width) bytes, via 64-bit limbs."""
    rows, width = data.shape
    limbs = -(-width // 8)
    padded = np.zeros((rows, 8 * limbs), dtype=np.uint8)
    padded[:, 8 * limbs - width :] = data
    words = padded.view(">u8").astype(np.uint64)
    x = words[:, 0].astype(object)
    for k in range(1, limbs):
        x = (x << 64) | words[:, k].astype(object)
    return x


def _mod_y_fast(r: np.ndarray, d: int, modulus: int) -> np.ndarray:
    """y mod radix^m without overflow, y being the first d (8 or 12) bytes of the (rows, 2) big-endian
    words of R: the top 64 bits reduced first, then the remaining 32 in limbs small enough that
    (y << k) + limb stays below 2^64 (modulus <= 2^56 on this path)."""
    m = np.uint64(modulus)
    y = r[:, 0].astype(np.uint64) % m
    if d == 8:
        return y
    low = r[:, 1].astype(np.uint64) >> np.uint64(32)
    k = 32 if modulus <= 1 << 32 else 16 if modulus <= 1 << 48 else 8
    mask = np.uint64((1 << k) - 1)
    for shift in range(32 - k, -1, -k):
        y <<= np.uint64(k)
        y |= (low >> np.uint64(shift)) & mask
        y %= m
    return y


class _Rounds:
    """The Feistel rounds of one length group under one key and tweak."""

    def __init__(self, key: bytes, lay: _Layout, tweak: bytes) -> None:
        self.key = key
        self.lay = lay
        self.tweak = tweak
        self.ecb = _ecb(key)
        self._block: np.ndarray | None = None  # the fast path's per-row block and AES output, reused every round
        self._out: np.ndarray | None = None

    def y_fast(self, i: int, half: np.ndarray) -> np.ndarray:
        """y mod radix^m of round i for every row (uint64 path): b <= 7, so NUM(half) sits in
        the last PRF block and that block is the only per-row AES call."""
        lay = self.lay
        prefix = lay.q_prefix(self.tweak, i)
        state = _cbc_mac(self.key, prefix[:-16])
        base = _xor16(state, prefix[-16:])
        rows = len(half)
        if self._block is None or self._out is None:
            self._block = np.empty((rows, 2), dtype=np.uint64)
            self._out = np.empty(16 * rows + 16, dtype=np.uint8)  # update_into wants a block of slack
        block = self._block
        # Native words whose memory is the big-endian block: filling a '>u8' array column-wise is slow.
        block[:, 0] = np.frombuffer(base[:8], dtype=np.uint64)[0]
        block[:, 1] = (half ^ np.uint64(int.from_bytes(base[8:], "big"))).astype(">u8").view(np.uint64)
        self.ecb.update_into(block.view(np.uint8).reshape(-1), self._out)
        r = self._out[: 16 * rows].view(">u8").reshape(rows, 2)
        m = lay.u if i % 2 == 0 else lay.v
        return _mod_y_fast(r, lay.d, lay.radix**m)

    def y_big(self, i: int, half: np.ndarray) -> np.ndarray:
        """y of round i for every row (Python-int path): the per-row blocks of the CBC-MAC, then
        the extra blocks of S when d > 16, each one batched AES-ECB call."""
        lay = self.lay
        rows = len(half)
        prefix = lay.q_prefix(self.tweak, i)
        first = (len(prefix) - lay.b) // 16  # the first block holding bytes of NUM(half)
        state = np.broadcast_to(np.frombuffer(_cbc_mac(self.key, prefix[: 16 * first]), dtype=np.uint8), (rows, 16))
        tail = np.tile(np.frombuffer(prefix[16 * first :], dtype=np.uint8), (rows, 1))
        tail[:, tail.shape[1] - lay.b :] = _ints_to_bytes(half, lay.b)
        for j in range(0, tail.shape[1], 16):
            block = np.ascontiguousarray(state ^ tail[:, j : j + 16])
            state = np.frombuffer(self.ecb.update(block.reshape(-1)), dtype=np.uint8).reshape(rows, 16)
        s = state
        blocks = -(-lay.d // 16)
        if blocks > 1:
            counters = np.frombuffer(b"".join(j.to_bytes(16, "big") for j in range(1, blocks)), dtype=np.uint8)
            extra = np.ascontiguousarray(state[:, None, :] ^ counters.reshape(1, blocks - 1, 16))
            more = np.frombuffer(self.ecb.update(extra.reshape(-1)), dtype=np.uint8).reshape(rows, 16 * (blocks - 1))
            s = np.concatenate([state, more], axis=1)
        return _bytes_to_ints(s[:, : lay.d])

    def run(self, codes: np.ndarray, decrypt: bool) -> np.ndarray:
        lay = self.lay
        fast = lay.fast
        a = _num_rows(codes[:, : lay.u], lay.radix, fast)
        b = _num_rows(codes[:, lay.u :], lay.radix, fast)
        order = range(ROUNDS - 1, -1, -1) if decrypt else range(ROUNDS)
        for i in order:
            modulus = lay.radix ** (lay.u if i % 2 == 0 else lay.v)
            if fast:
                m = np.uint64(modulus)
                if decrypt:
                    c = self.y_fast(i, a)
                    np.subtract(m, c, out=c)
                    c += b
                else:
                    c = self.y_fast(i, b)
                    c += a
                # c < 2 * modulus <= 2^57; when c < modulus, c - modulus wraps above c, so the minimum reduces.
                np.minimum(c, c - m, out=c)
            elif decrypt:
                c = (b - self.y_big(i, a)) % modulus
            else:
                c = (a + self.y_big(i, b)) % modulus
            if decrypt:
                a, b = c, a
            else:
                a, b = b, c
        return np.ascontiguousarray(np.concatenate([_str_rows(a, lay.radix, lay.u), _str_rows(b, lay.radix, lay.v)]).T)


class FF1:
    """FF1 under one key and alphabet, vectorized over many values.

    ``alphabet`` maps numerals to characters (numeral k is ``alphabet[k]``); by default the
    first ``radix`` characters of 0-9a-z. Values may have different lengths (each length is
    its own FF1 domain); every length must satisfy radix^length >= 1,000,000.
    """

    def __init__(self, key: bytes, radix: int = 10, alphabet: str | None = None) -> None:
        _check_key(key)
        _check_radix(radix)
        if alphabet is None:
            if radix > len(DEFAULT_ALPHABET):
                raise ValueError(f"radix {radix} needs an explicit alphabet of {radix} characters")
            alphabet = DEFAULT_ALPHABET[:radix]
        if len(alphabet) != radix or len(set(alphabet)) != radix:
            raise ValueError(f"the alphabet must have exactly {radix} distinct characters, got {len(alphabet)}")
        if "\x00" in alphabet:
            raise ValueError("the alphabet cannot contain NUL (numpy strings drop trailing NULs)")
        self._key = bytes(key)
        self.radix = radix
        self.alphabet = alphabet
        self.min_length = min_length(radix)
        self._codes_dtype = _code_dtype(radix)
        self._codepoints = np.array([ord(ch) for ch in alphabet], dtype=np.uint32)
        first = int(self._codepoints[0])
        # A run of consecutive code points ("0123456789"): numeral = code point - first, no table.
        self._first: int | None = first if (self._codepoints == first + np.arange(radix)).all() else None
        top = int(self._codepoints.max())
        self._ascii = top < 128
        self._lut: np.ndarray | None = None  # code point -> numeral, -1 = not in the alphabet
        if top < 1 << 17:
            self._lut = np.full(top + 2, -1, dtype=np.int32)  # the last entry stands for everything above
            self._lut[self._codepoints] = np.arange(radix, dtype=np.int32)
        else:
            self._sorted = np.sort(self._codepoints)
            self._sorted_codes = np.argsort(self._codepoints).astype(np.int32)

    # numerals

    def encrypt_codes(self, codes: np.ndarray, tweak: bytes = b"") -> np.ndarray:
        """FF1-encrypt every row of a (rows, n) numeral matrix; (rows, n) int32."""
        return self._crypt_codes(codes, tweak, decrypt=False)

    def decrypt_codes(self, codes: np.ndarray, tweak: bytes = b"") -> np.ndarray:
        return self._crypt_codes(codes, tweak, decrypt=True)

    def _crypt_codes(self, codes: np.ndarray, tweak: bytes, decrypt: bool) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise ValueError(f"need a (rows, length) numeral matrix, got shape {codes.shape}")
        _layout(self.radix, codes.shape[1], len(tweak))  # validates the length and the tweak
        if len(codes) == 0:
            return np.empty(codes.shape, dtype=np.int32)
        bad = ((codes < 0) | (codes >= self.radix)).any(axis=1)
        if bad.any():
            raise ValueError(f"row {int(np.argmax(bad))} has a numeral outside 0..{self.radix - 1}")
        return self._run(codes.astype(self._codes_dtype), tweak, decrypt).astype(np.int32)

    def _run(self, codes: np.ndarray, tweak: bytes, decrypt: bool) -> np.ndarray:
        lay = _layout(self.radix, codes.shape[1], len(tweak))
        return _Rounds(self._key, lay, bytes(tweak)).run(codes, decrypt)

    def _to_codes(self, chars: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
        """A (rows, n) matrix of code points (or of bytes) -> numerals, and the (row, column) of
        the first character outside the alphabet, if any."""
        if self._first is not None:
            shifted = chars - chars.dtype.type(self._first)  # characters below the run wrap around, above radix
            if int(shifted.max(initial=0)) < self.radix:
                return shifted.astype(self._codes_dtype, copy=False), None
            outside = shifted >= self.radix
        else:
            if self._lut is not None:
                cap = len(self._lut) - 1
                codes = self._lut[chars if int(chars.max(initial=0)) < cap else np.minimum(chars, cap)]
            else:
                where = np.searchsorted(self._sorted, chars).clip(0, self.radix - 1)
                codes = np.where(self._sorted[where] == chars, self._sorted_codes[where], -1)
            if int(codes.min(initial=0)) >= 0:
                return codes.astype(self._codes_dtype), None
            outside = codes < 0
        row = int(np.argmax(outside.any(axis=1)))
        return chars, (row, int(np.argmax(outside[row])))

    def _to_chars(self, codes: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
        """Numerals -> code points (dtype uint32) or ASCII bytes (dtype uint8)."""
        if self._first is not None:
            chars = codes.astype(dtype)
            chars += dtype(self._first)
            return chars
        return self._codepoints.astype(dtype)[codes]

    # strings

    def encrypt(self, values: Sequence[str | None] | np.ndarray, tweak: bytes = b"") -> np.ndarray:
        """FF1-encrypt strings of the alphabet. A str array in, a str array out (same lengths);
        an object array (or a list with None) in, an object array out with None kept."""
        return self._crypt_strings(values, tweak, decrypt=False)

    def decrypt(self, values: Sequence[str | None] | np.ndarray, tweak: bytes = b"") -> np.ndarray:
        return self._crypt_strings(values, tweak, decrypt=True)

    def _crypt_strings(self, values: Sequence[str | None] | np.ndarray, tweak: bytes, decrypt: bool) -> np.ndarray:
        arr = values if isinstance(values, np.ndarray) else np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"need a 1-D array of strings, got shape {arr.shape}")
        if arr.dtype.kind == "U":
            return self._crypt_unicode(arr, tweak, decrypt, None)
        if arr.dtype != object:
            raise TypeError(f"need strings, got an array of {arr.dtype}")
        nulls = np.equal(arr, None).astype(bool)
        rows = np.flatnonzero(~nulls)
        kinds = {type(v) for v in arr[rows]}
        if kinds - {str, np.str_}:
            first = next(i for i in rows if not isinstance(arr[i], str))
            raise TypeError(f"FF1: the value at index {first} is a {type(arr[first]).__name__}, not a str")
        result = np.full(len(arr), None, dtype=object)
        if len(rows):
            result[rows] = self._crypt_unicode(arr[rows].astype(str), tweak, decrypt, rows)
        return result

    def _crypt_unicode(self, strings: np.ndarray, tweak: bytes, decrypt: bool, rows: np.ndarray | None) -> np.ndarray:
        """A 'U' array through FF1, one length group at a time. ``rows`` maps positions back to
        the caller's indexes for error messages."""
        width = strings.dtype.itemsize // 4
        if len(strings) == 0:
            return strings.copy()
        lengths = np.strings.str_len(strings)
        single = bool((lengths == width).all())
        groups: list[tuple[np.ndarray | None, np.ndarray]] = []  # (positions, None = all; numerals)
        problems: list[tuple[int, str]] = []
        for n in [width] if single else np.unique(lengths).tolist():
            positions = None if single else np.flatnonzero(lengths == n)
            if n < self.min_length:
                where = 0 if positions is None else int(positions[0])
                problems.append((where, f"is shorter than {self.min_length} characters (radix {self.radix})"))
                continue
            group = strings if positions is None else strings[positions].astype(f"U{n}")
            chars = np.ascontiguousarray(group).view(np.uint32).reshape(len(group), n)
            codes, bad = self._to_codes(chars)
            if bad is not None:
                where = bad[0] if positions is None else int(positions[bad[0]])
                problems.append((where, f"has a character outside the alphabet at position {bad[1]}"))
                continue
            groups.append((positions, codes))
        if problems:
            where, why = min(problems)
            raise ValueError(f"FF1: the value at index {where if rows is None else int(rows[where])} {why}")
        out = None if single else np.empty(len(strings), dtype=f"U{width}")
        for positions, codes in groups:
            n = codes.shape[1]
            text = self._to_chars(self._run(codes, tweak, decrypt), np.uint32).view(f"U{n}").reshape(-1)
            if out is None:
                return text
            out[positions] = text
        return out

    # Arrow

    def encrypt_arrow(self, array: Any, tweak: bytes = b"") -> Any:
        """FF1 over a pyarrow (large_)string array or chunked array, nulls kept. With an ASCII
        alphabet it works on the UTF-8 buffer in place of Python strings: lengths and offsets do
        not change, only the bytes."""
        return self._crypt_arrow(array, tweak, decrypt=False)

    def decrypt_arrow(self, array: Any, tweak: bytes = b"") -> Any:
        return self._crypt_arrow(array, tweak, decrypt=True)

    def _crypt_arrow(self, array: Any, tweak: bytes, decrypt: bool) -> Any:
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            return pa.chunked_array([self._crypt_arrow(c, tweak, decrypt) for c in array.chunks], type=array.type)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            raise TypeError(f"need a string array, got {array.type}")
        if not self._ascii:
            out = self._crypt_strings(array.to_numpy(zero_copy_only=False), tweak, decrypt)
            return pa.array(out, type=array.type)
        count = len(array)
        validity, offsets_buf, data_buf = array.buffers()
        offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
        offsets = np.frombuffer(offsets_buf, dtype=offset_type)[array.offset : array.offset + count + 1]
        offsets = offsets.astype(np.int64)
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
        lengths = np.diff(offsets)
        valid = np.ones(count, dtype=bool) if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
        groups: list[tuple[slice | np.ndarray, np.ndarray]] = []
        problems: list[tuple[int, str]] = []
        for n in np.unique(lengths[valid]).tolist():
            rows = np.flatnonzero(valid & (lengths == n))
            if n < self.min_length:
                problems.append((int(rows[0]), f"is shorter than {self.min_length} characters (radix {self.radix})"))
                continue
            positions: slice | np.ndarray
            if len(rows) == count:  # every row valid and n long: one contiguous run of bytes
                positions = slice(int(offsets[0]), int(offsets[0]) + n * count)
                chars = data[positions].reshape(count, n)
            else:
                positions = offsets[rows][:, None] + np.arange(n)
                chars = data[positions]
            codes, bad = self._to_codes(chars)
            if bad is not None:  # a non-ASCII character is bytes >= 0x80, never in an ASCII alphabet
                problems.append((int(rows[bad[0]]), f"has a byte outside the alphabet at position {bad[1]}"))
                continue
            groups.append((positions, codes))
        if problems:
            index, why = min(problems)
            raise ValueError(f"FF1: the value at index {index} {why}")
        out_data = data.copy()
        for positions, codes in groups:
            text = self._to_chars(self._run(codes, tweak, decrypt), np.uint8)
            out_data[positions] = text.reshape(-1) if isinstance(positions, slice) else text
        buffers = [validity, offsets_buf, pa.py_buffer(out_data)]
        return pa.Array.from_buffers(array.type, count, buffers, null_count=array.null_count, offset=array.offset)
