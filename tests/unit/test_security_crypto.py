"""FF1 (NIST SP 800-38G) in both implementations, and the SM3/SM4/HMAC/AEAD wrappers, against
published vectors and against each other."""

from __future__ import annotations

import base64
import os
import re

import numpy as np
import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from govops.security import ciphers, ff1
from govops.security.ciphers import (
    AeadAlgorithm,
    CiphertextError,
    TamperedCiphertext,
    UnknownKeyVersion,
    decrypt_values,
    encrypt_values,
    hmac_sha256,
    hmac_sm3,
    pseudonymize,
    sm3,
)
from govops.security.ff1 import FF1, ff1_decrypt, ff1_encrypt

# --- FF1: the NIST SP 800-38G sample vectors (FF1samples.pdf, samples 1-9) ---

K128 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
K192 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F")
K256 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94")
T_EMPTY = b""
T_10 = bytes.fromhex("39383736353433323130")
T_11 = bytes.fromhex("3737373770717273373737")
PT10 = "0123456789"
PT36 = "0123456789abcdefghi"
ALPHA36 = "0123456789abcdefghijklmnopqrstuvwxyz"

NIST_FF1 = [
    pytest.param(K128, T_EMPTY, 10, PT10, "2433477484", id="sample1-aes128"),
    pytest.param(K128, T_10, 10, PT10, "6124200773", id="sample2-aes128"),
    pytest.param(K128, T_11, 36, PT36, "a9tv40mll9kdu509eum", id="sample3-aes128"),
    pytest.param(K192, T_EMPTY, 10, PT10, "2830668132", id="sample4-aes192"),
    pytest.param(K192, T_10, 10, PT10, "2496655549", id="sample5-aes192"),
    pytest.param(K192, T_11, 36, PT36, "xbj3kv35jrawxv32ysr", id="sample6-aes192"),
    pytest.param(K256, T_EMPTY, 10, PT10, "6657667009", id="sample7-aes256"),
    pytest.param(K256, T_10, 10, PT10, "1001623463", id="sample8-aes256"),
    pytest.param(K256, T_11, 36, PT36, "xs8a0azh2avyalyzuwd", id="sample9-aes256"),
]


def _numerals(text: str) -> list[int]:
    return [ALPHA36.index(ch) for ch in text]


def _text(numerals: list[int]) -> str:
    return "".join(ALPHA36[k] for k in numerals)


@pytest.mark.parametrize(("key", "tweak", "radix", "plain", "cipher"), NIST_FF1)
def test_nist_vectors_reference(key: bytes, tweak: bytes, radix: int, plain: str, cipher: str) -> None:
    assert _text(ff1_encrypt(key, tweak, radix, _numerals(plain))) == cipher
    assert _text(ff1_decrypt(key, tweak, radix, _numerals(cipher))) == plain


@pytest.mark.parametrize(("key", "tweak", "radix", "plain", "cipher"), NIST_FF1)
def test_nist_vectors_vectorized(key: bytes, tweak: bytes, radix: int, plain: str, cipher: str) -> None:
    f = FF1(key, radix, ALPHA36[:radix])
    # The sample among other rows of its length, so it goes through the batched path.
    rng = np.random.default_rng(radix)
    others = ["".join(ALPHA36[k] for k in rng.integers(0, radix, len(plain))) for _ in range(50)]
    values = np.array([*others[:25], plain, *others[25:]])
    encrypted = f.encrypt(values, tweak)
    assert encrypted[25] == cipher
    assert f.decrypt(encrypted, tweak).tolist() == values.tolist()
    assert f.decrypt(np.array([cipher]), tweak)[0] == plain
    assert _text(f.encrypt_codes(np.array([_numerals(plain)]), tweak)[0].tolist()) == cipher
    assert _text(f.decrypt_codes(np.array([_numerals(cipher)]), tweak)[0].tolist()) == plain
    assert f.encrypt_arrow(pa.array([None, plain]), tweak).to_pylist() == [None, cipher]
    assert f.decrypt_arrow(pa.array([cipher, None]), tweak).to_pylist() == [plain, None]


