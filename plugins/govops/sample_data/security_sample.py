"""A labeled evaluation sample for the sensitive-data detectors (item 06): a table whose
columns hold known data types, some dirty values in them, and decoy columns that look like
sensitive data but are not (18-digit order numbers failing GB 11643, 16-digit numbers
failing Luhn, invalid USCCs, 11-digit numbers that are no mobile numbers, Chinese words
that are no names, organisation names that are no addresses, numbers in the longitude range
in a column not named like one, dates of the birth-date range in a column not named like
one...). ``truth`` says which column holds which data type
(None: none). Deterministic from the seed, so the precision and recall figures of
``govops.security.detectors.evaluate`` on it are exact.

    python -m govops.sample_data.security_sample OUT_DIR [--rows 1000] [--seed 6]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from govops.identifiers import RESIDENT_ID_CHECK_CHARS, USCC_ALPHABET, resident_id_check_char, uscc_check_char
from govops.sample_data import vocab

if TYPE_CHECKING:
    import pandas as pd

TRUTH: dict[str, str | None] = {
    "id": None, "id_number": "resident_id", "holder_code": "resident_id", "uscc": "uscc", "phone": "mobile",
    "office_tel": "landline", "card_no": "bank_card", "xm": "person_name", "owner": "person_name",
    "home_address": "address", "email": "email", "plate": "license_plate", "lon": "coordinate", "lat": "coordinate",
    "location": "coordinate", "order_no": None, "txn_ref": None, "reg_code": None, "random_11": None, "remark": None,
    "company_name": None, "org_name": None, "amount": None, "handle": None, "permit_no": None, "ratio_pair": None,
    "birth_date": "birth_date", "registered_on": None,
}  # fmt: skip
# Dirty values in true columns (their detector should miss them): share of the rows.
DIRTY = {"id_number": 0.02, "uscc": 0.03, "phone": 0.02, "card_no": 0.03}
NULLS = {"id_number": 0.01, "email": 0.05, "plate": 0.1}
NOT_NAMES = (
    "户籍迁入", "居住登记", "社保参保", "证照申领", "办件受理", "高新技术", "王牌产品", "黄金周", "金融服务",
    "安全生产", "文明城市", "明日事项", "通过审核", "待补材料", "已归档", "常规检查", "周末值班", "林业养护",
    "江南水乡", "石材加工",
)  # fmt: skip
ORGS = ("上海市青浦区公安分局", "上海市青浦区市场监督管理局", "青浦区规划和自然资源局", "上海市青浦区人民政府",
        "青浦区政务服务中心", "朱家角镇人民政府")  # fmt: skip
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "qingpu.gov.cn", "example.org")
PINYIN = ("zhang", "wang", "li", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun", "hu", "zhu", "gao")
COMPOUND = ("欧阳", "司马", "诸葛", "上官", "东方")
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


@dataclass
class SecuritySample:
    frame: pd.DataFrame
    truth: dict[str, str | None]
    seed: int

    def write(self, folder: Path) -> Path:
        """``folder/part-0.parquet`` and ``folder/_truth.json``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(self.frame, preserve_index=False), folder / "part-0.parquet")
        (folder / "_truth.json").write_text(json.dumps({"seed": self.seed, "rows": len(self.frame),
                                                        "truth": self.truth}, indent=1))  # fmt: skip
        return folder


def _resident_ids(rng: np.random.Generator, n: int) -> list[str]:
    codes = [c for c, _ in vocab.REGION_CODES]
    out = []
    for i in range(n):
        born = np.datetime64("1940-01-01") + int(rng.integers(0, 24_000))
        first17 = f"{codes[i % len(codes)]}{str(born).replace('-', '')}{int(rng.integers(0, 1000)):03d}"
        out.append(first17 + resident_id_check_char(first17))
    return out


def _wrong_check(value: str, alphabet: str, shift: int) -> str:
    return value[:-1] + alphabet[(alphabet.index(value[-1]) + 1 + shift % (len(alphabet) - 1)) % len(alphabet)]


