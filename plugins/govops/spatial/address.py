"""Chinese address text into province / city / district / street (街道, 镇, 乡) / road /
house number, and a standard form to compare with the standard address library.

A handful of regular expressions does this for the addresses public-data systems hold,
run by Arrow's C++ kernels (RE2) once per distinct address; masking's generalization to
the district has a Spark SQL form of the same patterns. Evaluated against ``cpca`` 0.5.5
(the common library for this) on the addresses of tests/unit/test_spatial.py: it maps a
district to its province, city and adcode well (even 青浦区 alone), but stops there:
street, road and house number stay one unparsed string, and an address that starts
below the district (朱家角镇漕平路) gets nothing. It cannot check a 门牌, so it is not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

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


def _levels(text: Any, levels: int, wanted: tuple[str, ...] = tuple(LEVELS)) -> dict[str, Any]:
    """Arrow string arrays of the ``wanted`` ones of the first ``levels`` levels ("" where
    absent) of ``text`` (addresses through :func:`_arrow`, or views of them), each distinct
    address parsed once: records repeat their addresses, and the regex is the cost.

    Each level's span comes from how much of the text the pattern up to it consumes
    (a regex replace with no capture groups, which RE2 runs as a DFA: ten times faster
    than extracting groups). Every level is optional, so the levels before one match as
    they do in the whole pattern.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(text)
    # RE2's \s is ASCII: the ideographic space (U+3000) is named.
    text = pc.replace_substring_regex(pc.fill_null(encoded.dictionary.cast(pa.string()), ""), r"[\s\x{3000}]+", "")
    names = list(LEVELS)[:levels]
    total = pc.binary_length(text).to_numpy(zero_copy_only=False)
    ends = [np.zeros(len(text), dtype=np.int64)]
    for i in range(1, levels + 1):
        prefix = "^" + "".join(f"(?:{LEVELS[name]})?" for name in names[:i])
        rest = pc.binary_length(pc.replace_substring_regex(text, prefix, ""))
        ends.append(total - rest.to_numpy(zero_copy_only=False))
    # Everything on the distinct addresses; one take per wanted level at the end.
    out = {name: _spans(text, ends[i], ends[i + 1]) for i, name in enumerate(names)
           if name in wanted or name in ("city", "street")}  # fmt: skip
    if "district" in out:
        # Without look-ahead, a county-level city with no district after it reads as a city.
        lone_city = pc.and_(pc.and_(pc.equal(out["district"], ""), pc.ends_with(out["city"], "市")),
                            pc.not_equal(out["street"], ""))  # fmt: skip
        out["district"] = pc.if_else(lone_city, out["city"], out["district"])
        out["city"] = pc.if_else(lone_city, "", out["city"])
    if "province" in out:
        # 上海 and 上海市 name the same province; the standard form keeps the 市.
        out["province"] = pc.replace_substring_regex(out["province"], rf"^({MUNICIPALITIES})$", r"\1市")
    return {name: pc.fill_null(pc.take(out[name], encoded.indices), "") for name in names if name in wanted}


def _arrow(addresses: Any) -> Any:  # -> pyarrow string Array
    """Addresses as one Arrow string array, from Arrow, pandas or a list (None kept), with
    full-width forms made ASCII (:func:`_halfwidth`): the one normalizer every parse uses."""
    import pyarrow as pa

    if isinstance(addresses, pa.ChunkedArray):
        addresses = addresses.combine_chunks()
    if not isinstance(addresses, pa.Array):
        addresses = pa.array(list(addresses), pa.string(), from_pandas=True)
    return _halfwidth(addresses if addresses.type == pa.string() else addresses.cast(pa.string()))


