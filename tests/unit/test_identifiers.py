import pytest

from govops.identifiers import (
    is_valid_mobile,
    is_valid_resident_id,
    is_valid_uscc,
    resident_id_check_char,
    resident_id_problem,
    uscc_check_char,
    uscc_problem,
)


def test_published_resident_id_example() -> None:
    # The worked example of GB 11643-1999 annex: 11010519491231002X.
    assert resident_id_check_char("11010519491231002") == "X"
    assert is_valid_resident_id("11010519491231002X")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("1101051949123100", "length"),
        ("11010519491231002Y", "format"),
        ("99010519491231002X", "region_code"),
        ("110105194913310027", "birth_date"),
        ("110105194902300029", "birth_date"),
        ("110105194912310021", "check_digit"),
    ],
)
def test_resident_id_problems_have_reasons(value, reason: str) -> None:
    assert resident_id_problem(value) == reason
    assert not is_valid_resident_id(value)


def test_published_uscc_example() -> None:
    # A code printed on real business licences: 91350100M000100Y43.
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert is_valid_uscc("91350100M000100Y43")
    assert uscc_problem("91350100M000100Y44") == "check_char"
    assert uscc_problem("91350100M000100Y4I") == "format"  # I is not in the alphabet
    assert uscc_problem("9135") == "length"


def test_mobile_numbers() -> None:
    assert is_valid_mobile("13912345678")
    assert not is_valid_mobile("1391234567")
    assert not is_valid_mobile("12912345678")
    assert not is_valid_mobile(None)
