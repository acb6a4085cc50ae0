"""Sensitive-data detectors (数据标注, item 06): which column of a table holds which kind of
personal or enterprise data, from the column's name and its content.

Every detector is a native Spark Column expression (no Python UDF), and :func:`detect`
evaluates every detector on every column in ONE aggregation over the data: one
``count_if`` per (column, detector), plus a non-null count per column. The checksum
detectors keep false positives low: resident ID numbers (GB 11643, reused from
``govops.quality.rules``), unified social credit codes (GB 32100, reused likewise) and bank
card numbers (16-19 digits, a plausible BIN prefix and the Luhn check, computed with
Spark's higher-order functions: on 100,000 card numbers as fast as a sum unrolled over 19
fixed positions, which ``bench/labeling.py`` still measures, and with no width limit). The
others are shape rules: mobile and landline numbers (the quality rules, after removing
separators and a +86 prefix), person names (a common surname, 百家姓, then 1-2 CJK
characters, or a compound surname and 1-2), addresses (administrative, road and
house-number markers), e-mail, licence plates and coordinates, and birth dates (a real
calendar date from 1800 to today, the range of a resident ID's birth date, in a date,
timestamp, ``yyyyMMdd`` number or text column: ``1985-07-07``, ``19850707``, ``1985/7/7``,
``1985年7月7日``).

The decision rule (one data type per column, or none):

- ``match_ratio`` of a detector = values it matches / non-null values of the column;
- a detector *qualifies* when its ratio reaches ``threshold`` (default 0.8), or when the
  column's name hints at that data type (:func:`name_hint`, e.g. ``sfzh`` or ``身份证号``
  for resident_id) and its ratio reaches ``hint_threshold`` (default 0.5). A name alone
  never labels a column: ``name`` holding company names stays unlabeled;
- the qualifying detector with the highest ratio wins (a tie goes to the hinted type, then
  to the order of :data:`DATA_TYPES`); no qualifying detector: ``data_type`` None;
- two context rules: a numeric column is a coordinate only when its name says lon/lng/lat
  (经度/纬度) and its values are in China's longitude (or latitude) range; a landline
  without an area code (``69212345``) counts only in a column whose name hints a phone; a
  birth date counts only in a column whose name hints one (``birth_date``, ``dob``, ``csrq``,
  ``出生日期``), since every date column of a register (updated, registered, issued) holds
  dates of the same range.
  A value that is a valid resident ID number never counts as a bank card or a USCC (an ID
  passes the Luhn check one time in ten).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from govops.quality import rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DATA_TYPES: tuple[str, ...] = (
    "resident_id", "uscc", "bank_card", "mobile", "landline", "email", "license_plate", "coordinate",
    "person_name", "address", "birth_date",
)  # fmt: skip
DEFAULT_THRESHOLD = 0.8
DEFAULT_HINT_THRESHOLD = 0.5

# Common Chinese surnames (百家姓 as used today: the ~250 most frequent single-character
# surnames and the compound ones); rare single characters that are everyday words are left out.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季"
    "裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦"
    "戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻"
    "苑迟邝阎"
)
COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "令狐",
    "澹台", "轩辕", "端木", "独孤", "南宫", "西门", "呼延", "万俟", "闻人", "申屠", "钟离", "宗政", "濮阳", "太史",
    "公冶", "仲孙", "赫连", "拓跋", "百里", "东郭", "左丘", "第五",
)  # fmt: skip
SURNAME_FIRST_CHARS = tuple(sorted(set(SURNAMES) | {c[0] for c in COMPOUND_SURNAMES}))
CJK = r"\x{4e00}-\x{9fff}"
# A name does not end like a place or an organisation (路, 区, 局, 司 of 公司, ...).
NOT_NAME_ENDINGS = "路街区县市省镇乡村局厅所院司店厂站处部队委会馆楼号室"
_LAST = f"[{CJK}&&[^{NOT_NAME_ENDINGS}]]"  # Java class intersection: CJK but not a place/organisation ending
PERSON_NAME_REGEX = (
    f"^(?:(?:{'|'.join(COMPOUND_SURNAMES)})[{CJK}]?{_LAST}|[{SURNAMES}][{CJK}]?{_LAST}"
    f"|[{CJK}]{{1,8}}·[{CJK}]{{1,8}}(?:·[{CJK}]{{1,8}})?)$"
)
EMAIL_REGEX = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Province abbreviation, the issuing-office letter (no I or O), then 5 characters (the last
# may be 挂/学/警/港/澳), or 6 for new-energy vehicles (D/F first for cars, last for trucks).
PLATE_REGEX = (
    f"^[{PLATE_PROVINCES}][A-HJ-NP-Z][·• ]?"
    "(?:[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳]|[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF])$"
)
# GB 32100 positions 1-2: registration authority and organisation type (11 机关 ... 91 企业,
# 92 个体工商户, 93 农民专业合作社, Y1 其他).
USCC_PREFIX_REGEX = "^(?:1[1239]|2[19]|3[1-59]|4[19]|5[1239]|6[129]|7[129]|8[19]|9[123]|A[19]|N[1239]|Y1)"
# Issuer prefixes of bank cards seen in China: UnionPay 62 and 60 (e.g. 601382), Visa 4,
# Mastercard 51-55 and 22-27, JCB 35, ICBC's older 9558.
BANK_CARD_REGEX = r"^(?=[0-9]{16,19}$)(?:62|60|4|5[1-5]|2[2-7]|35|9558)"
# Area codes: 010, 02x, or four digits 03xx-09xx (the quality rule takes any 0 + 2-3 digits).
AREA_CODE_REGEX = "^(?:010|02[0-9]|0[3-9][0-9]{2})-?[2-9]"
# An address needs two of these markers, one being a road or a house number (a numeral
# right before 号/栋/幢/座/室/单元).
ADDRESS_ADMIN = ("省", "自治区", "市")
ADDRESS_DISTRICT = ("区", "县", "旗", "自治州", "盟")
ADDRESS_TOWN = ("镇", "乡", "街道", "苏木")
ADDRESS_ROAD = ("路", "街", "道", "巷", "弄", "胡同")
ADDRESS_NUMBER_MARKS = ("号", "栋", "幢", "座", "室", "单元")
ADDRESS_NUMBER = f"[0-9０-９一二三四五六七八九十百千零](?:{'|'.join(ADDRESS_NUMBER_MARKS)})"
DECIMAL = r"-?[0-9]{1,3}(?:\.[0-9]+)?"
COORDINATE_PAIR_REGEX = rf"^\s*(?:POINT\s*\(\s*)?({DECIMAL})\s*[,，\s]\s*({DECIMAL})\s*\)?\s*$"

# Name hints: keywords matched against the column name's tokens (ASCII, ``_``-joined, so
# ``person_id_number`` hints resident_id but ``orderid_number`` does not) or contained in it (CJK).
NAME_HINTS: dict[str, tuple[str, ...]] = {
    "resident_id": ("id_number", "id_no", "idno", "id_card", "idcard", "id_card_no", "sfzh", "sfz", "sfzhm", "zjhm",
                    "citizen_id", "resident_id", "身份证", "公民身份号码", "证件号"),
    "uscc": ("uscc", "tyshxydm", "shxydm", "credit_code", "social_credit_code", "统一社会信用代码", "信用代码"),
    "bank_card": ("card_no", "cardno", "card_number", "bank_card", "bank_account", "account_no", "yhkh", "yhzh",
                  "银行卡", "卡号", "银行账号", "银行账户"),
    "mobile": ("mobile", "phone", "cellphone", "mobile_phone", "phone_no", "sjhm", "lxdh", "手机", "联系电话",
               "电话号码"),
    "landline": ("tel", "telephone", "landline", "office_tel", "gddh", "座机", "固话", "固定电话", "办公电话"),
    "email": ("email", "e_mail", "mail", "mailbox", "dzyx", "邮箱", "电子邮件", "电子邮箱"),
    "license_plate": ("plate", "plate_no", "license_plate", "plate_number", "hphm", "cph", "车牌", "号牌"),
    "coordinate": ("coord", "coords", "coordinate", "coordinates", "location", "gps", "point", "geo", "坐标", "位置"),
    "person_name": ("name", "xm", "full_name", "person_name", "legal_representative", "fddbr", "contact_name",
                    "姓名", "名字", "法定代表人", "联系人"),
    "address": ("address", "addr", "dz", "zz", "zs", "住址", "地址", "住所", "户籍地"),
    "birth_date": ("birth_date", "birthdate", "birthday", "date_of_birth", "birth_dt", "dob", "born", "csrq",
                   "出生日期", "出生年月", "生日"),
}  # fmt: skip
LONGITUDE_HINTS = ("lon", "lng", "longitude", "x_coord", "经度")
LATITUDE_HINTS = ("lat", "latitude", "y_coord", "纬度")
# Words that make a name hint wrong: a column *about* a name or a card (its type, its count).
NOT_A_VALUE = ("type", "count", "cnt", "flag", "status", "len", "length", "类型", "数量")


def _tokens(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # camelCase -> camel_Case
    return "_" + "_".join(t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t) + "_"


def _hinted(name: str, keywords: Iterable[str]) -> bool:
    tokens = _tokens(name)
    return any((f"_{k}_" in tokens) if k.isascii() else (k in name) for k in keywords)


def name_hint(column_name: str) -> str | None:
    """The data type a column's name suggests, or None (``sfzh`` -> resident_id)."""
    if _hinted(column_name, NOT_A_VALUE):
        return None
    if _hinted(column_name, LONGITUDE_HINTS) or _hinted(column_name, LATITUDE_HINTS):
        return "coordinate"
    for data_type in DATA_TYPES:
        if _hinted(column_name, NAME_HINTS[data_type]):
            return data_type
    return None


