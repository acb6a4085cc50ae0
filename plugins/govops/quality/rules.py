"""The rule library of Chinese public data as row conditions: resident ID numbers (GB 11643),
unified social credit codes (GB 32100), mobile and landline numbers, dates not in the
future, code tables, coordinates in range, birth date matching the ID number.

Each rule is one Spark Column expression (True = the value is as expected), built from
native functions only, so a whole suite evaluates in one JVM pass with no Python UDF. The
same functions serve the Great Expectations metric providers (govops.quality.expectations)
and this project's single-pass engine (govops.quality.engine): one definition, two runners.
Pandas equivalents (for GX's pandas engine and small frames) reuse govops.identifiers.
"""

from __future__ import annotations

import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govops import identifiers
from govops.quality.suites import suites_dir

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column

MOBILE_REGEX = r"^1[3-9][0-9]{9}$"
# Area code 0 + 2-3 digits (optional dash), a 7-8 digit number, an optional extension.
LANDLINE_REGEX = r"^(0[1-9][0-9]{1,2}-?)?[2-9][0-9]{6,7}(-[0-9]{1,6})?$"
CHINA_BOUNDS = (73.5, 3.8, 135.1, 53.6)  # lon min, lat min, lon max, lat max (WGS-84)


def today() -> datetime.date:
    """Today in the contract's time zone (``GOVOPS_TIMEZONE``), not the Spark session's or the
    machine's: between 00:00 and 08:00 in Shanghai, UTC is still on yesterday. The rules take
    it as a literal, computed where the expression is built (the driver), so the engine and
    GX's own engine judge "the future" alike."""
    from govops.ledger.usage import contract_timezone

    return datetime.datetime.now(contract_timezone()).date()


def code_tables_dir() -> Path:
    """The one place code tables are read from, by the engine and by GX alike: the suites'
    folder's ``code_tables/``."""
    return suites_dir() / "code_tables"


def resident_id(column: Column) -> Column:
    """GB 11643-1999: 18 characters, a province code, a real birth date not after today,
    and the ISO 7064 MOD 11-2 check character."""
    from pyspark.sql import functions as F

    shaped = column.rlike(r"^[0-9]{17}[0-9X]$")
    province = F.substring(column, 1, 2).isin(*sorted(identifiers.PROVINCE_CODES))
    born = F.try_to_date(F.substring(column, 7, 8), "yyyyMMdd")
    total = sum(
        (F.substring(column, i + 1, 1).try_cast("int") * w for i, w in enumerate(identifiers.RESIDENT_ID_WEIGHTS)),
        F.lit(0),
    )
    check = F.substring(F.lit(identifiers.RESIDENT_ID_CHECK_CHARS), total % 11 + 1, 1)
    return F.coalesce(
        shaped & province & born.isNotNull() & (F.year(born) >= identifiers.RESIDENT_ID_FIRST_BIRTH_YEAR)
        & (born <= F.current_date()) & (check == F.substring(column, 18, 1)),
        F.lit(False),
    )


def resident_id_pandas(column: pd.Series) -> pd.Series:
    return column.map(lambda v: identifiers.resident_id_problem(str(v)) is None)


def uscc(column: Column) -> Column:
    """GB 32100-2015: 18 characters of the 31-character alphabet and the check character."""
    from pyspark.sql import functions as F

    alphabet = F.lit(identifiers.USCC_ALPHABET)
    shaped = column.rlike(f"^[{identifiers.USCC_ALPHABET}]{{18}}$")
    total = sum(
        ((F.instr(alphabet, F.substring(column, i + 1, 1)) - 1) * w for i, w in enumerate(identifiers.USCC_WEIGHTS)),
        F.lit(0),
    )
    check = F.substring(alphabet, (F.lit(31) - total % 31) % 31 + 1, 1)
    return F.coalesce(shaped & (check == F.substring(column, 18, 1)), F.lit(False))


def uscc_pandas(column: pd.Series) -> pd.Series:
    return column.map(lambda v: identifiers.uscc_problem(str(v)) is None)


def mobile(column: Column) -> Column:
    return column.cast("string").rlike(MOBILE_REGEX)


def mobile_pandas(column: pd.Series) -> pd.Series:
    return column.astype(str).str.fullmatch(MOBILE_REGEX.strip("^$"))


