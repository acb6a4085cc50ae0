"""The sensitive-data detectors on crafted values (valid, a wrong check digit, decoys of the
same shape) in a real local Spark session, the decision rule of ``detect`` on small
tables, name hints, and the grading table loader with its refusals of malformed files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from govops import identifiers
from govops.security import detectors, grading
from govops.security.detectors import DATA_TYPES, luhn_check_digit, luhn_valid, name_hint

spark_test = pytest.mark.integration  # the detector tests need a local Spark session
GRADING = Path(__file__).resolve().parents[2] / "include/security/grading.yaml"



def fires(spark: Any, detector: Callable[[Any], Any], values: list[Any], kind: str = "string") -> list[bool]:
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], f"i int, v {kind}")
    return [r.hit for r in df.orderBy("i").select(detector(F.col("v")).alias("hit")).collect()]


def _id(first17: str) -> str:
    return first17 + identifiers.resident_id_check_char(first17)


def _ids(region: str) -> Iterator[str]:
    """Valid resident ID numbers of one region, born in July 1985."""
    return (_id(f"{region}198507{day:02d}{seq:03d}") for day in range(1, 29) for seq in range(1000))


def _wrong(value: str) -> str:
    alphabet = identifiers.RESIDENT_ID_CHECK_CHARS
    return value[:-1] + alphabet[(alphabet.index(value[-1]) + 1) % 11]


# --- checksum detectors ---


@spark_test
def test_resident_id(spark: Any) -> None:
    valid = _id("31011819850707123")
    values = [
        "11010519491231002X",  # GB 11643's worked example
        "11010519491231002x",  # a lower-case check character
        f" {valid} ",  # padded
        _wrong(valid),  # wrong check digit
        _id("99010519491231002"),  # no such province
        _id("11010519491331002"),  # month 13 (a valid check digit)
        valid[:17],  # 17 digits
        "201811290000000017",  # an 18-digit order number
        None,
    ]
    assert fires(spark, detectors.resident_id, values) == [True, True, True, False, False, False, False, False, False]


@spark_test
def test_uscc_and_its_decoys(spark: Any) -> None:
    # An ID number that also passes the USCC check character is an ID, not a USCC.
    # (41 reads as authority 4 type 1, 13 as a province: only the exclusion tells them apart.)
    both = next(v for v in _ids("411302") if identifiers.is_valid_uscc(v))
    values = [
        "91350100M000100Y43",  # a code printed on a real business licence
        "91350100m000100y43",  # lower case
        "91350100M000100Y44",  # wrong check character
        "11350100M000100Y4" + identifiers.uscc_check_char("11350100M000100Y4"),  # 11 机关: valid
        "01350100M000100Y4" + identifiers.uscc_check_char("01350100M000100Y4"),  # authority 0: no such code
        "91990100M000100Y4" + identifiers.uscc_check_char("91990100M000100Y4"),  # region 99: no such province
        both,
        "91350100M000100Y4",  # 17 characters
    ]
    assert fires(spark, detectors.uscc, values) == [True, True, False, True, False, False, False, False]
    assert fires(spark, detectors.resident_id, [both]) == [True]


def test_luhn_reference() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("41111111111x1111")
    assert all(luhn_valid(b + luhn_check_digit(b)) for b in ("622848001234567", "40000000000000000", "7992739871"))


@spark_test
def test_luhn_in_spark_matches_python_both_ways(spark: Any) -> None:
    import random

    rng = random.Random(5)
    values = ["".join(rng.choice("0123456789") for _ in range(rng.randint(12, 19))) for _ in range(400)]
    expected = [luhn_valid(v) for v in values]
    assert 30 < sum(expected) < 70  # about one in ten
    assert fires(spark, detectors.luhn, values) == expected
    assert fires(spark, detectors.luhn_unrolled, values) == expected


@spark_test
def test_bank_card(spark: Any) -> None:
    union_pay = "622848001234567" + luhn_check_digit("622848001234567")
    long_card = "621700123456789012" + luhn_check_digit("621700123456789012")
    id_passing_luhn = next(v for v in _ids("410105") if luhn_valid(v))
    values = [
        "4111111111111111",  # Visa test card
        union_pay,
        long_card,  # 19 digits
        " ".join(union_pay[i:i + 4] for i in range(0, 16, 4)),  # 6228 4800 1234 5678
        union_pay[:-1] + str((int(union_pay[-1]) + 1) % 10),  # fails Luhn
        "378282246310005",  # 15 digits (Amex): too short
        "1234567812345670",  # passes Luhn, no issuer starts with 1
        id_passing_luhn,  # a valid resident ID number (prefix 41) passing Luhn
        "4111-1111-1111-1111",
    ]  # fmt: skip
    assert luhn_valid("1234567812345670")
    assert fires(spark, detectors.bank_card, values) == [True, True, True, True, False, False, False, False, True]
    # the same as numbers
    assert fires(spark, lambda c: detectors.bank_card(c.cast("string")), [4111111111111111, 4111111111111112],
                 "bigint") == [True, False]  # fmt: skip


GB11643_1880 = "440524188001010014"  # GB 11643's own example: born 1 January 1880


def test_ids_born_before_1900_are_valid() -> None:
    # GB 11643 puts no bound of its own on the birth year; its example was born in 1880.
    assert identifiers.resident_id_problem(GB11643_1880) is None
    assert luhn_valid(GB11643_1880) and GB11643_1880.startswith("4")  # also shaped like a Visa card
    early = "44052417991231001"
    assert identifiers.resident_id_problem(early + identifiers.resident_id_check_char(early)) == "birth_date"
    future = f"440524{date.today().year + 1}0101001"
    assert identifiers.resident_id_problem(future + identifiers.resident_id_check_char(future)) == "birth_date"


@spark_test
def test_an_id_born_in_1880_is_an_id_and_never_a_bank_card(spark: Any) -> None:
    from govops.quality import rules

    first = f"440524{identifiers.RESIDENT_ID_FIRST_BIRTH_YEAR}0101001"
    at_bound = first + identifiers.resident_id_check_char(first)
    before = "44052417991231001"
    values = [GB11643_1880, at_bound, before + identifiers.resident_id_check_char(before)]
    # One definition: the labeling detector, the quality rule and the pure function agree.
    assert fires(spark, detectors.resident_id, values) == [True, True, False]
    assert fires(spark, rules.resident_id, values) == [True, True, False]
    assert [identifiers.is_valid_resident_id(v) for v in values] == [True, True, False]
    assert fires(spark, detectors.bank_card, [GB11643_1880]) == [False]
    # A column of such IDs is labeled resident_id, and the bank-card detector counts none of them.
    ids = [f"44052418{y:02d}0101{s:03d}" for y in range(80, 100) for s in range(5)]
    df = spark.createDataFrame([(v + identifiers.resident_id_check_char(v),) for v in ids], "holder string")
    found = detectors.detect(df)["holder"]
    assert (found.data_type, found.counts["resident_id"], found.counts["bank_card"]) == ("resident_id", 100, 0)


# --- shape detectors ---


@spark_test
def test_mobile(spark: Any) -> None:
    values = ["13812345678", "+86 138 1234 5678", "008613812345678", "138-1234-5678", "12812345678", "1381234567",
              "23812345678", "0138123456789"]  # fmt: skip
    assert fires(spark, detectors.mobile, values) == [True, True, True, True, False, False, False, False]


@spark_test
def test_landline_needs_an_area_code_unless_the_column_is_a_phone(spark: Any) -> None:
    values = ["021-69212345", "(0512)62345678", "02169212345", "0512-62345678-123", "69212345", "014-62345678",
              "13812345678", "12345678"]  # fmt: skip
    assert fires(spark, detectors.landline, values) == [True, True, True, True, False, False, False, False]
    phone = lambda c: detectors.landline(c, phone_column=True)  # noqa: E731
    assert fires(spark, phone, values) == [True, True, True, True, True, False, False, False]


@spark_test
def test_email_and_licence_plates(spark: Any) -> None:
    assert fires(spark, detectors.email, ["zhang.san@qingpu.gov.cn", "li_4+x@163.com", "@zhangsan", "a@b",
                                          "wang#example.com", "x y@z.com"]) == [True, True, False, False, False, False]
    plates = ["沪A12345", "沪AD12345", "沪A12345D", "苏E·7X8Y9", "浙BF1234A", "沪I12345", "AA12345", "沪A1234",
              "沪a12345", "沪A1234学"]  # fmt: skip
    assert fires(spark, detectors.license_plate, plates) == [True, True, True, True, False, False, False, False, True,
                                                             True]  # fmt: skip


@spark_test
def test_person_names_and_words_that_are_not(spark: Any) -> None:
    values = ["张三", "欧阳娜娜", "王小明", " 李娜 ", "买买提·艾力", "诸葛亮", "高新技术", "青浦区", "李公司", "张",
              "Zhang San", "黄金周"]  # fmt: skip
    # 黄金周 reads like a name (黄 and two more characters): the known false positive of the rule.
    assert fires(spark, detectors.person_name, values) == [True, True, True, True, True, True, False, False, False,
                                                           False, False, True]  # fmt: skip


@spark_test
def test_addresses(spark: Any) -> None:
    values = ["上海市青浦区华新镇华志路123号", "华志路123号", "青浦区盈港东路1000弄5号301室", "上海市青浦区公安分局",
              "上海市青浦区", "青浦区朱家角镇", "金泽镇人民政府", "上海青浦科技有限公司"]  # fmt: skip
    assert fires(spark, detectors.address, values) == [True, True, True, False, False, False, False, False]


@spark_test
def test_coordinates(spark: Any) -> None:
    values = ["121.1,31.2", "31.2, 121.1", "POINT(121.123 31.456)", "121.1，31.2", "0.35,0.65", "200.1,31.2", "121.1"]
    assert fires(spark, detectors.coordinate_pair, values) == [True, True, True, True, False, False, False]
    assert fires(spark, detectors.longitude, [121.1, 31.2, 200.0, None], "double") == [True, False, False, False]
    assert fires(spark, detectors.latitude, [121.1, 31.2, 3.0], "double") == [False, True, False]


@spark_test
def test_birth_dates_only_under_a_birth_date_name(spark: Any) -> None:
    values = ["1985-07-07", "19850707", "1985/7/7", "1985年7月7日", "1880-01-01", "1985-07-07 08:00:00",
              "1985-02-30", "1799-12-31", f"{date.today().year + 1}-01-01", "1985", "办件受理", None]  # fmt: skip
    hinted = lambda c: detectors.birth_date(c, hinted=True)  # noqa: E731
    assert fires(spark, hinted, values) == [True] * 6 + [False] * 6
    assert fires(spark, detectors.birth_date, values) == [False] * 12  # no name hint: any date would pass
    assert fires(spark, hinted, [date(1985, 7, 7), None], "date") == [True, False]
    assert fires(spark, hinted, [19850707, 1985], "bigint") == [True, False]


# --- name hints and the decision rule ---


@pytest.mark.parametrize(("column", "hint"), [
    ("sfzh", "resident_id"), ("id_number", "resident_id"), ("person_id_number", "resident_id"),
    ("公民身份号码", "resident_id"),
    ("orderid_number", None), ("id", None), ("uscc", "uscc"), ("统一社会信用代码", "uscc"), ("card_no", "bank_card"),
    ("银行卡号", "bank_card"), ("id_card_no", "resident_id"), ("phone", "mobile"), ("手机号码", "mobile"),
    ("office_tel", "landline"), ("hotel_name", "person_name"), ("email", "email"), ("plate_no", "license_plate"),
    ("车牌号码", "license_plate"), ("lon", "coordinate"), ("lat_gcj02", "coordinate"), ("经度", "coordinate"),
    ("name", "person_name"), ("姓名", "person_name"), ("legalRepresentative", "person_name"),
    ("homeAddress", "address"),
    ("户籍地址", "address"), ("name_type", None), ("amount", None),
    ("birth_date", "birth_date"), ("dateOfBirth", "birth_date"), ("csrq", "birth_date"), ("出生日期", "birth_date"),
    ("dob", "birth_date"), ("birth_place", None), ("出生地", None), ("updated_at", None),
])  # fmt: skip
def test_name_hints(column: str, hint: str | None) -> None:
    assert name_hint(column) == hint


def test_check_dataset() -> None:
    assert detectors.check_dataset("raw/frontdb/public_security/persons/") == "raw/frontdb/public_security/persons"
    for bad in ("persons", "tmp/x", "raw/../clean/x", "raw//x", "raw/a b"):
        with pytest.raises(ValueError, match="dataset"):
            detectors.check_dataset(bad)


@spark_test
def test_detect_decision_rule(spark: Any) -> None:
    mobiles = [f"139{k:08d}" for k in range(10)]
    words = ["办件受理"] * 10
    rows = []
    for i in range(10):
        rows.append((
            mobiles[i] if i < 6 else words[i],  # phone: 60 % mobiles, named phone -> mobile
            mobiles[i] if i < 6 else words[i],  # misc: the same without a hint -> nothing
            mobiles[i] if i < 8 else words[i],  # contact: 80 % -> mobile by content alone
            121.0 + i / 10,  # lon -> coordinate
            121.0 + i / 10,  # amount: same numbers, no hint -> nothing
            int(mobiles[i]),  # mobile_no as bigint -> mobile
            None if i < 7 else "张三",  # xm: 3 non-null names
            date(2020, 1, 1 + i),  # born: dates under a birth-date name -> birth_date
            date(2020, 1, 1 + i),  # updated: the same dates, no hint -> nothing
            True,  # a boolean: counted, never detected
        ))  # fmt: skip
    df = spark.createDataFrame(rows, "phone string, misc string, contact string, lon double, amount double, "
                                     "mobile_no bigint, xm string, born date, updated date, flag boolean")  # fmt: skip
    found = detectors.detect(df)
    assert {c: d.data_type for c, d in found.items()} == {
        "phone": "mobile", "misc": None, "contact": "mobile", "lon": "coordinate", "amount": None,
        "mobile_no": "mobile", "xm": "person_name", "born": "birth_date", "updated": None, "flag": None,
    }  # fmt: skip
    phone, misc, contact = found["phone"], found["misc"], found["contact"]
    assert (phone.rule, phone.matches, phone.non_null, phone.match_ratio, phone.name_hint) == (
        "content+name_hint", 6, 10, 0.6, "mobile")
    assert (misc.candidate, misc.match_ratio, misc.rule) == ("mobile", 0.6, "")
    assert contact.rule == "content" and contact.counts["mobile"] == 8
    assert (found["xm"].non_null, found["xm"].matches, found["born"].counts) == (3, 3, {"birth_date": 10})
    assert (found["updated"].counts, found["flag"].non_null, found["flag"].counts) == ({"birth_date": 0}, 10, {})
    assert "coordinate" not in found["amount"].counts and found["amount"].counts == {}
    assert {d.rows for d in found.values()} == {10}
    # The thresholds are parameters: at 0.9 the 80 % column is no longer labeled.
    assert detectors.detect(df, columns=["contact"], threshold=0.9)["contact"].data_type is None
    # A sample examines at most that many rows.
    assert detectors.detect(df, columns=["phone"], sample_rows=4)["phone"].rows == 4
    with pytest.raises(ValueError, match="no column"):
        detectors.detect(df, columns=["nope"])
    with pytest.raises(ValueError, match="hint_threshold"):
        detectors.detect(df, threshold=0.4)


def test_surnames_cover_the_sample_district() -> None:
    from govops.sample_data import vocab

    assert set(vocab.SURNAMES) <= set(detectors.SURNAMES)
    assert len(set(detectors.SURNAMES)) == len(detectors.SURNAMES) > 250  # no duplicates


def test_data_types_are_all_graded_and_detected() -> None:
    assert set(detectors.DETECTORS) == set(DATA_TYPES) == set(grading.load(GRADING).data_types)


# --- the grading table ---


def test_default_grading_table() -> None:
    g = grading.load()
    assert g.path == GRADING and len(g.sha256) == 64
    assert [(n, lv.grade) for n, lv in g.levels.items()] == [
        ("L1", "general"), ("L2", "general"), ("L3", "general"), ("L4", "important"), ("L5", "core")]
    assert g.label_for("resident_id") == ("identity", "important", "L4")
    assert g.label_for("mobile") == ("contact", "general", "L3")
    assert g.label_for("uscc") == ("enterprise", "general", "L1")
    assert g.label_for(None) == ("business", "general", "L2")
    assert g.default_rule("mobile") == {"rule": "partial", "keep_first": 3, "keep_last": 4}
    assert g.default_rule("resident_id") == {"rule": "hmac"}
    assert g.default_rule("landline") == {"rule": "keep"}  # its level's rule
    assert g.label_for("birth_date") == ("identity", "general", "L3")
    assert g.default_rule("birth_date") == {"rule": "generalize", "to": "year"}
    # A label whose level a person changed is masked by that level, not by its type's rule.
    assert g.rule_for("mobile", "L3") == g.default_rule("mobile")
    assert g.rule_for("mobile", "L4") == g.rule_for(None, "L4") == {"rule": "encrypt"}
    assert [lv for lv in g.levels if g.is_sensitive(lv)] == ["L3", "L4", "L5"]
    assert g.categories["identity"] == "个人身份"
    with pytest.raises(grading.GradingError, match="not graded"):
        g.label_for("passport")


def _write(tmp_path: Path, change: Callable[[dict], None]) -> Path:
    document = yaml.safe_load(GRADING.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "grading.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["data_types"]["mobile"].update(level="L7"), r"data_types\.mobile\.level: unknown level 'L7'"),
    (lambda d: d["data_types"]["mobile"].update(category="contacts"),
     r"data_types\.mobile\.category: unknown category 'contacts'"),
    (lambda d: d["data_types"].update(passport={"category": "identity", "level": "L4"}),
     r"data_types\.passport: unknown data type"),
    (lambda d: d["data_types"].pop("email"), r"data_types: no grade for email"),
    (lambda d: d["levels"]["L4"].update(grade="secret"), r"levels\.L4\.grade: unknown grade 'secret'"),
    (lambda d: d["levels"]["L5"].update(grade="general"), r"levels\.L5\.grade: general is below L4's important"),
    (lambda d: d["levels"].pop("L2"), r"levels: must be L1, L2, L3, L4 without gaps"),
    (lambda d: d["levels"]["L3"]["default_rule"].update(rule="scramble"),
     r"levels\.L3\.default_rule\.rule: unknown rule 'scramble'"),
    (lambda d: d["data_types"]["mobile"]["default_rule"].update(keep_first=-1),
     r"data_types\.mobile\.default_rule\.keep_first: must be a non-negative integer"),
    (lambda d: d["data_types"]["mobile"].update(lvl="L3"), r"data_types\.mobile\.lvl: unknown field"),
    (lambda d: d.pop("unlabeled"), r"the file: missing field\(s\) unlabeled"),
    (lambda d: d["levels"]["L3"].update(sensitive="yes"), r"levels\.L3\.sensitive: must be true or false"),
    # the masking engine's own check of a rule's parameters
    (lambda d: d["data_types"]["address"]["default_rule"].update(to="planet"),
     r"data_types\.address\.default_rule\.to: 'planet' is not one of"),
])  # fmt: skip
def test_malformed_grading_tables_are_refused_with_file_and_field(tmp_path: Path, change: Callable[[dict], None],
                                                                   message: str) -> None:  # fmt: skip
    path = _write(tmp_path, change)
    with pytest.raises(grading.GradingError, match=f"^INVALID_GRADING: {re.escape(str(path))}: {message}"):
        grading.load(path)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "grading.yaml"
    path.write_text("levels:\n  L1: {grade: general\n", encoding="utf-8")
    with pytest.raises(grading.GradingError, match=rf"{re.escape(str(path))}: line \d+, column \d+: not valid YAML"):
        grading.load(path)
    with pytest.raises(grading.GradingError, match="cannot read"):
        grading.load(tmp_path / "missing.yaml")