# --- FF1: the vectorized implementation against the reference ---


def _against_reference(f: FF1, codes: np.ndarray, tweak: bytes) -> None:
    encrypted = f.encrypt_codes(codes, tweak)
    expected = [ff1_encrypt(f._key, tweak, f.radix, row) for row in codes.tolist()]
    assert encrypted.tolist() == expected
    assert f.decrypt_codes(encrypted, tweak).tolist() == codes.tolist()
    assert [ff1_decrypt(f._key, tweak, f.radix, row) for row in expected[:3]] == codes[:3].tolist()


# (radix, lengths): radix 10 spans every branch of the vectorized rounds: y of d = 8 bytes
# (n <= 18), of d = 12 reduced in 32-bit limbs (n = 19), 16-bit limbs (n = 19..29) and 8-bit
# limbs (n = 29..32), the Python-int path from n = 33 (radix^v > 2^56), with d > 16 (S of
# several blocks) from n = 57 and NUM(B) across two PRF blocks (b > 16) at n = 101.
REFERENCE_CASES = [
    (10, [6, 7, 9, 10, 16, 17, 18, 19, 20, 29, 30, 31, 32, 33, 34, 40, 57, 60, 70, 101]),
    (2, [20, 21, 33, 56, 57, 64, 65, 112, 113, 130, 200]),
    (36, [4, 5, 11, 12, 21, 22, 23, 40]),
    (62, [4, 9, 10, 18, 19, 30]),
    (256, [3, 7, 8, 14, 15, 33]),
    (65536, [2, 3, 4, 7, 8, 9, 17]),
]


@pytest.mark.parametrize(("radix", "lengths"), REFERENCE_CASES, ids=[f"radix{r}" for r, _ in REFERENCE_CASES])
def test_vectorized_matches_reference(radix: int, lengths: list[int]) -> None:
    rng = np.random.default_rng(radix)
    alphabet = ALPHA36[:radix] if radix <= 36 else "".join(chr(0x4E00 + k) for k in range(radix))
    for j, n in enumerate(lengths):
        key = [K128, K192, K256][j % 3]
        tweak = [b"", b"\x01", os.urandom(13), os.urandom(15), os.urandom(16), os.urandom(17), os.urandom(40)][j % 7]
        _against_reference(FF1(key, radix, alphabet), rng.integers(0, radix, size=(40, n)), tweak)


