"""Job health on real PostgreSQL and a real SMTP server: a monitoring pass opens one event
order per problem, a repeated pass updates it, and the orders resolve by themselves when
the problems are gone; a missed Deadline Alert opens one ``late`` order, the same one the
pass finds; each state change of an order is mailed once (aiosmtpd on 127.0.0.1), never
again on a repeated pass, and a failed send is sent by the next pass."""

from __future__ import annotations

import asyncio
import email
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text

from govops.ops import event_orders as eo
from govops.ops import notify
from govops.ops.deadlines import deadline_missed
from govops.ops.health import Snapshot, run_pass
from govops.settlement.workorders import ensure_demo_work_order
from tests.servers import free_port
from tests.unit.test_ops_health import DEADLINES, NOW, dag, iso, run, ti

pytestmark = pytest.mark.integration
STREAM_LATE = "stream||2026-11-09T01:00:00+00:00/2026-11-10T01:00:00+00:00|late"


def problem_snapshot(at: datetime = NOW) -> Snapshot:
    """A slow DAG, a stuck task, a late stream run and an import error."""
    runs = [*(run("p", d, minutes=10) for d in range(1, 8)), run("p", 8, minutes=40),
            run("p", 10, state="running", queued=NOW - timedelta(hours=1)),  # within its 4 h
            run("stream", 10, state="running", queued=NOW - timedelta(minutes=45))]  # fmt: skip
    tis = [*(ti("p", "extract", d, minutes=5) for d in range(1, 8)),
           ti("p", "extract", 10, state="running", start_date=iso(NOW - timedelta(minutes=50)))]  # fmt: skip
    errors = [{"filename": "/dags/broken.py", "bundle_name": "dags-folder", "timestamp": iso(NOW),
               "stack_trace": "SyntaxError: invalid syntax"}]  # fmt: skip
    return Snapshot(at, [dag("p"), dag("stream", "02")], runs, tis, errors, base_url="http://airflow:8080")


