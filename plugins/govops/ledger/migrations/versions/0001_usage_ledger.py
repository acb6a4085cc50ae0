"""Usage ledger: usage_event with its never-expiring idempotency key, task_failure, and the
read-only settlement view usage_summary_v1.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "govops"


def upgrade() -> None:
    op.create_table(
        "usage_event",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("service_item_code", sa.String(8), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("records", sa.BigInteger),
        sa.Column("work_order_id", sa.String(64)),
        sa.Column("data_source", sa.Text, nullable=False, server_default=""),
        sa.Column("department", sa.Text),
        sa.Column("period", sa.Date, nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("try_number", sa.Integer),
        sa.Column("manifest_uri", sa.Text),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "attributes", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.CheckConstraint("quantity >= 0", name="ck_usage_event_quantity_nonnegative"),
        sa.CheckConstraint(
            "records IS NULL OR records >= 0", name="ck_usage_event_records_nonnegative"
        ),
        sa.CheckConstraint("extract(day from period) = 1", name="ck_usage_event_period_month"),
        schema=SCHEMA,
    )
    op.execute(
        f"""
        CREATE UNIQUE INDEX uq_usage_event_idempotency ON {SCHEMA}.usage_event
            (dag_id, run_id, task_id, map_index, coalesce(work_order_id, ''),
             service_item_code, data_source)
        """
    )
    op.create_index(
        "ix_usage_event_work_order_period",
        "usage_event",
        ["work_order_id", "period"],
        schema=SCHEMA,
    )
    # The ledger is append-only: a metered event is never updated or deleted, so its
    # idempotency key never expires. Corrections are new events in a later period.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.usage_event_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'govops.usage_event is append-only (% refused)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER usage_event_append_only
            BEFORE UPDATE OR DELETE ON {SCHEMA}.usage_event
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.usage_event_append_only();
        """
    )
    op.create_table(
        "task_failure",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("try_number", sa.Integer),
        sa.Column("work_order_id", sa.String(64)),
        sa.Column("final", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("error", sa.Text),
        sa.Column("log_url", sa.Text),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.execute(
        f"""
        CREATE VIEW {SCHEMA}.usage_summary_v1 AS
        SELECT work_order_id,
               service_item_code,
               unit,
               period,
               sum(quantity)::bigint                 AS quantity,
               sum(records)::bigint                  AS records,
               count(*)::bigint                      AS event_count,
               count(DISTINCT (dag_id, run_id))::bigint AS run_count,
               min(event_time)                       AS first_event_time,
               max(event_time)                       AS last_event_time,
               array_agg(id ORDER BY id)             AS usage_event_ids
          FROM {SCHEMA}.usage_event
         GROUP BY work_order_id, service_item_code, unit, period;
        COMMENT ON VIEW {SCHEMA}.usage_summary_v1 IS
            'Settlement contract v1: metered usage per work order (NULL = unassigned queue), '
            'service item, unit and month. quantity is a raw integer in the base unit '
            '(records, tables, points...); divide by the unit size to bill. '
            'usage_event_ids trace every quantity to govops.usage_event rows and their runs.';
        """
    )
    # A read-only role for the settlement system and the supervisor (监理). Creating roles
    # needs CREATEROLE; a managed database may refuse, which must not block the migration.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                CREATE ROLE govops_settlement_reader NOLOGIN;
            END IF;
            GRANT USAGE ON SCHEMA {SCHEMA} TO govops_settlement_reader;
            GRANT SELECT ON {SCHEMA}.usage_summary_v1, {SCHEMA}.usage_event
                TO govops_settlement_reader;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'govops_settlement_reader not created: no CREATEROLE privilege';
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {SCHEMA}.usage_summary_v1")
    op.drop_table("task_failure", schema=SCHEMA)
    op.drop_table("usage_event", schema=SCHEMA)
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.usage_event_append_only()")
