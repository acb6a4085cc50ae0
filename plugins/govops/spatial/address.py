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

# Read left to right: each level is taken off the front of what is left, and may be
# absent. Municipalities repeat the city (上海市上海市青浦区), shorten it (上海青浦区) or
# omit it; all parse. A county-level city (昆山市) is a district.
MUNICIPALITIES = "北京|天津|上海|重庆"
LEVELS: dict[str, str] = {
    "province": rf"(?:{MUNICIPALITIES})市?|[^省市]{{2,7}}?(?:省|自治区)",
    "city": rf"(?:{MUNICIPALITIES})市|[^市区县]{{2,7}}?(?:市|自治州|地区|盟)(?=.{{1,8}}?(?:区|县|市|旗))",
    "district": r"[^区县市镇乡路街道号]{1,7}?(?:新区|区|县|旗|市)",
    "street": r"[^区县市镇乡路街号]{1,8}?(?:街道|镇|乡)",
    "road": r"[^号]{1,12}?(?:大道|公路|路|街|巷|弄)",
    "house_number": r"\d+(?:-\d+)?号",
}


def parse(addresses: pd.Series) -> pd.DataFrame:
    """One column per level; empty string where absent."""
    import pandas as pd

    rest = addresses.astype("string").fillna("").str.replace(r"\s+", "", regex=True)
    parts = {}
    for level, pattern in LEVELS.items():
        found = rest.str.extract(f"^({pattern})?(.*)$")
        parts[level] = found[0].fillna("")
        rest = found[1].fillna("")
    frame = pd.DataFrame(parts, index=addresses.index)
    # 上海 and 上海市 name the same province; the standard form keeps the 市.
    frame["province"] = frame["province"].str.replace(rf"^({MUNICIPALITIES})$", r"\1市", regex=True)
    return frame


def standard_form(parts: pd.DataFrame) -> pd.Series:
    """street + road + house number: what identifies a 门牌 within a district."""
    return parts["street"] + parts["road"] + parts["house_number"]