def _usccs(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        body = "91310118" + "".join(USCC_ALPHABET[int(k)] for k in rng.integers(0, 31, 9))
        out.append(body + uscc_check_char(body))
    return out


def _luhn_numbers(rng: np.random.Generator, n: int, *, valid: bool, length: int | None = None) -> list[str]:
    from govops.security.detectors import luhn_check_digit

    out = []
    for i in range(n):
        prefix = ("62", "4", "52", "622848")[i % 4]
        width = length or (19 if i % 3 == 0 else 16)
        body = prefix + "".join(str(int(d)) for d in rng.integers(0, 10, width - len(prefix) - 1))
        check = luhn_check_digit(body)
        out.append(body + (check if valid else str((int(check) + 1 + i % 9) % 10)))  # any other digit fails
    return out


def _names(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for i in range(n):
        surname = COMPOUND[i % len(COMPOUND)] if i % 20 == 0 else vocab.SURNAMES[int(rng.integers(len(vocab.SURNAMES)))]
        given = "".join(vocab.GIVEN_CHARS[int(k)] for k in rng.integers(0, len(vocab.GIVEN_CHARS), 1 + i % 2))
        out.append(surname + given)
    return out


def _addresses(rng: np.random.Generator, n: int) -> list[str]:
    return [f"上海市青浦区{vocab.TOWN_SEATS[int(rng.integers(len(vocab.TOWN_SEATS)))][0]}"
            f"{vocab.ROADS[int(rng.integers(len(vocab.ROADS)))]}{int(rng.integers(1, 2000))}号"
            f"{int(rng.integers(1, 30))}号楼{int(rng.integers(101, 2600))}室" for _ in range(n)]  # fmt: skip


def _plates(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for i in range(n):
        letter = PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))]
        if i % 4 == 0:  # new-energy car: D or F, then a letter or digit and 4 digits
            second = PLATE_CHARS[int(rng.integers(len(PLATE_CHARS)))]
            tail = f"{'DF'[i % 8 // 4]}{second}{int(rng.integers(10_000)):04d}"
        else:
            tail = "".join(PLATE_CHARS[int(k)] for k in rng.integers(0, len(PLATE_CHARS), 5))
        out.append(f"{'沪苏浙'[i % 3]}{letter}{'·' if i % 10 == 5 else ''}{tail}")
    return out


