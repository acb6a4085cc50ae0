"""SQLAlchemy models of the usage ledger (schema ``govops``).

The migrations in ``migrations/versions`` are the schema's source of truth (constraints, the
idempotency index, the append-only trigger, the settlement view); these models map the
tables for queries.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, MetaData, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "govops"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class UsageEvent(Base):
    __tablename__ = "usage_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    service_item_code: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(32))
    records: Mapped[int | None] = mapped_column(BigInteger)
    work_order_id: Mapped[str | None] = mapped_column(String(64))
    data_source: Mapped[str] = mapped_column(Text, server_default="")
    department: Mapped[str | None] = mapped_column(Text)
    period: Mapped[date] = mapped_column(Date)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, server_default="-1")
    try_number: Mapped[int | None] = mapped_column(Integer)
    manifest_uri: Mapped[str | None] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))



class TaskFailure(Base):
    """Every failed task attempt, recorded by the DAGs' on-failure callback.

    The event-order issue turns these into event orders (事件单); keeping them here
    means no failure goes unrecorded before that exists.
    """

    __tablename__ = "task_failure"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, server_default="-1")
    try_number: Mapped[int | None] = mapped_column(Integer)
    work_order_id: Mapped[str | None] = mapped_column(String(64))
    final: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    error: Mapped[str | None] = mapped_column(Text)
    log_url: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