def coordinate_axis(column_name: str) -> str | None:
    """``lon`` or ``lat`` when the name says which axis a numeric coordinate column holds."""
    if _hinted(column_name, LONGITUDE_HINTS):
        return "lon"
    if _hinted(column_name, LATITUDE_HINTS):
        return "lat"
    return None


# --- the detectors: Column (a string) -> Column (True = matches), never NULL ---
#
# Each runs its costly part (checksums, long regexes) under a CASE WHEN on a cheap gate
# (length, a character), so a value of another shape costs a comparison: Spark evaluates a
# WHEN branch only for the rows whose condition holds, while ``a & b`` may compute both.


def _never_null(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(condition, F.lit(False))


def _gated(gate: Column, check: Column) -> Column:
    from pyspark.sql import functions as F

    return F.when(gate, _never_null(check)).otherwise(F.lit(False))


def _length_between(value: Column, low: int, high: int) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.length(value).between(low, high), F.lit(False))


def _normalized(value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.upper(F.trim(value))


def resident_id(value: Column) -> Column:
    """GB 11643: the quality rule (shape, province, birth date, MOD 11-2 check character);
    a lower-case x is accepted as the check character."""
    return _gated(_length_between(value, 18, 20), rules.resident_id(_normalized(value)))


def uscc(value: Column) -> Column:
    """GB 32100 (the quality rule) with a registration authority and organisation type of
    the standard and a province in the region code, and not a valid resident ID number."""
    from pyspark.sql import functions as F

    from govops import identifiers

    v = _normalized(value)
    province = F.substring(v, 3, 2).isin(*sorted(identifiers.PROVINCE_CODES))
    not_an_id = F.when(v.rlike("^[0-9]{17}[0-9X]$"), ~rules.resident_id(v)).otherwise(F.lit(True))
    return _gated(_length_between(value, 18, 20) & v.rlike(USCC_PREFIX_REGEX) & province, rules.uscc(v) & not_an_id)


def luhn(digits: Column) -> Column:
    """The Luhn check of a string of digits (every second digit from the right doubled, digits
    summed, a multiple of 10), with higher-order functions on its characters: no UDF and no
    fixed width. Callers check that it is digits first."""
    from pyspark.sql import functions as F

    reversed_digits = F.reverse(F.split(digits, ""))

    def weighted(ch: Column, i: Column) -> Column:
        d = F.ascii(ch) - 48
        return F.when(i % 2 == 1, d * 2 - F.when(d >= 5, 9).otherwise(0)).otherwise(d)

    return F.aggregate(F.transform(reversed_digits, weighted), F.lit(0), lambda acc, d: acc + d) % 10 == 0


def luhn_unrolled(digits: Column, width: int = 19) -> Column:
    """The same check as :func:`luhn` unrolled over a fixed width (up to ``width`` digits);
    kept for the benchmark that chose between the two (bench/labeling.py)."""
    from pyspark.sql import functions as F

    total = F.lit(0)
    for k in range(width):
        d = F.greatest(F.ascii(F.substring(digits, -(k + 1), 1)) - 48, F.lit(0))  # '' beyond the start -> 0
        total = total + (d * 2 - F.when(d >= 5, 9).otherwise(0) if k % 2 else d)
    return total % 10 == 0


def _digits_only(value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.regexp_replace(F.trim(value), r"[ -]", "")


def bank_card(value: Column, *, check: Callable[[Column], Column] = luhn) -> Column:
    """16-19 digits (spaces and dashes ignored), a card issuer prefix, the Luhn check, and not
    a valid resident ID number."""
    digits = _digits_only(value)
    return _gated(_length_between(value, 16, 24),
                  _gated(digits.rlike(BANK_CARD_REGEX), check(digits) & ~rules.resident_id(digits)))  # fmt: skip


def mobile(value: Column) -> Column:
    """The quality rule (1[3-9] and 9 digits) after removing spaces, dashes and +86/0086."""
    from pyspark.sql import functions as F

    plain = F.regexp_replace(_digits_only(value), r"^(?:\+?86|0086)(?=1[3-9][0-9]{9}$)", "")
    return _gated(_length_between(value, 11, 20), rules.mobile(plain))


def landline(value: Column, *, phone_column: bool | Column = False) -> Column:
    """The quality rule (optional area code, 7-8 digits, optional extension) with an area
    code of the national plan (010, 02x, 0xxx) if there is one; without an area code only in
    a column whose name hints a phone (``phone_column``), since any 7-8 digit number
    starting 2-9 would pass."""
    from pyspark.sql import functions as F

    v = F.regexp_replace(F.trim(value), r"^\((0[1-9][0-9]{1,2})\)\s*", "$1-")  # (021)69212345
    hinted = F.lit(phone_column) if isinstance(phone_column, bool) else phone_column
    matched = rules.landline(v) & (~v.startswith("0") | v.rlike(AREA_CODE_REGEX)) & (hinted | v.startswith("0"))
    return _gated(_length_between(value, 7, 24), matched)


def email(value: Column) -> Column:
    from pyspark.sql import functions as F

    return _gated(value.contains("@"), F.trim(value).rlike(EMAIL_REGEX))


def license_plate(value: Column) -> Column:
    from pyspark.sql import functions as F

    return _gated(_length_between(value, 7, 10), F.upper(F.trim(value)).rlike(PLATE_REGEX))


def person_name(value: Column) -> Column:
    """A common surname and 1-2 more CJK characters (a compound surname: 3-4 in all), not
    ending like a place or an organisation; or a transliterated name with a middle dot.
    Four characters after a one-character surname are left out: such names are rare, and
    most four-character words (高新技术, 安全生产) start with a character that is a surname."""
    from pyspark.sql import functions as F

    v = F.trim(value)
    first = F.substring(v, 1, 1).isin(*SURNAME_FIRST_CHARS) | v.contains("·")  # a hash lookup before the regex
    return _gated(_length_between(value, 2, 20) & first, v.rlike(PERSON_NAME_REGEX))


def _any_of(value: Column, words: Iterable[str]) -> Column:
    from functools import reduce

    return reduce(lambda a, b: a | b, (value.contains(w) for w in words))


def address(value: Column) -> Column:
    """At least two of: a province/city marker, a district/county marker, a town marker, a
    road, a house number; one of the two being a road or a house number (so 上海市青浦区公安分局
    is not an address), 6-120 characters."""
    from pyspark.sql import functions as F

    road, number = _any_of(value, ADDRESS_ROAD), value.rlike(ADDRESS_NUMBER)
    markers = sum((c.cast("int") for c in (_any_of(value, ADDRESS_ADMIN), _any_of(value, ADDRESS_DISTRICT),
                                           _any_of(value, ADDRESS_TOWN), road, number)), F.lit(0))  # fmt: skip
    gate = _length_between(value, 6, 120) & _any_of(value, (*ADDRESS_ROAD, *ADDRESS_NUMBER_MARKS))
    return _gated(gate, (road | number) & (markers >= 2))


def coordinate_pair(value: Column) -> Column:
    """"lon,lat", "lat,lon" or WKT ``POINT(lon lat)`` inside China's extent."""
    from pyspark.sql import functions as F

    v = F.upper(value)
    a, b = F.regexp_extract(v, COORDINATE_PAIR_REGEX, 1), F.regexp_extract(v, COORDINATE_PAIR_REGEX, 2)
    gate = _length_between(value, 5, 64) & (value.contains(",") | value.contains("，") | value.contains(" "))
    return _gated(gate, v.rlike(COORDINATE_PAIR_REGEX) & (rules.coordinates_in_range(a, b)
                                                          | rules.coordinates_in_range(b, a)))  # fmt: skip


# How birth dates are written: ISO (a timestamp's date part), 8 digits, slashes, dots, Chinese.
DATE_FORMATS = ("yyyy-M-d", "yyyyMMdd", "yyyy/M/d", "yyyy.M.d", "yyyy年M月d日")


def parse_date(value: Column) -> Column:
    """The date a value of any type holds (a date, a timestamp, ``19850707``, ``1985-07-07``,
    ``1985/7/7``, ``1985年7月7日``, a timestamp's text), or NULL: never an error."""
    from pyspark.sql import functions as F

    text_ = F.regexp_extract(F.trim(value.cast("string")), r"^([^ T]+)", 1)
    return F.coalesce(*(F.try_to_date(text_, f) for f in DATE_FORMATS))


def birth_date(value: Column, *, hinted: bool | Column = False) -> Column:
    """A real date from ``identifiers.RESIDENT_ID_FIRST_BIRTH_YEAR`` to today, in a column
    whose name hints a birth date (``hinted``): any date column holds dates of that range."""
    from pyspark.sql import functions as F

    from govops.identifiers import RESIDENT_ID_FIRST_BIRTH_YEAR

    born = parse_date(value)
    hint = F.lit(hinted) if isinstance(hinted, bool) else hinted
    plausible = (F.year(born) >= RESIDENT_ID_FIRST_BIRTH_YEAR) & (born <= F.current_date())
    return _gated(hint & _length_between(value, 6, 30), plausible)


def longitude(value: Column) -> Column:
    x0, _, x1, _ = rules.CHINA_BOUNDS
    return _never_null(value.cast("string").try_cast("double").between(x0, x1))


def latitude(value: Column) -> Column:
    _, y0, _, y1 = rules.CHINA_BOUNDS
    return _never_null(value.cast("string").try_cast("double").between(y0, y1))


# --- detection over a DataFrame ---


@dataclass(frozen=True)
class ColumnDetection:
    column: str
    data_type: str | None  # the decision (see the module docstring), None: not sensitive data
    match_ratio: float  # matches / non_null of the best candidate (data_type, or the best unqualified one)
    non_null: int
    matches: int
    name_hint: str | None  # the data type the name suggests
    rows: int = 0  # rows examined (the whole table, or the sample)
    candidate: str | None = None  # the best-scoring detector, whether or not it qualified
    spark_type: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)  # matches of every detector that ran
    rule: str = ""  # content | content+name_hint | "" (none qualified)

    @property
    def ratios(self) -> dict[str, float]:
        return {t: (n / self.non_null if self.non_null else 0.0) for t, n in self.counts.items()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the Spark job's manifest carries detections this way)."""
        return {"column": self.column, "data_type": self.data_type, "match_ratio": self.match_ratio,
                "non_null": self.non_null, "matches": self.matches, "name_hint": self.name_hint, "rows": self.rows,
                "candidate": self.candidate, "spark_type": self.spark_type, "counts": dict(self.counts),
                "rule": self.rule}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDetection:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def evidence(self) -> dict[str, Any]:
        """What the label's evidence keeps: counts and ratios, never a value."""
        return {
            "rows": self.rows, "non_null": self.non_null, "matches": self.matches,
            "match_ratio": round(self.match_ratio, 6), "name_hint": self.name_hint, "candidate": self.candidate,
            "rule": self.rule, "spark_type": self.spark_type,
            "ratios": {t: round(r, 6) for t, r in self.ratios.items() if r > 0},
        }  # fmt: skip


# Which detectors apply to a column, by its Spark type: text gets all of them; integers
# (phones, cards, IDs and yyyyMMdd dates kept as numbers) the digit ones; fractions only the
# coordinate (and only under a lon/lat name); dates and timestamps the birth date; other
# types are counted, not detected.
DETECTORS_BY_KIND: dict[str, tuple[str, ...]] = {
    "text": DATA_TYPES,
    "integer": ("resident_id", "bank_card", "mobile", "landline", "coordinate", "birth_date"),
    "fraction": ("coordinate",),
    "date": ("birth_date",),
    "other": (),
}


def column_kind(spark_type: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(spark_type, T.StringType | T.VarcharType | T.CharType):
        return "text"
    if isinstance(spark_type, T.IntegralType) or (isinstance(spark_type, T.DecimalType) and spark_type.scale == 0):
        return "integer"
    if isinstance(spark_type, T.FractionalType):
        return "fraction"
    if isinstance(spark_type, T.DateType | T.TimestampType | T.TimestampNTZType):
        return "date"
    return "other"


def _stacked_detector(data_type: str, v: Column, kind: Column, phone: Column, axis: Column, born: Column) -> Column:
    """Detector ``data_type`` on the stacked value ``v`` (text), gated by the column's kind;
    ``phone``, ``axis`` and ``born`` carry the column's name hints as data."""
    from pyspark.sql import functions as F

    if data_type == "coordinate":
        numeric = F.when(axis == "lon", longitude(v)).when(axis == "lat", latitude(v)).otherwise(F.lit(False))
        detected = ((kind == "text") & coordinate_pair(v)) | numeric
    elif data_type == "landline":
        detected = landline(v, phone_column=phone)
    elif data_type == "birth_date":
        detected = birth_date(v, hinted=born)
    else:
        detected = DETECTORS[data_type](v)
    kinds = [k for k, types in DETECTORS_BY_KIND.items() if data_type in types]
    return kind.isin(*kinds) & detected


DETECTORS: dict[str, Callable[[Column], Column]] = {
    "resident_id": resident_id, "uscc": uscc, "bank_card": bank_card, "mobile": mobile, "landline": landline,
    "email": email, "license_plate": license_plate, "coordinate": coordinate_pair, "person_name": person_name,
    "address": address, "birth_date": birth_date,
}  # fmt: skip


def _decide(name: str, non_null: int, counts: Mapping[str, int], threshold: float,
            hint_threshold: float) -> tuple[str | None, str | None, str]:  # fmt: skip
    """(data_type, candidate, rule) by the module's decision rule."""
    hint = name_hint(name)
    if not non_null or not counts:
        return None, None, ""
    order = {t: i for i, t in enumerate(DATA_TYPES)}
    ranked = sorted(counts, key=lambda t: (-counts[t], t != hint, order[t]))
    candidate = ranked[0] if counts[ranked[0]] else None
    for data_type in ranked:  # by ratio, highest first: the first that qualifies wins
        ratio = counts[data_type] / non_null
        if not counts[data_type]:
            break
        if ratio >= threshold:
            return data_type, data_type, "content"
        if data_type == hint and ratio >= hint_threshold:
            return data_type, data_type, "content+name_hint"
    return None, candidate, ""


def sample(df: DataFrame, rows: int, seed: int = 11) -> DataFrame:
    """About ``rows`` rows drawn across the whole table (not just its first files), at most
    ``rows``; the table itself when it is not larger."""
    total = df.count()  # Parquet answers from its footers
    if total <= rows:
        return df
    # Bernoulli sampling: ask for a few standard deviations more than wanted, then cut.
    fraction = min(1.0, (rows + 4 * rows**0.5 + 10) / total)
    return df.sample(withReplacement=False, fraction=fraction, seed=seed).limit(rows)


def detect(
    df: DataFrame, *, columns: Iterable[str] | None = None, sample_rows: int | None = None,
    threshold: float = DEFAULT_THRESHOLD, hint_threshold: float = DEFAULT_HINT_THRESHOLD,
) -> dict[str, ColumnDetection]:  # fmt: skip
    """Run every applicable detector on every column (default: all of them) in one Spark
    aggregation and decide each column's data type; ``sample_rows`` limits the rows examined
    (default: all of them, so the labeled record count is the table's).

    The columns are stacked, not laid side by side: each row becomes one (column, value as
    text) row per column, and one ``groupBy(column)`` counts, per column, its non-null values
    and every detector's matches. So each detector is compiled once, not once per column: a
    wide table's side-by-side expression (the ID checksum alone is 17 terms) overflows Java's
    64 KB method limit and Spark falls back to slow interpreted evaluation. The aggregation
    is partial on the map side, so the shuffle is a few rows per column and task.
    """
    from pyspark.sql import functions as F

    if not 0 < hint_threshold <= threshold <= 1:
        raise ValueError(f"need 0 < hint_threshold ({hint_threshold}) <= threshold ({threshold}) <= 1")
    if sample_rows is not None and sample_rows <= 0:
        raise ValueError(f"sample_rows must be positive, got {sample_rows}")
    fields = {f.name: f.dataType for f in df.schema.fields}
    wanted = list(fields) if columns is None else list(dict.fromkeys(columns))
    unknown = [c for c in wanted if c not in fields]
    if unknown:
        raise ValueError(f"no column(s) {unknown} in the data (it has {list(fields)})")
    if sample_rows is not None:
        df = sample(df, sample_rows)
    if not wanted:
        return {}
    kinds = {name: column_kind(fields[name]) for name in wanted}
    cells = []
    for i, name in enumerate(wanted):
        col = F.col("`" + name.replace("`", "``") + "`")
        value = col.cast("string") if kinds[name] != "other" else F.when(col.isNotNull(), F.lit(""))
        cells.append(F.struct(F.lit(i).alias("c"), value.alias("v"), F.lit(kinds[name]).alias("k"),
                              F.lit(name_hint(name) in ("mobile", "landline")).alias("p"),
                              F.lit(coordinate_axis(name)).cast("string").alias("a"),
                              F.lit(name_hint(name) == "birth_date").alias("b")))  # fmt: skip
    stacked = df.select(F.inline(F.array(*cells)))
    v, kind, phone, axis, born = F.col("v"), F.col("k"), F.col("p"), F.col("a"), F.col("b")
    aggs = [F.count(F.lit(1)).alias("rows"), F.count(v).alias("non_null")]
    aggs += [F.count_if(v.isNotNull() & _stacked_detector(t, v, kind, phone, axis, born)).alias(t)
             for t in DATA_TYPES]  # fmt: skip
    figures = {int(r["c"]): r.asDict() for r in stacked.groupBy("c").agg(*aggs).collect()}
    out = {}
    for i, name in enumerate(wanted):
        found = figures.get(i)  # absent only when the table is empty
        rows, non_null = (int(found["rows"]), int(found["non_null"])) if found else (0, 0)
        counts = {t: int(found[t]) if found else 0 for t in DETECTORS_BY_KIND[kinds[name]]}
        if kinds[name] != "text" and not coordinate_axis(name):
            counts.pop("coordinate", None)
        data_type, candidate, rule = _decide(name, non_null, counts, threshold, hint_threshold)
        matches = counts.get(candidate, 0) if candidate else 0
        out[name] = ColumnDetection(
            column=name, data_type=data_type, match_ratio=matches / non_null if non_null else 0.0, non_null=non_null,
            matches=matches, name_hint=name_hint(name), rows=rows, candidate=candidate,
            spark_type=fields[name].simpleString(), counts=counts, rule=rule,
        )  # fmt: skip
    return out


# --- where the data is ---

LAKE_ZONES = ("raw", "clean", "sharing", "open", "archive")


def check_dataset(dataset: str) -> str:
    """A lake dataset named ``<zone>/<path>`` (``raw/frontdb/public_security/persons``),
    refused when the zone is unknown or the path climbs out of it."""
    parts = dataset.strip().strip("/").split("/")
    if len(parts) < 2 or parts[0] not in LAKE_ZONES:
        raise ValueError(f"dataset {dataset!r}: expected <zone>/<path> with zone one of {', '.join(LAKE_ZONES)}")
    if any(p in ("", ".", "..") or not re.fullmatch(r"[\w.=-]+", p) for p in parts[1:]):
        raise ValueError(f"dataset {dataset!r}: each path part is letters, digits, _ . = - (no empty or .. parts)")
    return "/".join(parts)


# --- pure-Python references (tests, the sample generator) ---


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        total += (d * 2 - 9 if d >= 5 else d * 2) if i % 2 else d
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    return str((10 - sum(int(c) for c in _luhn_weighted(body + "0")) % 10) % 10)


def _luhn_weighted(digits: str) -> list[str]:
    out = []
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        out.append(str((d * 2 - 9 if d >= 5 else d * 2) if i % 2 else d))
    return out


# --- precision and recall on labeled data ---


@dataclass(frozen=True)
class Figures:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_dict(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": r(self.precision), "recall": r(self.recall)}


@dataclass(frozen=True)
class Evaluation:
    """Per data type, at the column level (the decision vs the column's true type) and at the
    value level (each non-null value: did the detector fire vs is it in a column of that type)."""

    columns: dict[str, Figures]
    values: dict[str, Figures]
    detections: dict[str, ColumnDetection]

    def table(self) -> list[dict[str, Any]]:
        return [{"data_type": t, "column": self.columns[t].as_dict(), "value": self.values[t].as_dict()}
                for t in DATA_TYPES]  # fmt: skip


def evaluate(detections: Mapping[str, ColumnDetection], truth: Mapping[str, str | None]) -> Evaluation:
    """Precision and recall of detections against the true data type of each column (None for
    a decoy or an ordinary column). Value level: a value of a true-``t`` column counts as a
    true positive of detector ``t`` when ``t`` fired on it, a false negative when it did not
    (a mistyped ID in an ID column is still an ID the detector missed); a value of any other
    column on which ``t`` fired is a false positive."""
    missing = set(truth) - set(detections)
    if missing:
        raise ValueError(f"the truth names column(s) {sorted(missing)} that were not detected")
    columns, values = {}, {}
    for t in DATA_TYPES:
        ctp = sum(1 for c, d in detections.items() if c in truth and d.data_type == t and truth[c] == t)
        cfp = sum(1 for c, d in detections.items() if c in truth and d.data_type == t and truth[c] != t)
        cfn = sum(1 for c, d in detections.items() if c in truth and d.data_type != t and truth[c] == t)
        columns[t] = Figures(ctp, cfp, cfn)
        vtp = sum(d.counts.get(t, 0) for c, d in detections.items() if c in truth and truth[c] == t)
        vfp = sum(d.counts.get(t, 0) for c, d in detections.items() if c in truth and truth[c] != t)
        vfn = sum(d.non_null - d.counts.get(t, 0) for c, d in detections.items() if c in truth and truth[c] == t)
        values[t] = Figures(vtp, vfp, vfn)
    return Evaluation(columns, values, dict(detections))
