"""Notifications of event orders (事件单) through Airflow notifiers: one message per order,
state change and channel, never one per retry or per repeated pass.

A state change is read from the order itself: every order was ``opened``; it was
``acknowledged``, ``resolved`` or ``evaluated`` when that time is set. ``send_pending``
sends each change no row of ``govops.event_order_notification`` records yet. It inserts
that row (unique per order, change and channel) and sends in the same transaction: a
second pass, a retried task or a concurrent pass finds the row and sends nothing. A send
that fails rolls the row back, so the next pass tries again.

Channels: SMTP (``SmtpNotifier`` of apache-airflow-providers-smtp) through the Airflow
connection ``govops_smtp`` (host, port, login, password; extra ``from_email``, ``to``: the
recipients, a list or a comma-separated string, and the provider's ``disable_ssl`` /
``disable_tls``); DingTalk (``DingdingNotifier``) through the connection
``govops_dingtalk`` only where apache-airflow-providers-dingding is installed.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

SMTP_CONN_ID = "govops_smtp"
DINGTALK_CONN_ID = "govops_dingtalk"
EVENTS = {"opened": "已开启", "acknowledged": "已受理", "resolved": "已解决", "evaluated": "已评估"}
KIND_NAMES = {
    "failed": "作业失败", "quality_gate": "质量检查未通过", "reconciliation": "对账不平", "refusal": "作业被拒绝",
    "stuck": "作业卡住", "slow": "作业变慢", "late": "作业超时", "import_error": "DAG 导入错误", "manual": "人工申报",
}  # fmt: skip
URGENCY_NAMES = {"low": "低", "normal": "一般", "urgent": "紧急"}


@dataclass(frozen=True)
class Message:
    subject: str
    html: str  # the mail
    markdown: str  # DingTalk


@dataclass(frozen=True)
class Channel:
    name: str
    recipients: str
    send: Callable[[Message], None]


def compose(order: Any, event: str) -> Message:
    """The message of one state change of an order."""
    subject = f"【事件单{EVENTS[event]}】{order.id} {order.title}"
    fields = [
        ("编号", order.id), ("名称", order.title), ("类型", order.order_type), ("状态", EVENTS[event]),
        ("类别", KIND_NAMES.get(order.kind, order.kind)), ("紧急程度", URGENCY_NAMES.get(order.urgency, order.urgency)),
        ("服务项", order.service_item_code), ("服务单", order.service_order_id), ("工单", order.work_order_id),
        ("开始时间", order.started_at), ("结束时间", order.ended_at), ("申报单位", order.reporting_unit),
        ("申报人", order.reporter), ("DAG", order.dag_id), ("任务", order.task_id), ("运行", order.run_id),
        ("发生次数", order.occurrences), ("受理人", order.acknowledged_by), ("处理人", order.resolved_by),
        ("处理结果", order.resolution), ("事后评估", order.evaluation),
        ("事件描述", order.last_error or order.description),
    ]  # fmt: skip
    shown = [(k, str(v)) for k, v in fields if v not in (None, "")]
    links = sorted(order.links.items())
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in shown)
    items = "".join(f'<li><a href="{html.escape(url)}">{html.escape(name)}</a></li>' for name, url in links)
    body = f"<p>事件单 {html.escape(order.id)} {EVENTS[event]}。</p><table>{rows}</table>"
    markdown = "\n".join([f"### {subject}", *(f"- {k}：{v}" for k, v in shown),
                          *(f"- [{name}]({url})" for name, url in links)])  # fmt: skip
    return Message(subject, body + (f"<ul>{items}</ul>" if items else ""), markdown)


def pending(conn: Connection, channel: str) -> list[tuple[Any, str]]:
    """(order, event) of every state change not yet sent on ``channel``, oldest first."""
    rows = conn.execute(
        text(
            """SELECT e.*, ev.event FROM govops.event_order e
               CROSS JOIN LATERAL (VALUES ('opened', COALESCE(e.started_at, e.created_at), 1),
                   ('acknowledged', e.acknowledged_at, 2), ('resolved', e.resolved_at, 3),
                   ('evaluated', CAST(e.evaluated_on AS timestamptz), 4)) AS ev(event, at, step)
               WHERE ev.at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM govops.event_order_notification n
                   WHERE n.event_order_id = e.id AND n.event = ev.event AND n.channel = :channel)
               ORDER BY e.id, ev.step"""
        ),
        {"channel": channel},
    ).all()
    return [(r, r.event) for r in rows]


def send_pending(engine: Engine, channels: list[Channel]) -> list[str]:
    """Send every pending state change once per channel; one line per message sent."""
    sent = []
    for channel in channels:
        with engine.connect() as conn:
            todo = pending(conn, channel.name)
        for order, event in todo:
            message = compose(order, event)
            with engine.begin() as conn:
                claimed = conn.execute(
                    text(
                        """INSERT INTO govops.event_order_notification
                               (event_order_id, event, channel, recipients, subject)
                           VALUES (:id, :event, :channel, :to, :subject) ON CONFLICT DO NOTHING RETURNING id"""
                    ),
                    {"id": order.id, "event": event, "channel": channel.name, "to": channel.recipients,
                     "subject": message.subject},
                ).scalar()  # fmt: skip
                if claimed is None:  # another pass sent it meanwhile
                    continue
                channel.send(message)
            sent.append(f"{channel.name}: {message.subject}")
    return sent


def _recipients(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value or [] if v.strip()]


def smtp_channel(conn_id: str = SMTP_CONN_ID) -> Channel | None:
    """SMTP through the connection, or None when it is not defined."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException: not configured
        return None
    to = _recipients(conn.extra_dejson.get("to"))
    if not to:
        return None

    def send(message: Message) -> None:
        # notify() directly: the texts are sent as they are, never rendered as Jinja templates.
        notifier = SmtpNotifier(to=to, subject=message.subject, html_content=message.html, smtp_conn_id=conn_id)
        notifier.notify({})  # type: ignore[arg-type]

    return Channel("smtp", ",".join(to), send)


def dingtalk_channel(conn_id: str = DINGTALK_CONN_ID) -> Channel | None:
    """DingTalk through the connection, where apache-airflow-providers-dingding is installed."""
    try:
        from airflow.providers.dingding.notifications.dingding import (  # type: ignore[import-not-found]
            DingdingNotifier,
        )
    except ImportError:
        return None
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:
        return None

    def send(message: Message) -> None:
        DingdingNotifier(dingding_conn_id=conn_id, message_type="markdown",
                         message={"title": message.subject, "text": message.markdown}).notify({})  # fmt: skip

    return Channel("dingtalk", conn_id, send)


def channels() -> list[Channel]:
    """The channels configured here (none is not an error: nothing is recorded as sent)."""
    return [c for c in (smtp_channel(), dingtalk_channel()) if c is not None]
