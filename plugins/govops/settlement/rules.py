"""The settlement rules R1-R8 as pure Decimal functions.

Rounding: ROUND_HALF_UP to 0.01 (``round2``), applied exactly where a rule names an amount:
the work-order amount (R3), the service-order fee (R5), retained, deduction (R6) and the
prepayment (R8). Everything in between is exact Decimal arithmetic; Python's default
half-even rounding is never used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from govops.settlement.catalog import Band, Contract, Meter

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def round2(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def billing_quantity(raw: int, meter: Meter) -> Decimal:
    """R1: raw base units / unit size, exactly (or rounded up when the meter says so)."""
    if raw < 0:
        raise ValueError(f"quantity must not be negative, got {raw}")
    quantity = Decimal(raw) / Decimal(meter.unit_size)  # exact: unit sizes are powers of ten
    return quantity.to_integral_value(rounding=ROUND_CEILING) if meter.rounding == "ceil" else quantity


def tiered(quantity: Decimal, bands: Iterable[Band], mode: str = "graduated") -> Decimal:
    """R2: graduated (超额累进: each slice at its band's price) or volume (all at one band).

    Bands are (lower, upper]: a quantity exactly at an upper bound belongs to that band.
    """
    bands = tuple(bands)
    if quantity <= 0:
        return Decimal(0)
    if mode == "volume":
        for band in bands:
            if band.upper is None or quantity <= band.upper:
                return quantity * band.price
        raise ValueError("bands do not cover the quantity")
    total = Decimal(0)
    for band in bands:
        if quantity <= band.lower:
            break
        top = quantity if band.upper is None else min(quantity, band.upper)
        total += (top - band.lower) * band.price
    return total


def work_order_amount(raw: int, meter: Meter, difficulty: Decimal, cap: Decimal | None) -> Decimal:
    """R3: round2(min(tiered(qty) x difficulty, cap)); the cap applies before the coefficient."""
    amount = tiered(billing_quantity(raw, meter), meter.bands, meter.tier_mode) * difficulty
    if cap is not None:
        amount = min(amount, cap)
    return round2(amount)


def quality_coefficient(score: Decimal | None, rework_score: Decimal | None, contract: Contract) -> Decimal | None:
    """R4: the coefficient of a service order; None while rework is pending (or unscored)."""
    if score is None:
        return None
    for band in contract.coefficients:  # descending lower bounds, inclusive
        if score >= band.min_score:
            return band.value
    if rework_score is None:
        return None
    if rework_score >= contract.rework_pass_score:
        return contract.rework_pass_coefficient
    return contract.rework_fail_coefficient


def service_order_fee(amounts: Iterable[Decimal], coefficient: Decimal) -> Decimal:
    """R5: round2(sum of the work-order amounts x coefficient)."""
    return round2(sum(amounts, Decimal(0)) * coefficient)


def overall_score(service_quality: Decimal, satisfaction: Decimal, contract: Contract) -> Decimal:
    return service_quality * contract.quality_weight + satisfaction * contract.satisfaction_weight


def deduction_rate(overall: Decimal, contract: Contract) -> Decimal:
    for band in contract.deductions:
        if overall >= band.min_score:
            return band.value
    return contract.deductions[-1].value


def prepayment(contract: Contract) -> Decimal:
    """R8: round2(contract total x prepayment rate)."""
    return round2(contract.total * contract.prepayment_rate)


@dataclass(frozen=True)
class PeriodTotals:
    gross: Decimal  # G
    retained: Decimal
    deduction_rate: Decimal
    deduction: Decimal
    penalties: Decimal
    shortfall_in: Decimal  # carried from the previous period (R7)
    net: Decimal  # may be negative
    shortfall_out: Decimal  # carried to the next period
    prepayment_before: Decimal
    prepayment_offset: Decimal
    prepayment_remaining: Decimal
    payable: Decimal


def period_totals(
    gross: Decimal,
    *,
    overall: Decimal,
    penalties: Decimal,
    shortfall_in: Decimal,
    prepayment_remaining: Decimal,
    contract: Contract,
) -> PeriodTotals:
    """R6-R8: retained, deduction, penalties, carried shortfall, prepayment offset, payable."""
    rate = deduction_rate(overall, contract)
    retained = round2(gross * contract.retention_rate)
    deduction = round2(gross * rate)
    net = retained - deduction - penalties - shortfall_in
    positive = max(net, ZERO)
    offset = min(prepayment_remaining, positive)
    return PeriodTotals(
        gross=gross,
        retained=retained,
        deduction_rate=rate,
        deduction=deduction,
        penalties=penalties,
        shortfall_in=shortfall_in,
        net=net,
        shortfall_out=max(-net, ZERO),
        prepayment_before=prepayment_remaining,
        prepayment_offset=offset,
        prepayment_remaining=prepayment_remaining - offset,
        payable=positive - offset,
    )
