"""Chinese identifiers: resident ID numbers (GB 11643-1999), unified social credit codes
(GB 32100-2015) and mobile numbers. Pure functions, reused by the quality rule library."""

from __future__ import annotations

import re
from datetime import date

import numpy as np

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11), ISO 7064 MOD 11-2
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# The first two digits of an administrative region code (GB/T 2260): the provinces.
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
        "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
    }
)  # fmt: skip
# GB 11643 writes the birth date as GB/T 7408's YYYYMMDD with no lower bound of its own; its
# worked example 440524188001010014 was born in 1880. A real calendar date from 1800 on, not
# in the future, covers everyone who was ever issued a number (from 1984) and still makes the
# date a check against random digits. One definition: the quality rule reads it too.
RESIDENT_ID_FIRST_BIRTH_YEAR = 1800
MOBILE = re.compile(r"1[3-9]\d{9}")
_ID_SHAPE = re.compile(r"\d{17}[\dX]")
_USCC_SHAPE = re.compile(f"[{USCC_ALPHABET}]{{18}}")


def resident_id_check_indexes(first17: np.ndarray) -> np.ndarray:
    """For many 17-digit strings at once: each one's check character as its position in
    RESIDENT_ID_CHECK_CHARS (the weighted sum mod 11)."""
    digits = np.asarray(first17).astype("S17").view(np.uint8).reshape(-1, 17) - ord("0")
    return (digits.astype(np.int64) @ np.array(RESIDENT_ID_WEIGHTS, dtype=np.int64)) % 11


def resident_id_check_chars(first17: np.ndarray) -> np.ndarray:
    """:func:`resident_id_check_char` for many 17-digit strings at once."""
    return np.array(list(RESIDENT_ID_CHECK_CHARS))[resident_id_check_indexes(first17)]


def resident_id_check_char(first17: str) -> str:
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"need 17 digits, got {first17!r}")
    return RESIDENT_ID_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True)) % 11]


def resident_id_problem(value: str | None) -> str | None:
    """Why a resident ID number is invalid (a reason code), or None when it is valid."""
    if value is None or value == "":
        return "missing"
    if len(value) != 18:
        return "length"
    if not _ID_SHAPE.fullmatch(value):
        return "format"
    if value[:2] not in PROVINCE_CODES:
        return "region_code"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "birth_date"
    if born.year < RESIDENT_ID_FIRST_BIRTH_YEAR or born > date.today():
        return "birth_date"
    if resident_id_check_char(value[:17]) != value[17]:
        return "check_digit"
    return None


def is_valid_resident_id(value: str | None) -> bool:
    return resident_id_problem(value) is None


def uscc_check_char(first17: str) -> str:
    if len(first17) != 17 or any(c not in USCC_ALPHABET for c in first17):
        raise ValueError(f"need 17 characters of {USCC_ALPHABET}, got {first17!r}")
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: str | None) -> str | None:
    """Why a unified social credit code is invalid (a reason code), or None when valid."""
    if value is None or value == "":
        return "missing"
    if len(value) != 18:
        return "length"
    if not _USCC_SHAPE.fullmatch(value):
        return "format"
    if uscc_check_char(value[:17]) != value[17]:
        return "check_char"
    return None


def is_valid_uscc(value: str | None) -> bool:
    return uscc_problem(value) is None


def is_valid_mobile(value: str | None) -> bool:
    return value is not None and MOBILE.fullmatch(value) is not None
