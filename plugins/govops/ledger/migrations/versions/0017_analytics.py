"""Application services (issue 20, items 14-18): the run record of every analytics run (what
it read, at which version, with which parameters, how it was billed) and its result rows,
so a result can be reproduced and traced to the ledger.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

S = "govops"
BILLING = "('delivery', 'correction', 'automatic_refresh', 'manual_refresh')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.analytics_run (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            spec_name text NOT NULL,
            kind text NOT NULL,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            run_type text,
            work_order_id text NOT NULL,             -- the deliverable's work order (its identity with spec_name)
            billing text NOT NULL CHECK (billing IN {BILLING}),
            billed_work_order_id text,               -- delivery / manual refresh: the order billed
            difficulty numeric(6, 3),                -- of what was billed; NULL when nothing was
            delivery_run_id text,                    -- the run that delivered (and was billed)
            usage_event_ids bigint[] NOT NULL DEFAULT '{{}}',
            spec_sha256 text NOT NULL,
            spec jsonb NOT NULL,
            parameters jsonb NOT NULL,
            inputs jsonb NOT NULL,                   -- dataset, uri, rows, files, bytes, the commit marker (version)
            outputs jsonb NOT NULL,                  -- name, versioned lake uri, rows, checksum
            manifest_uri text,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id)
        );
        CREATE INDEX analytics_run_deliverable ON {S}.analytics_run (spec_name, work_order_id);
        CREATE TABLE {S}.analytics_result (
            run_pk bigint NOT NULL REFERENCES {S}.analytics_run (id) ON DELETE CASCADE,
            output text NOT NULL,
            row_no integer NOT NULL,
            row jsonb NOT NULL,
            PRIMARY KEY (run_pk, output, row_no)
        );
        COMMENT ON TABLE {S}.analytics_result IS
            'Result rows of each analytics run (items 14-18), one JSON object per row with the output''s columns.';
        CREATE VIEW {S}.analytics_result_latest AS
            SELECT r.spec_name, r.work_order_id, r.run_id, x.output, x.row_no, x.row
              FROM {S}.analytics_result x
              JOIN {S}.analytics_run r ON r.id = x.run_pk
             WHERE r.id = (SELECT max(id) FROM {S}.analytics_run l
                            WHERE l.spec_name = r.spec_name AND l.work_order_id = r.work_order_id);
        """
    )


def downgrade() -> None:
    op.execute(
        f"""DROP VIEW IF EXISTS {S}.analytics_result_latest;
            DROP TABLE IF EXISTS {S}.analytics_result;
            DROP TABLE IF EXISTS {S}.analytics_run;"""
    )