def landline(column: Column) -> Column:
    return column.cast("string").rlike(LANDLINE_REGEX)


def landline_pandas(column: pd.Series) -> pd.Series:
    return column.astype(str).str.fullmatch(LANDLINE_REGEX.strip("^$"))


def not_in_future(column: Column, date_format: str | None = None) -> Column:
    """A date (or a text date in ``date_format``, Spark datetime pattern) that is today or
    earlier; text that is not a date is unexpected too."""
    from pyspark.sql import functions as F

    text = column.cast("string")
    as_date = F.try_to_date(text, date_format) if date_format else F.try_to_date(text)
    return F.coalesce(as_date <= F.lit(today()), F.lit(False))


def not_in_future_pandas(column: pd.Series, date_format: str | None = None) -> pd.Series:
    import pandas as pd

    python_format = _python_date_format(date_format) if date_format else None
    parsed = pd.to_datetime(column.astype(str), format=python_format, errors="coerce")
    return (parsed.dt.normalize() <= pd.Timestamp(today())).fillna(False)


def _python_date_format(spark_format: str) -> str:
    out = spark_format
    for spark, python in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")):
        out = out.replace(spark, python)
    return out


def code_table(name: str, values: str = "codes") -> tuple[str, ...]:
    """The codes (or, with ``values="meanings"``, their meanings, for sources that store the
    words) of a code table ``<code_tables_dir()>/<name>.yaml``, a mapping ``codes: {code: meaning}``."""
    return _code_table(name, values, code_tables_dir())


@cache
def _code_table(name: str, values: str, directory: Path) -> tuple[str, ...]:
    if values not in ("codes", "meanings"):
        raise ValueError(f"code table {name!r}: values must be 'codes' or 'meanings', not {values!r}")
    import yaml

    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise ValueError(f"code table {name!r}: no file {path}; known tables: {known}")
    codes = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("codes")
    if not isinstance(codes, dict) or not codes:
        raise ValueError(f"{path}: needs a non-empty mapping 'codes: {{code: meaning}}'")
    return tuple(str(c) for c in (codes if values == "codes" else codes.values()))


def in_code_table(column: Column, table: str, values: str = "codes") -> Column:
    return column.cast("string").isin(*code_table(table, values))


def in_code_table_pandas(column: pd.Series, table: str, values: str = "codes") -> pd.Series:
    return column.astype(str).isin(code_table(table, values))


def coordinates_in_range(lon: Column, lat: Column, bounds: Any = None) -> Column:
    """Both numeric and inside the bounds (default: China's extent); either one missing is
    unexpected, since a point needs both."""
    from pyspark.sql import functions as F

    x0, y0, x1, y1 = bounds or CHINA_BOUNDS
    x, y = lon.cast("string").try_cast("double"), lat.cast("string").try_cast("double")
    return F.coalesce(x.between(x0, x1) & y.between(y0, y1), F.lit(False))


def coordinates_in_range_pandas(lon: pd.Series, lat: pd.Series, bounds: Any = None) -> pd.Series:
    import pandas as pd

    x0, y0, x1, y1 = bounds or CHINA_BOUNDS
    x, y = pd.to_numeric(lon, errors="coerce"), pd.to_numeric(lat, errors="coerce")
    return (x.between(x0, x1) & y.between(y0, y1)).fillna(False)


def birth_date_matches_id(birth_date: Column, id_number: Column) -> Column:
    """The birth date field equals the date in positions 7-14 of the ID number. When either
    is missing there is nothing to compare (other rules report missing values)."""
    from pyspark.sql import functions as F

    from_id = F.try_to_date(F.substring(id_number.cast("string"), 7, 8), "yyyyMMdd")
    stated = F.try_to_date(birth_date.cast("string"))
    return F.when(birth_date.isNull() | id_number.isNull(), F.lit(True)).otherwise(
        F.coalesce(from_id == stated, F.lit(False))
    )


def birth_date_matches_id_pandas(birth_date: pd.Series, id_number: pd.Series) -> pd.Series:
    import pandas as pd

    from_id = pd.to_datetime(id_number.astype(str).str[6:14], format="%Y%m%d", errors="coerce")
    stated = pd.to_datetime(birth_date.astype(str), errors="coerce")
    both = birth_date.notna() & id_number.notna()
    return ~both | (from_id == stated).fillna(False)
