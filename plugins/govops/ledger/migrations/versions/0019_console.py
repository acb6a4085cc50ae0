"""The console (issue 18): ``usage_rollup``, the usage ledger summed per period, service
item, unit, own work order and department, kept by the database in the transaction of
every insert into ``usage_event``, so the usage page and the metrics read thousands of rows
instead of millions.

It cannot drift: the ledger is append-only (updates, deletes and truncation are refused),
a statement-level trigger adds each insert's rows (a batch, an ``INSERT … ON CONFLICT DO
NOTHING`` replay's new rows only, ``COPY``) in the same transaction, and the rollup refuses
every write not made from within a trigger (its guard reads ``pg_trigger_depth()``).
Assignments (``usage_assignment``) are not in it: the console moves assigned usage from the
ledger's own rows, as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

S = "govops"
KEY = "period, service_item_code, unit, work_order_id, department"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.usage_rollup (
            period date NOT NULL,
            service_item_code varchar(8) NOT NULL,
            unit varchar(32) NOT NULL,
            work_order_id varchar(64),               -- the event's own; NULL: unassigned when metered
            department text,
            events bigint NOT NULL,
            quantity numeric NOT NULL,
            records numeric NOT NULL,                -- the sum of the non-NULL records
            records_events bigint NOT NULL,          -- events with records (0: records unknown, NULL)
            CONSTRAINT uq_usage_rollup UNIQUE NULLS NOT DISTINCT ({KEY})
        );
        COMMENT ON TABLE {S}.usage_rollup IS
            'usage_event summed per period, item, unit, own work order and department; kept by the trigger '
            'usage_event_rollup in the transaction of each insert, never written otherwise.';

        CREATE FUNCTION {S}.usage_rollup_add() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {S}.usage_rollup AS r ({KEY}, events, quantity, records, records_events)
            SELECT {KEY}, count(*), sum(quantity), coalesce(sum(records), 0), count(records)
              FROM new_usage GROUP BY {KEY} ORDER BY {KEY}    -- one lock order for concurrent inserts
            ON CONFLICT ({KEY}) DO UPDATE SET events = r.events + EXCLUDED.events,
                   quantity = r.quantity + EXCLUDED.quantity, records = r.records + EXCLUDED.records,
                   records_events = r.records_events + EXCLUDED.records_events;
            RETURN NULL;
        END $$;

        CREATE FUNCTION {S}.usage_rollup_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF pg_trigger_depth() < 2 THEN  -- not from usage_rollup_add
                RAISE EXCEPTION 'govops.usage_rollup is kept by the usage_event trigger only (% refused)', TG_OP;
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$;

        -- No insert while the existing ledger is summed: the trigger takes over from here.
        LOCK TABLE {S}.usage_event IN SHARE MODE;
        INSERT INTO {S}.usage_rollup ({KEY}, events, quantity, records, records_events)
        SELECT {KEY}, count(*), sum(quantity), coalesce(sum(records), 0), count(records)
          FROM {S}.usage_event GROUP BY {KEY};
        CREATE TRIGGER usage_event_rollup AFTER INSERT ON {S}.usage_event
            REFERENCING NEW TABLE AS new_usage FOR EACH STATEMENT EXECUTE FUNCTION {S}.usage_rollup_add();
        CREATE TRIGGER usage_rollup_guard BEFORE INSERT OR UPDATE OR DELETE ON {S}.usage_rollup
            FOR EACH ROW EXECUTE FUNCTION {S}.usage_rollup_guard();
        CREATE TRIGGER usage_rollup_no_truncate BEFORE TRUNCATE ON {S}.usage_rollup
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.refuse_truncate();

        -- The unassigned queue's pages (keyset over id).
        CREATE INDEX IF NOT EXISTS ix_usage_event_unassigned ON {S}.usage_event (id) WHERE work_order_id IS NULL;
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                GRANT SELECT ON {S}.usage_rollup TO govops_settlement_reader;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""DROP TRIGGER IF EXISTS usage_event_rollup ON {S}.usage_event;
            DROP TABLE IF EXISTS {S}.usage_rollup;
            DROP FUNCTION IF EXISTS {S}.usage_rollup_add();
            DROP FUNCTION IF EXISTS {S}.usage_rollup_guard();
            DROP INDEX IF EXISTS {S}.ix_usage_event_unassigned;"""
    )
