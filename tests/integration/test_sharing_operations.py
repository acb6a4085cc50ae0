"""Item 13, the yearly lump sum of the sharing service: metered once for a year the call
records show it ran through, refused for a year with a silent month, and settled as its own
work-order line at the catalog's 4,000,000.00."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, text

from govops.settlement import store, workorders
from govops.settlement.catalog import load_catalog
from govops.sharing.operations import OperationsNotDelivered, meter_year

pytestmark = pytest.mark.integration
AFTER = datetime(2026, 1, 5, tzinfo=UTC)


def calls(engine: Engine, year: int, months: list[int], status: int = 200) -> None:
    with engine.begin() as conn:
        conn.execute(text("""INSERT INTO govops.api_call (request_id, set_name, interface, caller_id, called_at, status)
                             VALUES (:r, 'legal_persons', 'query_json', 'hr', :t, :s)"""),
                     [{"r": str(uuid.uuid4()), "t": datetime(year, m, 15, 4, tzinfo=UTC), "s": status}
                      for m in months])  # fmt: skip


def test_a_year_run_through_is_metered_once_and_settled_as_its_own_line(fresh_ledger: Engine) -> None:
    e = fresh_ledger
    with e.begin() as conn:
        workorders.create_service_order(conn, workorders.ServiceOrder(id="SO-OPS", name="2025年共享开放运营服务"))
        for wo in ("WO-OPS-2025", "WO-OPS-OTHER"):
            workorders.create_work_order(conn, workorders.WorkOrder(
                id=wo, service_order_id="SO-OPS", service_item_code="13", order_date=date(2025, 1, 1)),
                load_catalog())  # fmt: skip
            workorders.set_work_order_state(conn, wo, "approved")
    calls(e, 2025, list(range(1, 12)))  # December silent
    calls(e, 2025, [12], status=429)  # refused calls are no service
    with pytest.raises(OperationsNotDelivered, match="2025: no answered call in 2025-12"):
        meter_year(e, "WO-OPS-2025", 2025, run_id="r1", now=AFTER)
    with pytest.raises(OperationsNotDelivered, match="is not over"):
        meter_year(e, "WO-OPS-2025", 2025, run_id="r1", now=datetime(2025, 12, 31, 12, tzinfo=UTC))
    calls(e, 2025, [12])
    first = meter_year(e, "WO-OPS-2025", 2025, run_id="r2", now=AFTER)
    assert first["billing"] == "delivery" and first["evidence"]["months"]["2025-12"]["calls"] == 1
    assert meter_year(e, "WO-OPS-2025", 2025, run_id="r3", now=AFTER)["billing"] == "already metered"
    with pytest.raises(OperationsNotDelivered, match="metered already, against work order WO-OPS-2025"):
        meter_year(e, "WO-OPS-OTHER", 2025, run_id="r4", now=AFTER)
    with e.connect() as conn:
        metered = conn.execute(text("""SELECT service_item_code, unit, quantity, work_order_id, run_id
                                       FROM govops.usage_event""")).all()  # fmt: skip
    assert [tuple(r) for r in metered] == [("13", "year", 1, "WO-OPS-2025", "deliverable:2025")]

    with e.begin() as conn:
        workorders.set_work_order_state(conn, "WO-OPS-OTHER", "rejected")
        for state in ("in_progress", "delivered"):
            workorders.set_work_order_state(conn, "WO-OPS-2025", state)
        for state in ("approved", "in_progress", "delivered"):
            workorders.set_service_order_state(conn, "SO-OPS", state)
        workorders.accept_service_order(conn, "SO-OPS", quality_score=D("95"), accepted_on=date(2026, 1, 10),
                                        operator_opinion="全年运行", purchaser_opinion="同意验收")  # fmt: skip
        store.add_period(conn, "2026-P1", "bimonthly", date(2026, 1, 1), date(2026, 2, 28))
        store.record_assessment(conn, "2026-P1", D("95"), D("95"))
    statement = store.settle(e, "2026-P1")
    [line] = [x for x in statement["lines"] if x["kind"] == "service_order"]
    [wo] = [w for w in line["work_orders"] if w["work_order_id"] == "WO-OPS-2025"]
    assert (wo["service_item_code"], wo["billing_unit"], wo["billing_quantity"], wo["amount"]) == (
        "13", "年", "1", "4000000.00")  # fmt: skip
