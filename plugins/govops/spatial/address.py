"""Chinese address text into province / city / district / street (街道, 镇, 乡) / road /
house number, and a standard form to compare with the standard address library.

A handful of regular expressions does this for the addresses public-data systems hold;
they run as Spark SQL ``regexp_extract`` on the cluster and through pandas here, with the
same patterns. Evaluated against ``cpca`` 0.5.5 (the common library for this) on the
addresses of tests/unit/test_spatial.py: it maps a district to its province, city and
adcode well (even 青浦区 alone), but stops there: street, road and house number stay one
unparsed string, and an address that starts below the district (朱家角镇漕平路) gets
nothing. It cannot check a 门牌, so it is not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Read left to right, each level optional. Municipalities repeat the city
# (上海市上海市青浦区), shorten it (上海青浦区) or omit it; all parse. A county-level city
# (昆山市) is a district. One RE2 pattern (no look-around), run by Arrow's C++ kernels.
MUNICIPALITIES = "北京|天津|上海|重庆"
LEVELS: dict[str, str] = {
    "province": rf"(?:{MUNICIPALITIES})市?|[^省市]{{2,7}}?(?:省|自治区)",
    "city": r"[^市区县]{2,7}?(?:市|自治州|地区|盟)",
    "district": r"[^区县市镇乡路街道号]{1,7}?(?:新区|区|县|旗|市)",
    "street": r"[^区县市镇乡路街号]{1,8}?(?:街道|镇|乡)",
    "road": r"[^号]{1,12}?(?:大道|公路|路|街|巷|弄)",
    "house_number": r"\d+(?:-\d+)?号",
}
PATTERN = "^" + "".join(f"(?P<{level}>{pattern})?" for level, pattern in LEVELS.items())


def parse(addresses: pd.Series) -> pd.DataFrame:
    """One column per level; empty string where absent."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.replace_substring_regex(pa.array(addresses.astype(object), type=pa.string()), r"\s+", "")
    parts = pc.extract_regex(pc.fill_null(text, ""), PATTERN)
    frame = pd.DataFrame({level: parts.field(level).to_numpy(zero_copy_only=False) for level in LEVELS},
                         index=addresses.index)  # fmt: skip
    # Without look-ahead, a county-level city with no district after it reads as a city.
    lone_city = (frame["district"] == "") & frame["city"].str.endswith("市") & (frame["street"] != "")
    frame.loc[lone_city, "district"] = frame.loc[lone_city, "city"]
    frame.loc[lone_city, "city"] = ""
    # 上海 and 上海市 name the same province; the standard form keeps the 市.
    frame["province"] = frame["province"].str.replace(rf"^({MUNICIPALITIES})$", r"\1市", regex=True)
    return frame


def _java_groups(column: str, levels: int, groups: tuple[int, ...]) -> list[str]:
    """Spark SQL ``regexp_extract`` of the given groups (1-based, in LEVELS order) of the
    pattern up to ``levels`` levels, in Java's regex engine. Every level is optional, so
    the groups match as with the whole pattern; the levels after the last one needed
    would only cost time."""
    java = "^" + "".join(f"({pattern})?" for pattern in list(LEVELS.values())[:levels])
    java = java.replace("\\", "\\\\").replace("'", "\\'")
    text = f"regexp_replace(coalesce({column}, ''), '\\\\s+', '')"
    return [f"regexp_extract({text}, '{java}', {i})" for i in groups]


def java_district_expression(column: str) -> str:
    """The district as a Spark SQL expression: the same pattern as :func:`parse`, with the
    same fix for a county-level city read as a city."""
    city, district, street = _java_groups(column, 4, (2, 3, 4))
    return f"CASE WHEN {district} = '' AND {city} LIKE '%市' AND {street} != '' THEN {city} ELSE {district} END"


def java_down_to_district_expression(column: str) -> str:
    """The address cut after its district (上海市青浦区华新镇…: 上海市青浦区) as a Spark SQL
    expression, '' when it names no district (masking's generalization to the district)."""
    province, city, district, street = _java_groups(column, 4, (1, 2, 3, 4))
    named = f"({district} != '' OR ({city} LIKE '%市' AND {street} != ''))"
    return f"CASE WHEN {named} THEN concat({province}, {city}, {district}) ELSE '' END"


def java_standard_form_expression(column: str) -> str:
    """:func:`standard_form` as a Spark SQL expression ('' when the address has none)."""
    return "concat({}, {}, {})".format(*_java_groups(column, len(LEVELS), (4, 5, 6)))


def standard_form(parts: pd.DataFrame) -> pd.Series:
    """street + road + house number: what identifies a 门牌 within a district."""
    return parts["street"] + parts["road"] + parts["house_number"]