def _halfwidth(text: Any) -> Any:  # -> pyarrow string Array
    """The full-width ASCII forms (U+FF01-FF5E: １２号, １－３号, Ａ座) as ASCII, as NFKC maps
    them: Chinese input methods type house numbers that way, and the patterns' digits are
    ASCII. Each is three UTF-8 bytes (EF BC 81-BF, EF BD 80-9E) becoming one, found with one
    byte comparison (no CJK ideograph starts with EF); text without any is returned as is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    if text.buffers()[2] is None or not len(text) or offsets[-1] == offsets[0]:
        return text
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    at = np.flatnonzero(data[:-2] == 0xEF)
    second, third = data[at + 1], data[at + 2]
    wide = ((second == 0xBC) & (third >= 0x81)) | ((second == 0xBD) & (third <= 0x9E))
    if not wide.any():
        return text
    at, second, third = at[wide], second[wide], third[wide]
    out = data.copy()
    out[at] = np.where(second == 0xBC, third - 0x60, third - 0x20)  # U+FF01 - 0xFEE0 = U+0021
    keep = np.ones(len(data), dtype=bool)
    keep[at + 1] = keep[at + 2] = False
    relative = offsets - offsets[0]
    new_offsets = (relative - 2 * np.searchsorted(at, relative)).astype(np.int32)
    result = pa.StringArray.from_buffers(len(text), pa.py_buffer(new_offsets), pa.py_buffer(out[keep].tobytes()))
    return pc.if_else(pc.is_null(text), pa.scalar(None, pa.string()), result) if text.null_count else result


def _spans(text: Any, start: NDArray, stop: NDArray) -> Any:  # -> pyarrow string Array
    """text[i][start[i]:stop[i]] (UTF-8 byte offsets) for every i, copied with one numpy
    gather: the cheaper way for the short level spans of distinct addresses."""
    import pyarrow as pa

    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None else np.zeros(0, np.uint8)
    length = stop - start
    new_offsets = np.concatenate(([0], np.cumsum(length))).astype(np.int32)
    gather = np.repeat(offsets[:-1] + start - new_offsets[:-1], length) + np.arange(new_offsets[-1])
    return pa.StringArray.from_buffers(len(text), pa.py_buffer(new_offsets), pa.py_buffer(data[gather].tobytes()))


def _views(text: Any, start: NDArray, stop: NDArray) -> Any:  # -> pyarrow string_view Array
    """:func:`_spans` as Arrow string views into the texts' own bytes, without a copy: the
    cheaper way for long spans of every record (whose views are then only hashed). A view
    is 16 bytes: the size, then up to 12 bytes
    inline, or else a 4-byte prefix, the data buffer's index (0) and the offset in it."""
    import pyarrow as pa

    buffer = text.buffers()[2] if text.buffers()[2] is not None and text.buffers()[2].size else pa.py_buffer(b"\0")
    data = np.frombuffer(buffer, dtype=np.uint8)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    begin, size = offsets[:-1] + np.asarray(start, np.int64), np.asarray(stop - start, np.int64)
    views = np.zeros((len(text), 16), dtype=np.uint8)
    views[:, :4] = size.astype("<i4").view(np.uint8).reshape(-1, 4)
    inline = np.flatnonzero(size <= 12)
    at = np.minimum(begin[inline, None] + np.arange(12), len(data) - 1)
    views[inline, 4:] = np.where(np.arange(12) < size[inline, None], data[at], 0)
    long = np.flatnonzero(size > 12)
    views[long, 4:8] = data[begin[long, None] + np.arange(4)]
    views[long, 12:] = begin[long].astype("<i4").view(np.uint8).reshape(-1, 4)
    return pa.Array.from_buffers(pa.string_view(), len(text), [None, pa.py_buffer(views), buffer])


def parse(addresses: pd.Series) -> pd.DataFrame:
    """One column per level; empty string where absent."""
    import pandas as pd

    levels = _levels(_arrow(addresses.astype(object)), len(LEVELS))
    return pd.DataFrame({name: part.to_numpy(zero_copy_only=False) for name, part in levels.items()},
                        index=addresses.index)  # fmt: skip


def districts(addresses: Any) -> Any:  # -> pyarrow string Array
    """The district each address names ("" where none), as :func:`parse` reads it, from
    the text before its first digit: no district or street name has one, and those heads
    (上海市青浦区朱家角镇沪青平公路) repeat far more than whole addresses do, so each is parsed
    once. Only the levels down to the street are matched; the rest would only cost time."""
    import pyarrow.compute as pc

    text = pc.fill_null(_arrow(addresses), "")
    return _levels(_heads(text), 4, ("city", "district", "street"))["district"]


def _heads(text: Any) -> Any:  # -> pyarrow string_view Array
    """Each text up to its first ASCII digit (the whole text when it has none), as views
    (hashing them, to parse each head once, is cheap)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    stop = np.diff(offsets).astype(np.int64)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None else np.zeros(0, np.uint8)
    digit = np.flatnonzero((data >= 0x30) & (data <= 0x39))
    digit = digit[(digit >= offsets[0]) & (digit < offsets[-1])] if len(offsets) else digit[:0]
    if len(digit):
        row = np.searchsorted(offsets, digit, side="right") - 1
        first = np.flatnonzero(np.concatenate(([True], row[1:] != row[:-1])))
        stop[row[first]] = digit[first] - offsets[row[first]]
    return _views(text, np.zeros(len(text), np.int64), stop)


def standard_forms(addresses: Any) -> Any:  # -> pyarrow string Array
    """street + road + house number of each address ("" where none): what identifies a
    门牌 within a district, to compare with the standard address library."""
    import pyarrow.compute as pc

    levels = _levels(_arrow(addresses), len(LEVELS), ("street", "road", "house_number"))
    return pc.binary_join_element_wise(levels["street"], levels["road"], levels["house_number"], "")


def _java_groups(column: str, levels: int, groups: tuple[int, ...]) -> list[str]:
    """Spark SQL ``regexp_extract`` of the given groups (1-based, in LEVELS order) of the
    pattern up to ``levels`` levels, in Java's regex engine. Every level is optional, so
    the groups match as with the whole pattern; the levels after the last one needed
    would only cost time."""
    java = "^" + "".join(f"({pattern})?" for pattern in list(LEVELS.values())[:levels])
    java = java.replace("\\", "\\\\").replace("'", "\\'")
    text = f"regexp_replace(coalesce({column}, ''), '\\\\s+', '')"
    return [f"regexp_extract({text}, '{java}', {i})" for i in groups]


def java_down_to_district_expression(column: str) -> str:
    """The address cut after its district (上海市青浦区华新镇…: 上海市青浦区) as a Spark SQL
    expression, '' when it names no district (masking's generalization to the district)."""
    province, city, district, street = _java_groups(column, 4, (1, 2, 3, 4))
    named = f"({district} != '' OR ({city} LIKE '%市' AND {street} != ''))"
    return f"CASE WHEN {named} THEN concat({province}, {city}, {district}) ELSE '' END"
