"""Operations (issue 17): the job registry of the scheduling service (item 05) with its
change record, and event orders (事件单) that open themselves from failures, with seed 004's
order fields, a dedup key (one open order per key) and the states open -> acknowledged ->
resolved -> evaluated.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

S = "govops"
CHANGES = "('new', 'schedule_changed', 'paused', 'unpaused', 'removed', 're_added', 'attributes_changed')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.scheduled_job (                 -- 作业调度: one row per DAG that ever had a schedule
            dag_id text PRIMARY KEY,
            owner text,
            department text,
            service_item_code varchar(8),
            work_order_id text,                          -- the work order the job names
            schedule text,                               -- NULL: it has no schedule (any more)
            description text,
            fileloc text,
            paused boolean,
            billable boolean NOT NULL DEFAULT true,      -- false: the platform's own (tag ops), never metered
            first_seen_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL,
            removed_at timestamptz,                      -- set while the DAG is gone from the deployment
            first_success_run_id text,                   -- its first successful scheduled run
            first_success_at timestamptz,
            metered_usage_event_id bigint REFERENCES {S}.usage_event (id),
            metered_work_order_id text
        );
        CREATE TABLE {S}.scheduled_job_change (          -- 作业规模数据量及变化记录
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL REFERENCES {S}.scheduled_job (dag_id),
            change text NOT NULL CHECK (change IN {CHANGES}),
            old_value text,
            new_value text,
            source text NOT NULL,
            observed_at timestamptz NOT NULL
        );
        CREATE INDEX scheduled_job_change_time ON {S}.scheduled_job_change (observed_at);
        CREATE FUNCTION {S}.scheduled_job_change_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'govops.scheduled_job_change is append-only (% refused)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER scheduled_job_change_append_only
            BEFORE UPDATE OR DELETE ON {S}.scheduled_job_change
            FOR EACH ROW EXECUTE FUNCTION {S}.scheduled_job_change_append_only();
        CREATE TRIGGER scheduled_job_change_no_truncate BEFORE TRUNCATE ON {S}.scheduled_job_change
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.refuse_truncate();
        REVOKE TRUNCATE ON {S}.scheduled_job_change FROM PUBLIC, CURRENT_USER;  -- as revision 0008 does

        -- Event orders: the 0002 states become seed 004's cycle (handled -> resolved, closed -> evaluated).
        ALTER TABLE {S}.event_order DROP CONSTRAINT IF EXISTS event_order_state_check;
        UPDATE {S}.event_order SET state = CASE state WHEN 'handled' THEN 'resolved' WHEN 'closed' THEN 'evaluated'
                                                     ELSE state END;
        ALTER TABLE {S}.event_order
            ADD CONSTRAINT event_order_state_check
                CHECK (state IN ('open', 'acknowledged', 'resolved', 'evaluated')),
            ADD COLUMN order_type text NOT NULL DEFAULT '事件单',
            ADD COLUMN kind text NOT NULL DEFAULT 'manual',
            ADD COLUMN dedup_key text,
            ADD COLUMN service_order_id text,
            ADD COLUMN service_item_code varchar(8),
            ADD COLUMN urgency text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('low', 'normal', 'urgent')),
            ADD COLUMN started_at timestamptz,
            ADD COLUMN ended_at timestamptz,
            ADD COLUMN estimated_workload numeric,
            ADD COLUMN reporting_unit text,
            ADD COLUMN reporter text,
            ADD COLUMN operator text,
            ADD COLUMN operator_owner text,
            ADD COLUMN map_index integer,
            ADD COLUMN data_interval_start timestamptz,
            ADD COLUMN data_interval_end timestamptz,
            ADD COLUMN links jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            ADD COLUMN occurrences integer NOT NULL DEFAULT 1,
            ADD COLUMN last_error text,
            ADD COLUMN last_seen_at timestamptz,
            ADD COLUMN acknowledged_at timestamptz,
            ADD COLUMN acknowledged_by text,
            ADD COLUMN resolved_at timestamptz,
            ADD COLUMN resolved_by text,
            ADD COLUMN resolution text,
            ADD COLUMN evaluated_on date,
            ADD COLUMN evaluated_by text,
            ADD COLUMN operator_opinion text,
            ADD COLUMN purchaser_opinion text;
        -- Retries and repeated callbacks update the one open order of a key, never open a second.
        CREATE UNIQUE INDEX event_order_one_open ON {S}.event_order (dedup_key)
            WHERE state IN ('open', 'acknowledged');
        CREATE INDEX event_order_evaluated ON {S}.event_order (evaluated_on) WHERE state = 'evaluated';
        CREATE SEQUENCE {S}.event_order_number;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP SEQUENCE IF EXISTS {S}.event_order_number;
        DROP INDEX IF EXISTS {S}.event_order_evaluated;
        DROP INDEX IF EXISTS {S}.event_order_one_open;
        ALTER TABLE {S}.event_order DROP CONSTRAINT event_order_state_check;
        UPDATE {S}.event_order SET state = CASE state WHEN 'resolved' THEN 'handled' WHEN 'evaluated' THEN 'closed'
                                                     WHEN 'acknowledged' THEN 'open' ELSE state END;
        ALTER TABLE {S}.event_order
            ADD CONSTRAINT event_order_state_check CHECK (state IN ('open', 'handled', 'evaluated', 'closed')),
            DROP COLUMN order_type, DROP COLUMN kind, DROP COLUMN dedup_key, DROP COLUMN service_order_id,
            DROP COLUMN service_item_code, DROP COLUMN urgency, DROP COLUMN started_at, DROP COLUMN ended_at,
            DROP COLUMN estimated_workload, DROP COLUMN reporting_unit, DROP COLUMN reporter, DROP COLUMN operator,
            DROP COLUMN operator_owner, DROP COLUMN map_index, DROP COLUMN data_interval_start,
            DROP COLUMN data_interval_end, DROP COLUMN links, DROP COLUMN occurrences, DROP COLUMN last_error,
            DROP COLUMN last_seen_at, DROP COLUMN acknowledged_at, DROP COLUMN acknowledged_by,
            DROP COLUMN resolved_at, DROP COLUMN resolved_by, DROP COLUMN resolution, DROP COLUMN evaluated_on,
            DROP COLUMN evaluated_by, DROP COLUMN operator_opinion, DROP COLUMN purchaser_opinion;
        DROP TABLE IF EXISTS {S}.scheduled_job_change;
        DROP TABLE IF EXISTS {S}.scheduled_job;
        DROP FUNCTION IF EXISTS {S}.scheduled_job_change_append_only();
        """
    )
