"""Every settlement rule R1-R8 at its boundaries, with exact Decimal figures."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from govops.settlement.catalog import Band, Meter, load_contract
from govops.settlement.rules import (
    billing_quantity,
    deduction_rate,
    overall_score,
    period_totals,
    prepayment,
    quality_coefficient,
    round2,
    service_order_fee,
    tiered,
    work_order_amount,
)

BANDS = (Band(D(0), D(100), D("10.00")), Band(D(100), D(300), D("8.00")), Band(D(300), None, D("5.00")))
RECORDS = Meter("record", "万条", 10_000, BANDS)
CONTRACT = load_contract()


def test_r1_billing_quantity_is_exact_unless_configured_to_round_up() -> None:
    assert billing_quantity(12_345, RECORDS) == D("1.2345")
    assert billing_quantity(0, RECORDS) == 0
    assert billing_quantity(12_345, replace(RECORDS, rounding="ceil")) == D(2)
    with pytest.raises(ValueError, match="must not be negative"):
        billing_quantity(-1, RECORDS)


@pytest.mark.parametrize(
    ("quantity", "graduated", "volume"),
    [
        ("350", "2850.00", "1750.00"),  # the example: 100x10 + 200x8 + 50x5
        ("100", "1000.00", "1000.00"),  # exactly at a band edge: still the first band
        ("100.0001", "1000.0008", "800.0008"),  # one record (0.0001 万条) past it
        ("300", "2600.00", "2400.00"),
        ("0", "0", "0"),
    ],
)
def test_r2_tiers(quantity: str, graduated: str, volume: str) -> None:
    assert tiered(D(quantity), BANDS) == D(graduated)
    assert tiered(D(quantity), BANDS, "volume") == D(volume)


def test_r3_cap_applies_before_the_coefficient_and_amounts_round_half_up() -> None:
    assert work_order_amount(3_500_000, RECORDS, D("1"), None) == D("2850.00")
    assert work_order_amount(3_500_000, RECORDS, D("0.5"), None) == D("1425.00")
    assert work_order_amount(3_500_000, RECORDS, D("1"), D("2000.00")) == D("2000.00")
    # The rounding trap: 1 record at 1,250.00 per 万条 is 0.125 -> 0.13 (half-even would give 0.12).
    trap = Meter("record", "万条", 10_000, (Band(D(0), None, D("1250.00")),))
    assert work_order_amount(1, trap, D(1), None) == D("0.13")
    assert round2(D("2.675")) == D("2.68") and round2(D("-2.675")) == D("-2.68")


@pytest.mark.parametrize(
    ("score", "rework", "coefficient"),
    [
        ("100", None, "1.00"), ("90", None, "1.00"), ("89.99", None, "0.95"), ("80", None, "0.95"),
        ("79.99", None, "0.90"), ("70", None, "0.90"), ("60", None, "0.85"), ("59.99", None, None),
        ("45", "60", "0.80"), ("45", "59.99", "0.00"), (None, None, None),
    ],
)  # fmt: skip
def test_r4_quality_coefficient(score, rework, coefficient) -> None:
    result = quality_coefficient(D(score) if score else None, D(rework) if rework else None, CONTRACT)
    assert result == (D(coefficient) if coefficient else None)


def test_r5_service_order_fee_rounds_once_after_the_coefficient() -> None:
    assert service_order_fee([D("1000.01"), D("333.33")], D("0.95")) == D("1266.67")  # 1266.6656
    assert service_order_fee([], D("1.00")) == D("0.00")


def test_r6_assessment() -> None:
    assert overall_score(D(90), D(90), CONTRACT) == D("90.00")
    assert deduction_rate(D("90"), CONTRACT) == D("0.00")
    assert deduction_rate(D("89.99"), CONTRACT) == D("0.05")
    assert deduction_rate(D("80"), CONTRACT) == D("0.05")
    assert deduction_rate(D("79.99"), CONTRACT) == D("0.10")
    assert deduction_rate(D("60"), CONTRACT) == D("0.10")
    assert deduction_rate(D("59.99"), CONTRACT) == D("0.15")


def test_r6_r8_period_totals() -> None:
    t = period_totals(D("100000.00"), overall=D("85"), penalties=D("0"), shortfall_in=D("0"),
                      prepayment_remaining=D("50000.00"), contract=CONTRACT)
    assert (t.retained, t.deduction, t.net) == (D("90000.00"), D("5000.00"), D("85000.00"))
    assert (t.prepayment_offset, t.payable, t.prepayment_remaining) == (D("50000.00"), D("35000.00"), D("0.00"))


def test_r7_penalties_larger_than_the_period_carry_a_shortfall() -> None:
    t = period_totals(D("100000.00"), overall=D("95"), penalties=D("200000.00"), shortfall_in=D("0"),
                      prepayment_remaining=D("10.00"), contract=CONTRACT)
    assert t.net == D("-110000.00") and t.payable == D("0.00") and t.shortfall_out == D("110000.00")
    assert t.prepayment_offset == D("0.00") and t.prepayment_remaining == D("10.00")
    nxt = period_totals(D("200000.00"), overall=D("95"), penalties=D("0"), shortfall_in=t.shortfall_out,
                        prepayment_remaining=t.prepayment_remaining, contract=CONTRACT)
    assert nxt.net == D("70000.00") and nxt.payable == D("69990.00") and nxt.prepayment_remaining == D("0.00")


def test_r8_prepayment() -> None:
    assert prepayment(CONTRACT) == D("4200000.00")
    assert prepayment(replace(CONTRACT, total=D("1000000.05"))) == D("350000.02")  # 350000.0175
