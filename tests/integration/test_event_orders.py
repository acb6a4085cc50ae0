"""Event orders (事件单) on real PostgreSQL: one open order per key whatever the number of
retries, re-runs and callbacks; resolved by the next success; the quality gate and a failed
reconciliation classified; the states and the CLI; penalties of evaluated orders settled once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from govops.ops import event_orders as eo
from govops.ops.event_orders import Failure
from govops.settlement import store
from govops.settlement.workorders import ensure_demo_work_order

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)


def failure(task: str, run: str, at: datetime, error: str = "RuntimeError: boom", try_number: int = 1) -> Failure:
    return Failure(dag_id="pipeline_x", run_id=run, task_id=task, occurred_at=at, error=error,
                   try_number=try_number, data_interval_start=START, data_interval_end=END,
                   logical_date=START, work_order_id="WO-EV-04",
                   links={"dag_run": f"http://localhost:8080/dags/pipeline_x/runs/{run}"})  # fmt: skip


def orders(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT task_id, state, kind, occurrences, urgency FROM govops.event_order ORDER BY started_at, id"))]


def test_hundred_failures_one_order_resolved_by_the_next_success(fresh_ledger: Engine) -> None:
    e = fresh_ledger
    ensure_demo_work_order(e, "WO-EV-04", "04", on=date(2026, 11, 1))
    at = datetime(2026, 11, 2, 1, tzinfo=UTC)
    opened = []
    # 100 final failures of one task: 10 re-runs of the interval (new run ids) x 10 callbacks.
    for i in range(100):
        with e.begin() as conn:
            number, new = eo.record_failure(
                conn, failure("extract", f"manual__rerun{i // 10}", at + timedelta(minutes=i), try_number=i % 3 + 1))
        opened.append(new)
    assert opened.count(True) == 1
    assert orders(e) == [("extract", "open", "failed", 100, "urgent")]
    with e.connect() as conn:
        row = conn.execute(text("SELECT * FROM govops.event_order")).one()
    assert row.id == number and row.order_type == "事件单" and row.reporting_unit == "数据运营商"
    assert (row.work_order_id, row.service_item_code, row.service_order_id) == ("WO-EV-04", "04", "SO-WO-EV-04")
    assert row.run_id == "manual__rerun9" and row.started_at == at and row.links["dag_run"].endswith("rerun9")
    assert row.dedup_key == f"pipeline_x|extract|{START.isoformat()}/{END.isoformat()}"

    # The database holds the rule too: a second open order of the key is refused.
    with pytest.raises(IntegrityError), e.begin() as conn:
        conn.execute(text("INSERT INTO govops.event_order (id, title, occurred_on, dedup_key) "
                          "VALUES ('X', 'x', '2026-11-02', :k)"), {"k": row.dedup_key})  # fmt: skip

    # Another task of the same run: its own order. The failed run adds none (its task has one).
    with e.begin() as conn:
        eo.record_failure(conn, failure("commit", "manual__rerun9", at + timedelta(hours=2)))
        run_level = Failure(dag_id="pipeline_x", run_id="manual__rerun9", task_id="", occurred_at=at,
                            data_interval_start=START, data_interval_end=END, logical_date=START)  # fmt: skip
        assert eo.record_failure(conn, run_level, run_level=True) == (number, False)
    assert [o[:2] for o in orders(e)] == [("extract", "open"), ("commit", "open")]

    # The next success of the key resolves it by itself; the other task's order stays open.
    with e.begin() as conn:
        resolved = eo.resolve_by_success(conn, "pipeline_x", "extract", "manual__rerun10", START, END, START,
                                         at + timedelta(hours=3))  # fmt: skip
    assert resolved == [number]
    assert [o[:2] for o in orders(e)] == [("extract", "resolved"), ("commit", "open")]
    # A failure after that is a new incident: a new order.
    with e.begin() as conn:
        assert eo.record_failure(conn, failure("extract", "manual__rerun11", at + timedelta(hours=4)))[1]
    assert [o[:2] for o in orders(e)] == [("extract", "resolved"), ("commit", "open"), ("extract", "open")]


def test_quality_gate_and_reconciliation_are_classified(fresh_ledger: Engine) -> None:
    """The gate's and the manifest check's own exceptions, as the listener receives them."""
    from airflow.sdk.exceptions import AirflowFailException

    from govops.ops.listener import describe
    from govops.spark.manifest import ManifestError

    gate = AirflowFailException("public_security_persons.ingestion: quality check failed (score 99.66, failed "
                                "rules ['expect_column_values_to_be_valid_resident_id(id_number)']); see r.html")
    counts = ManifestError("file:///m.json: counts do not reconcile: read 10 != written 8 + rejected 1")
    at = datetime(2026, 11, 2, tzinfo=UTC)
    with fresh_ledger.begin() as conn:
        for task, exc in (("gate", gate), ("extract", counts)):
            eo.record_failure(conn, failure(task, "scheduled__1", at, error=describe(exc)))
        eo.record_failure(conn, failure("prepare", "scheduled__1", at, error="AirflowFailException: "
                                        "WORK_ORDER_REFUSED: work order WO-1 is accepted"))  # fmt: skip
        titles = conn.execute(text("SELECT task_id, title FROM govops.event_order ORDER BY task_id")).all()
    assert sorted((*o[:3], o[4]) for o in orders(fresh_ledger)) == [
        ("extract", "open", "reconciliation", "urgent"), ("gate", "open", "quality_gate", "normal"),
        ("prepare", "open", "refusal", "normal")]  # fmt: skip
    assert dict(titles)["gate"] == "质量检查未通过：pipeline_x.gate"


def test_states_cli_and_penalty_settled_once(fresh_ledger: Engine, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from govops.ops.__main__ import main

    e = fresh_ledger
    monkeypatch.setenv("GOVOPS_DATABASE_URL", e.url.render_as_string(hide_password=False))
    assert main(["event-orders", "raise", "--title", "共享接口中断", "--description", "接口 3 小时无响应",
                 "--reporter", "张三", "--urgency", "urgent"]) == 0  # fmt: skip
    number = capsys.readouterr().out.strip()
    assert number.startswith("EV-")
    assert main(["event-orders", "evaluate", number, "--by", "x", "--operator-opinion", "a",
                 "--purchaser-opinion", "b"]) == 2  # fmt: skip
    assert "cannot go from open to evaluated" in capsys.readouterr().err
    assert main(["event-orders", "ack", number, "--by", "李四", "--workload", "4"]) == 0
    assert main(["event-orders", "resolve", number, "--by", "李四", "--resolution", "重启接口服务"]) == 0
    with e.begin() as conn:
        store.add_period(conn, "2026-11", "monthly", date(2026, 11, 1), date(2026, 11, 30))
        store.record_assessment(conn, "2026-11", Decimal("95"), Decimal("90"))
    assert main(["event-orders", "evaluate", number, "--by", "监理", "--operator-opinion", "人为误操作",
                 "--purchaser-opinion", "同意", "--incident-type", "no_such_type", "--on", "2026-11-20"]) == 2
    assert "unknown incident type 'no_such_type'" in capsys.readouterr().err
    assert main(["event-orders", "evaluate", number, "--by", "监理", "--operator-opinion", "人为误操作",
                 "--purchaser-opinion", "同意", "--incident-type", "human_error_interruption",
                 "--on", "2026-11-20"]) == 0  # fmt: skip
    assert main(["event-orders", "list", "--state", "evaluated"]) == 0
    assert number in capsys.readouterr().out
    with e.connect() as conn:
        row = conn.execute(text("SELECT * FROM govops.event_order WHERE id = :id"), {"id": number}).one()
    assert (row.state, row.urgency, row.reporter, row.reporting_unit, row.acknowledged_by, row.estimated_workload,
            row.evaluated_on, row.incident_type) == ("evaluated", "urgent", "张三", "区大数据中心", "李四", 4,
                                                     date(2026, 11, 20), "human_error_interruption")  # fmt: skip

    # Settlement takes the evaluated order's penalty once, however often it settles.
    for _ in range(2):
        statement = store.settle(e, "2026-11")
    penalties = [x for x in statement["lines"] if x["kind"] == "penalty"]
    assert [(p["incident_type"], p["event_order_id"], p["amount"]) for p in penalties] == [
        ("human_error_interruption", number, "50000.00")]
    assert statement["totals"]["penalties"] == "50000.00"
    with pytest.raises(store.SettlementError, match="settlement takes its penalty from the evaluation"), \
            e.begin() as conn:
        store.add_penalty(conn, "2026-11", "human_error_interruption", number)
    store.close(e, "2026-11")
    assert store.verify(e, "2026-11").ok
    # An evaluation dated in the closed period could no longer be taken: refused.
    with e.begin() as conn:
        late = eo.raise_order(conn, "数据丢失", description="d", reporter="r", reporting_unit="u")
        eo.resolve(conn, late, "ops", "恢复")
    with pytest.raises(eo.EventOrderError, match="period 2026-11 containing 2026-11-25 is closed"), e.begin() as conn:
        eo.evaluate(conn, late, "监理", operator_opinion="a", purchaser_opinion="b", incident_type="data_loss",
                    on=date(2026, 11, 25))  # fmt: skip
