"""Extraction: the inventory of sources (抽取清单), the run log, and per-pipeline state
(watermark, committed loads).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.extraction_inventory (
            pipeline text PRIMARY KEY,
            description text,
            service_item_code varchar(8) NOT NULL,
            department text,
            source_kind text NOT NULL,            -- jdbc, csv, jsonl, parquet
            database_type text,                   -- PostgreSQL, file
            database_name text,
            source_object text NOT NULL,          -- schema.table, the query, or the file path
            frequency text,                       -- the schedule
            mode text NOT NULL,
            target_dataset text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {S}.extraction_state (
            pipeline text PRIMARY KEY,
            watermark text,                       -- advanced only when a load is committed
            first_run_id text,
            loads integer NOT NULL DEFAULT 0,
            committed_at timestamptz
        );
        CREATE TABLE {S}.extraction_run (         -- the run log
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            pipeline text NOT NULL,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            status text NOT NULL,
            target_uri text,
            rejects_uri text,
            read bigint NOT NULL,
            written bigint NOT NULL,
            rejected bigint NOT NULL,
            rejected_by_reason jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            watermark_from text,
            watermark_to text,
            manifest_uri text,
            finished_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (pipeline, dag_id, run_id),
            CHECK (read = written + rejected)
        );
        """
    )


def downgrade() -> None:
    for table in ("extraction_run", "extraction_state", "extraction_inventory"):
        op.execute(f"DROP TABLE IF EXISTS {S}.{table}")