def build(rows: int = 1000, seed: int = 6) -> SecuritySample:
    """The sample table (``rows`` >= 100) and its truth."""
    import pandas as pd

    if rows < 100:
        raise ValueError(f"rows must be at least 100 (dirty shares are per cent), got {rows}")
    rng = np.random.default_rng(seed)
    n = rows
    ids = _resident_ids(rng, n)
    for p in rng.choice(n, int(n * DIRTY["id_number"]), replace=False):
        ids[p] = _wrong_check(ids[p], RESIDENT_ID_CHECK_CHARS, int(p))
    codes = _usccs(rng, n)
    for p in rng.choice(n, int(n * DIRTY["uscc"]), replace=False):
        codes[p] = _wrong_check(codes[p], USCC_ALPHABET, int(p))
    phones = [f"1{'3589'[i % 4]}{int(d):09d}" for i, d in enumerate(rng.integers(0, 10**9, n))]
    for i in range(0, n, 20):  # 5 %: written with a country code and spaces
        phones[i] = f"+86 {phones[i][:3]} {phones[i][3:7]} {phones[i][7:]}"
    for p in rng.choice([i for i in range(n) if i % 20], int(n * DIRTY["phone"]), replace=False):
        phones[p] = phones[p][:10]  # a digit short
    tel = []
    for i, d in enumerate(rng.integers(0, 10**7, n)):
        local = f"6{int(d):07d}"
        tel.append(local if i % 5 == 0 else f"(0512){local}" if i % 10 == 1 else f"021-{local}")
    cards = _luhn_numbers(rng, n, valid=True)
    for p in rng.choice(n, int(n * DIRTY["card_no"]), replace=False):
        cards[p] = cards[p][:-1] + str((int(cards[p][-1]) + 5) % 10)
    for i in range(3, n, 10):
        cards[i] = " ".join(cards[i][k:k + 4] for k in range(0, len(cards[i]), 4))
    lon = np.round(rng.uniform(120.9, 121.3, n), 6)
    lat = np.round(rng.uniform(31.0, 31.3, n), 6)
    picks = zip(rng.integers(0, len(PINYIN), n), rng.integers(0, len(PINYIN), n), rng.integers(1, 999, n),
                rng.integers(0, len(EMAIL_DOMAINS), n), strict=True)  # fmt: skip
    emails = [f"{PINYIN[int(a)]}{PINYIN[int(b)]}{int(c)}@{EMAIL_DOMAINS[int(e)]}" for a, b, c, e in picks]
    # Decoys: shaped like the real thing, failing its check.
    order_no = [_wrong_check(v, RESIDENT_ID_CHECK_CHARS, i) for i, v in enumerate(_resident_ids(rng, n))]
    txn_ref = _luhn_numbers(rng, n, valid=False, length=16)
    reg_code = [_wrong_check(v, USCC_ALPHABET, i) for i, v in enumerate(_usccs(rng, n))]
    random_11 = [f"{'1012'[i % 4]}{'0129'[i % 4]}{int(d):09d}" for i, d in enumerate(rng.integers(0, 10**9, n))]
    companies = [f"上海{vocab.COMPANY_WORDS[int(a)]}{vocab.COMPANY_TRADES[int(b)]}有限公司"
                 for a, b in zip(rng.integers(0, len(vocab.COMPANY_WORDS), n),
                                 rng.integers(0, len(vocab.COMPANY_TRADES), n), strict=True)]  # fmt: skip
    handles = [f"@{PINYIN[int(a)]}{int(b)}" if i % 2 else f"{PINYIN[int(a)]}.{int(b)}#example.com"
               for i, (a, b) in enumerate(zip(rng.integers(0, len(PINYIN), n), rng.integers(1, 99, n), strict=True))]
    frame = pd.DataFrame({
        "id": np.arange(1, n + 1, dtype=np.int64),
        "id_number": ids,
        "holder_code": _resident_ids(rng, n),
        "uscc": codes,
        "phone": phones,
        "office_tel": tel,
        "card_no": cards,
        "xm": _names(rng, n),
        "owner": _names(rng, n),
        "home_address": _addresses(rng, n),
        "email": emails,
        "plate": _plates(rng, n),
        "lon": lon,
        "lat": lat,
        "location": [f"{x:.6f},{y:.6f}" for x, y in zip(lon, lat, strict=True)],
        "order_no": order_no,
        "txn_ref": txn_ref,
        "reg_code": reg_code,
        "random_11": random_11,
        "remark": [NOT_NAMES[int(k)] for k in rng.integers(0, len(NOT_NAMES), n)],
        "company_name": companies,
        "org_name": [ORGS[int(k)] for k in rng.integers(0, len(ORGS), n)],
        "amount": np.round(rng.uniform(80, 130, n), 2),
        "handle": handles,
        "permit_no": [f"沪{PLATE_LETTERS[int(a)]}{int(b):04d}" for a, b in
                      zip(rng.integers(0, len(PLATE_LETTERS), n), rng.integers(0, 10_000, n), strict=True)],
        "ratio_pair": [f"{a:.2f},{1 - a:.2f}" for a in rng.uniform(0, 1, n)],
        "birth_date": np.datetime64("1960-01-01") + rng.integers(0, 15_000, n),
        # its own generator: the columns above stay as they were before it was added
        "registered_on": np.datetime64("1990-01-01") + np.random.default_rng(seed + 1).integers(0, 12_000, n),
    })  # fmt: skip
    for column, share in NULLS.items():
        frame.loc[rng.choice(n, int(n * share), replace=False), column] = None
    assert list(frame.columns) == list(TRUTH)
    return SecuritySample(frame=frame, truth=dict(TRUTH), seed=seed)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--seed", type=int, default=6)
    a = p.parse_args(argv)
    sample = build(a.rows, a.seed)
    folder = sample.write(a.out_dir)
    print(f"{len(sample.frame)} rows, {len(sample.truth)} columns -> {folder}")
    return {"rows": len(sample.frame), "folder": str(folder)}


if __name__ == "__main__":
    main()