def orders(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT kind, state, occurrences, title FROM govops.event_order ORDER BY kind"))]  # fmt: skip


def test_a_pass_opens_updates_and_resolves_one_order_per_problem(fresh_ledger: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    e = fresh_ledger
    monkeypatch.setenv("GOVOPS_DATABASE_URL", e.url.render_as_string(hide_password=False))
    # The Deadline Alert fires first (twice: a repeated callback), with the context the scheduler gives it.
    late_run = run("stream", 10, state="running", queued=NOW - timedelta(minutes=45))
    context = {"dag_run": late_run, "deadline": {"id": "x", "deadline_time": iso(NOW - timedelta(minutes=15))}}
    first = asyncio.run(deadline_missed(context=context, minutes=30))
    assert asyncio.run(deadline_missed(context=context, minutes=30)) == first
    manual = {**late_run, "run_type": "manual", "dag_run_id": "manual__1"}
    assert asyncio.run(deadline_missed(context={**context, "dag_run": manual}, minutes=30)) is None

    with e.begin() as conn:
        one = run_pass(conn, problem_snapshot(), DEADLINES)
    assert one.detected == {"slow": 1, "stuck": 1, "late": 1, "import_error": 1}
    assert len(one.opened) == 3 and one.updated == [first]  # the alert's late order is the pass's
    assert orders(e) == [
        ("import_error", "open", 1, "DAG 导入错误：/dags/broken.py"), ("late", "open", 1, "作业超时未按时完成：stream"),
        ("slow", "open", 1, "作业变慢：p"), ("stuck", "open", 1, "作业卡住：p.extract")]  # fmt: skip
    with e.connect() as conn:
        row = conn.execute(text("SELECT * FROM govops.event_order WHERE kind = 'stuck'")).one()
    assert row.links == {"dag_run": "http://airflow:8080/dags/p/runs/scheduled__10",
                         "task": "http://airflow:8080/dags/p/runs/scheduled__10/tasks/extract"}  # fmt: skip
    assert (row.service_item_code, row.urgency, row.order_type) == ("04", "urgent", "事件单")

    for minutes in (10, 20):  # repeated passes: the same four orders, nothing new
        with e.begin() as conn:
            again = run_pass(conn, problem_snapshot(NOW + timedelta(minutes=minutes)), DEADLINES)
        assert (again.opened, len(again.updated), again.resolved) == ([], 4, [])
    assert [o[:3] for o in orders(e)] == [("import_error", "open", 1), ("late", "open", 1), ("slow", "open", 1),
                                          ("stuck", "open", 1)]  # fmt: skip

    # The problems are gone: the task and the stream run finished, a fast success, the file fixed.
    later = NOW + timedelta(hours=1)
    runs = [*(run("p", d, minutes=10) for d in range(1, 9)), run("p", 10, minutes=12),
            run("stream", 10, state="success")]  # fmt: skip
    with e.begin() as conn:
        done = run_pass(conn, Snapshot(later, [dag("p"), dag("stream", "02")], runs, []), DEADLINES)
    assert (done.opened, len(done.resolved)) == ([], 4)
    assert [o[:2] for o in orders(e)] == [("import_error", "resolved"), ("late", "resolved"), ("slow", "resolved"),
                                          ("stuck", "resolved")]  # fmt: skip
    with e.connect() as conn:
        why = dict(conn.execute(text("SELECT kind, resolution FROM govops.event_order")).all())
    assert why == {"import_error": "resolved by itself: the import error cleared",
                   "late": "resolved by itself: the late run finished",
                   "slow": "resolved by itself: the DAG's latest successful run is within its baseline",
                   "stuck": "resolved by itself: no longer queued or running"}  # fmt: skip


class Inbox:
    def __init__(self) -> None:
        self.mails: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(email.message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOVOPS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": "govops@ops.example", "to": "ops@ops.example, center@ops.example",
                  "disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 1}}))  # fmt: skip


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    use_smtp(monkeypatch, port)
    yield box, port
    server.stop()


def test_each_state_change_is_mailed_once(fresh_ledger: Engine, inbox: tuple[Inbox, int],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    e = fresh_ledger
    box, port = inbox
    ensure_demo_work_order(e, "WO-NT-04", "04", on=date(2026, 11, 1))
    at = datetime(2026, 11, 2, 1, tzinfo=UTC)
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    for i in range(5):  # a failure, repeated by re-runs and callbacks: one order
        with e.begin() as conn:
            number, _ = eo.record_failure(conn, eo.Failure(
                dag_id="pipeline_x", run_id=f"scheduled__{i}", task_id="extract", occurred_at=at, try_number=i,
                error="RuntimeError: 前置库连接中断", data_interval_start=start, data_interval_end=end,
                work_order_id="WO-NT-04", links={"dag_run": "http://airflow:8080/dags/pipeline_x/runs/r"}))  # fmt: skip
    channels = notify.channels()
    assert [(c.name, c.recipients) for c in channels] == [("smtp", "ops@ops.example,center@ops.example")]

    subject = f"{number} 作业失败：pipeline_x.extract"
    assert notify.send_pending(e, channels) == [f"smtp: 【事件单已开启】{subject}"]
    assert notify.send_pending(e, channels) == []  # a repeated pass sends nothing
    mail = box.mails[0]
    assert (mail["Subject"], mail["From"], mail["To"]) == (
        f"【事件单已开启】{subject}", "govops@ops.example", "ops@ops.example, center@ops.example")
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for cell in (f"<th>编号</th><td>{number}</td>", "<th>类型</th><td>事件单</td>", "<th>类别</th><td>作业失败</td>",
                 "<th>紧急程度</th><td>紧急</td>", "<th>服务项</th><td>04</td>", "<th>工单</th><td>WO-NT-04</td>",
                 "<th>申报单位</th><td>数据运营商</td>", "<th>发生次数</th><td>5</td>",
                 "<th>事件描述</th><td>RuntimeError: 前置库连接中断</td>",
                 '<a href="http://airflow:8080/dags/pipeline_x/runs/r">dag_run</a>'):  # fmt: skip
        assert cell in body, cell

    with e.begin() as conn:
        eo.acknowledge(conn, number, "李四", estimated_workload=2)
        eo.resolve(conn, number, "李四", "重启前置库连接")
    # A send that fails (no server on that port) records nothing; the next pass sends it.
    use_smtp(monkeypatch, free_port())
    with pytest.raises(OSError):
        notify.send_pending(e, notify.channels())
    with e.connect() as conn:
        assert conn.execute(text("SELECT event FROM govops.event_order_notification")).scalars().all() == ["opened"]
    use_smtp(monkeypatch, port)
    with e.begin() as conn:
        eo.evaluate(conn, number, "监理", operator_opinion="网络抖动，已恢复", purchaser_opinion="同意")
    assert notify.send_pending(e, notify.channels()) == [
        f"smtp: 【事件单已受理】{subject}", f"smtp: 【事件单已解决】{subject}", f"smtp: 【事件单已评估】{subject}"]
    for _ in range(3):
        assert notify.send_pending(e, notify.channels()) == []
    changes = ("已开启", "已受理", "已解决", "已评估")
    assert [m["Subject"] for m in box.mails] == [f"【事件单{s}】{subject}" for s in changes]
    last = box.mails[-1].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<th>处理结果</th><td>重启前置库连接</td>" in last
    assert "<th>事后评估</th><td>网络抖动，已恢复 / 同意</td>" in last
    with e.connect() as conn:
        sent = conn.execute(text("SELECT event, channel, recipients FROM govops.event_order_notification "
                                 "ORDER BY id")).all()  # fmt: skip
    assert sent == [(ev, "smtp", "ops@ops.example,center@ops.example")
                    for ev in ("opened", "acknowledged", "resolved", "evaluated")]  # fmt: skip


def test_cli_check_refuses_without_the_api_connection(ledger_url: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from govops.ops.__main__ import main

    monkeypatch.setenv("GOVOPS_DATABASE_URL", ledger_url)
    monkeypatch.delenv("AIRFLOW_CONN_GOVOPS_AIRFLOW_API", raising=False)
    assert main(["health", "check"]) == 2
    assert capsys.readouterr().err.startswith("HEALTH_SOURCE_MISSING: the monitoring pass reads Airflow's REST API v2")