def test_python_int_path_matches_reference_at_every_length(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Python-int path normally starts where uint64 ends; forced on short values, it must
    # agree with the reference (and so with the uint64 path) as well.
    monkeypatch.setattr(ff1, "_FAST_LIMIT", 0)
    rng = np.random.default_rng(7)
    for n in (6, 10, 17, 18, 19, 24):
        _against_reference(FF1(K256, 10), rng.integers(0, 10, size=(60, n)), b"tweak")


def test_vectorized_matches_reference_on_thousands_of_17_digit_values() -> None:
    rng = np.random.default_rng(17)
    f = FF1(K128)
    codes = rng.integers(0, 10, size=(2000, 17))
    expected = [ff1_encrypt(K128, b"", 10, row) for row in codes.tolist()]
    assert f.encrypt_codes(codes).tolist() == expected
    values = np.array(["".join(map(str, row)) for row in codes.tolist()])
    assert f.encrypt(values).tolist() == ["".join(map(str, row)) for row in expected]


def test_round_trips_of_random_strings_of_many_lengths_and_radixes() -> None:
    rng = np.random.default_rng(3)
    for radix in (2, 8, 10, 16, 26, 36):
        f = FF1(K192, radix)
        lo = f.min_length
        lengths = rng.integers(lo, lo + 40, size=3000)
        values = np.array(["".join(ALPHA36[k] for k in rng.integers(0, radix, n)) for n in lengths])
        encrypted = f.encrypt(values, b"rt")
        assert np.strings.str_len(encrypted).tolist() == lengths.tolist()
        assert all(set(v) <= set(ALPHA36[:radix]) for v in encrypted.tolist())
        assert (encrypted != values).mean() > 0.99
        assert f.decrypt(encrypted, b"rt").tolist() == values.tolist()
    f = FF1(K128, 10)
    for n in (6, 18, 40):  # the reference round-trips too
        x = rng.integers(0, 10, n).tolist()
        assert ff1_decrypt(K128, b"t", 10, ff1_encrypt(K128, b"t", 10, x)) == x


def test_mixed_lengths_in_one_call_equal_each_length_alone() -> None:
    f = FF1(K256)
    values = ["123456", "12345678901234567", "1234567890", "000000", "98765432109876543210123456789012345678"]
    together = f.encrypt(values)
    assert together.tolist() == [f.encrypt([v])[0] for v in values]
    assert f.decrypt(together).tolist() == values


def test_the_tweak_and_the_key_change_the_ciphertext() -> None:
    values = np.array([f"{k:017d}" for k in range(100)])
    base = FF1(K128).encrypt(values)
    assert (FF1(K128).encrypt(values, b"other") != base).all()
    assert (FF1(K256).encrypt(values) != base).all()
    assert (FF1(K128).encrypt(values) == base).all()  # deterministic


def test_nulls_are_kept_in_object_arrays_and_lists() -> None:
    f = FF1(K128)
    out = f.encrypt(["110105194912310", None, "310115198001010"])
    assert out.dtype == object and out[1] is None
    assert out[0] == f.encrypt(["110105194912310"])[0]
    assert f.decrypt(out).tolist() == ["110105194912310", None, "310115198001010"]
    assert f.encrypt(np.array([None, None], dtype=object)).tolist() == [None, None]
    assert f.encrypt(np.array([], dtype="U17")).tolist() == []


def test_bad_values_name_the_first_index_but_not_the_value() -> None:
    f = FF1(K128)
    with pytest.raises(ValueError, match=r"index 2 has a character outside the alphabet at position 4") as info:
        f.encrypt(["12345678", "87654321", "1234x678", "12", "99y99999"])
    assert "1234x678" not in str(info.value)
    with pytest.raises(ValueError, match=r"index 1 is shorter than 6"):
        f.encrypt(["1234567", "12345", "abcdefg"])
    with pytest.raises(ValueError, match=r"index 3 has a character"):
        f.encrypt([None, "1234567", None, "123456-"])
    with pytest.raises(ValueError, match=r"index 1 has a byte outside"):
        f.encrypt_arrow(pa.array(["1234567", "12345６7"]))
    with pytest.raises(TypeError, match=r"index 1 is a int"):
        f.encrypt(np.array(["1234567", 1234567], dtype=object))


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        FF1(b"short")
    with pytest.raises(ValueError, match="exactly 10 distinct"):
        FF1(K128, 10, "0123456788")
    with pytest.raises(ValueError, match="explicit alphabet"):
        FF1(K128, 64)
    with pytest.raises(ValueError, match=r"radix must be in 2\.\.65536"):
        ff1_encrypt(K128, b"", 65537, [0, 1, 2])
    with pytest.raises(ValueError, match=r"radix\^length must be at least 1000000"):
        ff1_encrypt(K128, b"", 10, [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"numeral 2 is not in 0\.\.9"):
        ff1_encrypt(K128, b"", 10, [1, 2, 10, 4, 5, 6])
    with pytest.raises(ValueError, match="row 1 has a numeral"):
        FF1(K128).encrypt_codes(np.array([[1] * 6, [1, 1, 1, 1, 1, -1]]))
    assert ff1.min_length(10) == 6 and ff1.min_length(36) == 4 and ff1.min_length(2) == 20
    assert ff1.min_length(1000) == 2 and ff1.min_length(65536) == 2


def test_arrow_arrays_keep_offsets_nulls_and_types() -> None:
    f = FF1(K128, 36)
    values = ["abcdef", None, "0123456789", "zzzz", None, "hello world".replace(" ", "")]
    expected = f.encrypt(values).tolist()
    assert f.encrypt_arrow(pa.array(values)).to_pylist() == expected
    large = f.encrypt_arrow(pa.array(values, type=pa.large_string()))
    assert large.type == pa.large_string() and large.to_pylist() == expected
    sliced = f.encrypt_arrow(pa.array(values).slice(2, 3))
    assert sliced.to_pylist() == expected[2:5]
    chunked = f.encrypt_arrow(pa.chunked_array([values[:3], values[3:]]))
    assert chunked.to_pylist() == expected
    assert f.decrypt_arrow(f.encrypt_arrow(pa.array(values))).to_pylist() == values
    digits = pa.array([f"{k:017d}" for k in range(1000)])  # one length, no nulls: the contiguous path
    assert f.encrypt_arrow(digits).to_pylist() == f.encrypt(digits.to_pylist()).tolist()


def test_non_ascii_alphabets() -> None:
    alphabet = "".join(chr(0x4E00 + k) for k in range(100)) + "０"  # CJK ideographs and a fullwidth zero
    f = FF1(K256, 101, alphabet)
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 101, size=(200, 5))
    values = ["".join(alphabet[k] for k in row) for row in codes.tolist()]
    encrypted = f.encrypt(values)
    expected = ["".join(alphabet[k] for k in ff1_encrypt(K256, b"", 101, row)) for row in codes.tolist()]
    assert encrypted.tolist() == expected
    assert f.decrypt(encrypted).tolist() == values
    assert f.encrypt_arrow(pa.array([values[0], None])).to_pylist() == [expected[0], None]
    with pytest.raises(ValueError, match="index 0 has a character outside the alphabet at position 1"):
        f.encrypt(["一a丁丁丁"])
    # Beyond the lookup table (CJK Extension B, U+20000 on): code points are found by binary search.
    supplementary = "".join(chr(0x20000 + 3 * k) for k in range(50))
    g = FF1(K128, 50, supplementary)
    codes = rng.integers(0, 50, size=(100, 4))
    values = ["".join(supplementary[k] for k in row) for row in codes.tolist()]
    expected = ["".join(supplementary[k] for k in ff1_encrypt(K128, b"", 50, row)) for row in codes.tolist()]
    assert g.encrypt(values).tolist() == expected
    assert g.decrypt(expected).tolist() == values
    with pytest.raises(ValueError, match="index 1 has a character outside the alphabet at position 3"):
        g.encrypt([values[0], values[1][:3] + chr(0x20001)])


# --- hashes, MACs and the SM4 block cipher: published vectors ---


def test_sm3_standard_vectors() -> None:
    # GB/T 32905-2016, annex A, examples 1 and 2.
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_sm4_standard_vector() -> None:
    # GB/T 32907-2016, annex A.1: key = plaintext = 0123456789abcdeffedcba9876543210.
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert encryptor.update(key).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_gcm_rfc8998_vector() -> None:
    # RFC 8998, appendix A.1 (SM4-GCM), through the sealer and opener encrypt_values uses.
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plain = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    sealed = ciphers._sealer("sm4-gcm", key)(nonce, plain, aad)
    assert sealed.hex().upper() == (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    assert ciphers._opener("sm4-gcm", key)(nonce, sealed, aad) == plain


def test_hmac_sha256_rfc4231() -> None:
    assert hmac_sha256(b"\x0b" * 20, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )  # test case 1
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )  # test case 2


def test_hmac_sm3_is_hmac_over_sm3() -> None:
    # RFC 2104 spelled out over the SM3 digest (64-byte block), for short and long keys.
    for key in (b"Jefe", os.urandom(32), os.urandom(100)):
        data = b"what do ya want for nothing?"
        k = (sm3(key) if len(key) > 64 else key).ljust(64, b"\0")
        inner = sm3(bytes(b ^ 0x36 for b in k) + data)
        assert hmac_sm3(key, data) == sm3(bytes(b ^ 0x5C for b in k) + inner)


# --- pseudonyms ---


def test_pseudonyms_are_deterministic_per_key_and_keep_nulls() -> None:
    key, other = os.urandom(32), os.urandom(32)
    values = ["110105194912310021", None, "张三", ""]
    first = pseudonymize(values, key)
    assert first.dtype == object and first[1] is None
    assert first.tolist() == pseudonymize(np.array(values, dtype=object), key).tolist()
    assert first[0] == hmac_sha256(key, values[0].encode()).hex()
    second = pseudonymize(values, other)
    assert all(a != b for a, b in zip(first.tolist(), second.tolist(), strict=True) if a is not None)
    sm = pseudonymize(values, key, "hmac-sm3", length=20)
    assert sm[0] == hmac_sm3(key, values[0].encode()).hex()[:20] and sm[1] is None
    assert all(re.fullmatch(r"[0-9a-f]{20}", p) for p in sm.tolist() if p is not None)
    assert pseudonymize(pa.array(values), key).tolist() == first.tolist()
    assert pseudonymize([b"\xe5\xbc\xa0\xe4\xb8\x89"], key)[0] == first[2]  # bytes are taken as they are
    # One pseudonym per value: distinct inputs stay distinct.
    many = [f"{k:018d}" for k in range(5000)]
    assert len(set(pseudonymize(many, key, length=16).tolist())) == 5000


def test_pseudonym_arguments_are_checked() -> None:
    key = os.urandom(32)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        pseudonymize(["a"], b"short")
    with pytest.raises(ValueError, match=r"1\.\.64"):
        pseudonymize(["a"], key, length=65)
    with pytest.raises(ValueError, match="unknown algorithm"):
        pseudonymize(["a"], key, "md5")
    with pytest.raises(TypeError, match="index 1 is a int"):
        pseudonymize(["a", 5], key)


# --- reversible authenticated encryption ---

AEAD_KEYS: dict[AeadAlgorithm, tuple[bytes, bytes]] = {
    "aes-256-gcm": (os.urandom(32), os.urandom(32)),
    "sm4-gcm": (os.urandom(16), os.urandom(16)),
}
AEADS = list(AEAD_KEYS)


@pytest.mark.parametrize("algorithm", AEADS)
def test_aead_round_trip_keeps_nulls_and_unicode(algorithm: AeadAlgorithm) -> None:
    key = AEAD_KEYS[algorithm][0]
    values = ["13800138000", None, "张三 上海市青浦区", "", "x" * 1000]
    sealed = encrypt_values(values, key, algorithm, 7, b"persons.mobile")
    assert sealed.dtype == object and sealed[1] is None
    for text, value in zip(sealed.tolist(), values, strict=True):
        if value is None:
            continue
        assert re.fullmatch(r"v7:[A-Za-z0-9_-]+", text)
        raw = base64.urlsafe_b64decode(text[3:] + "=" * (-len(text[3:]) % 4))
        assert len(raw) == 12 + len(value.encode()) + 16  # nonce || ciphertext || tag
    opened = decrypt_values(sealed, {7: key}, algorithm, b"persons.mobile")
    assert opened.tolist() == values
    assert decrypt_values(np.array(sealed), {7: key}, algorithm, b"persons.mobile").tolist() == values


@pytest.mark.parametrize("algorithm", AEADS)
def test_aead_fresh_nonce_every_value(algorithm: AeadAlgorithm) -> None:
    key = AEAD_KEYS[algorithm][0]
    once = encrypt_values(["same"] * 200, key, algorithm, 1)
    again = encrypt_values(["same"] * 200, key, algorithm, 1)
    assert len(set(once.tolist()) | set(again.tolist())) == 400
    nonces = {base64.urlsafe_b64decode(v[3:] + "==")[:12] for v in once.tolist()}
    assert len(nonces) == 200


@pytest.mark.parametrize("algorithm", AEADS)
def test_aead_rotation_picks_the_key_by_version(algorithm: AeadAlgorithm) -> None:
    old, new = AEAD_KEYS[algorithm]
    stored = [*encrypt_values(["a", "b"], old, algorithm, 1), *encrypt_values(["c", None], new, algorithm, 2)]
    assert decrypt_values(stored, {1: old, 2: new}, algorithm).tolist() == ["a", "b", "c", None]
    with pytest.raises(UnknownKeyVersion, match=r"index 2 is under key version 2; keys held: 1") as info:
        decrypt_values(stored, {1: old}, algorithm)
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("algorithm", AEADS)
def test_aead_tampering_is_detected(algorithm: AeadAlgorithm) -> None:
    key = AEAD_KEYS[algorithm][0]
    sealed = encrypt_values(["110105194912310021", "310115198001010012"], key, algorithm, 1).tolist()
    raw = bytearray(base64.urlsafe_b64decode(sealed[1][3:] + "=="))
    for position in (0, 12, len(raw) - 1):  # the nonce, the ciphertext, the tag
        altered = bytearray(raw)
        altered[position] ^= 1
        forged = "v1:" + base64.urlsafe_b64encode(bytes(altered)).decode().rstrip("=")
        with pytest.raises(TamperedCiphertext, match="index 1 failed authentication") as info:
            decrypt_values([sealed[0], forged], {1: key}, algorithm)
        assert isinstance(info.value, InvalidTag)
        assert "310115" not in str(info.value)
    with pytest.raises(InvalidTag):  # the associated data is authenticated
        decrypt_values(sealed, {1: key}, algorithm, b"another column")
    with pytest.raises(TamperedCiphertext):  # the wrong key under the right version
        decrypt_values(sealed, {1: AEAD_KEYS[algorithm][1]}, algorithm)


def test_aead_malformed_values_and_arguments() -> None:
    key = AEAD_KEYS["aes-256-gcm"][0]
    for bad in ("no-version", "v1:", "x1:AAAA", "v1:AAAA", "v1:@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"):
        with pytest.raises(CiphertextError, match="index 0"):
            decrypt_values([bad], {1: key}, "aes-256-gcm")
    with pytest.raises(ValueError, match="32-byte key"):
        encrypt_values(["a"], key[:16], "aes-256-gcm", 1)
    with pytest.raises(ValueError, match="16-byte key, the key of version 1 has 32"):
        decrypt_values(encrypt_values(["a"], key[:16], "sm4-gcm", 1), {1: key}, "sm4-gcm")
    with pytest.raises(ValueError, match="unknown algorithm"):
        encrypt_values(["a"], key, "des", 1)
    with pytest.raises(ValueError, match="non-negative"):
        encrypt_values(["a"], key, "aes-256-gcm", -1)
    with pytest.raises(TypeError, match="index 0 is a bytes"):
        encrypt_values([b"a"], key, "aes-256-gcm", 1)


# --- FF1 masking of resident IDs: what is kept (govops.security.masking) ---


def test_ff1_on_resident_ids_keeps_the_format_and_the_check_character_not_validity() -> None:
    from govops import identifiers
    from govops.sample_data.security_sample import _resident_ids
    from govops.security import masking

    ids = _resident_ids(np.random.default_rng(1), 20_000)
    wrong = [v[:17] + identifiers.RESIDENT_ID_CHECK_CHARS[(identifiers.RESIDENT_ID_CHECK_CHARS.index(v[17]) + 3) % 11]
             for v in ids[:500]]  # fmt: skip
    values = np.array(ids + wrong, dtype=object)
    ring = masking.KeyRing("k", 1, {1: bytes(range(32))})
    for keep_first in (0, 6):
        rule = masking.parse_rule("id_number", {"rule": "ff1", "check_char": "gb11643", "keep_first": keep_first}, "-")
        out = masking.transform(values, rule, ring)
        assert all(len(v) == 18 and v[:17].isdigit() for v in out)
        checked = [v[17] == identifiers.resident_id_check_char(v[:17]) for v in out]
        assert checked == [True] * len(ids) + [False] * len(wrong)  # the check character's relation is kept
        assert all(a[:keep_first] == b[:keep_first] for a, b in zip(values, out, strict=True))
        assert sum(a[6:14] == b[6:14] for a, b in zip(values, out, strict=True)) < 20  # the birth date is not
        problems = [identifiers.resident_id_problem(v) for v in out[:len(ids)]]
        # Not a valid ID number: the region code or the birth date fails, but by chance.
        assert set(problems) == ({None, "region_code", "birth_date"} if keep_first == 0 else {None, "birth_date"})
        assert problems.count(None) == (5 if keep_first == 0 else 14)  # of 20,000
        assert list(masking.reveal_values(out, rule, ring, 1)) == list(values)  # reversible with the key
