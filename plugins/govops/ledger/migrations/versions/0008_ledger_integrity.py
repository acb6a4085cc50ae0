"""Ledger and settlement integrity: a closed period always has a closed statement; no work
order under an accepted or rejected service order; usage only for an existing work order of
its own item and unit; TRUNCATE refused on the append-only and closed-period tables; the
settlement line view per work order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

S = "govops"
# Append-only tables (row triggers refuse UPDATE and DELETE) and the tables of closed
# periods: TRUNCATE skips row triggers, so each gets a statement-level trigger as well.
PROTECTED = ("usage_event", "usage_assignment", "settlement_period", "settlement_statement", "period_penalty")

_LINE_VIEW_V1 = f"""
    SELECT s.period_id, s.state, (l ->> 'line_no')::int AS line_no, l ->> 'kind' AS kind,
           l ->> 'service_order_id' AS service_order_id, l ->> 'work_order_id' AS work_order_id,
           l ->> 'service_item_code' AS service_item_code, l ->> 'unit' AS unit,
           (l ->> 'raw_quantity')::bigint AS raw_quantity, (l ->> 'billing_quantity')::numeric AS billing_quantity,
           (l ->> 'difficulty')::numeric AS difficulty, (l ->> 'coefficient')::numeric AS coefficient,
           (l ->> 'amount')::numeric AS amount
      FROM {S}.settlement_statement s, jsonb_array_elements(s.statement -> 'lines') AS l"""


def upgrade() -> None:
    op.execute(
        f"""
        -- A generic statement-level trigger function: reusable by any protected table.
        CREATE FUNCTION {S}.refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'TRUNCATE_REFUSED: %.% is append-only or holds closed records', TG_TABLE_SCHEMA,
                TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        COMMENT ON FUNCTION {S}.refuse_truncate() IS
            'BEFORE TRUNCATE ... FOR EACH STATEMENT trigger function: refuses TRUNCATE of the table.';

        -- Item 1: closing is one transaction (statement closed, then period closed); checked at
        -- commit, so a period can never be closed with a draft (or no) statement, nor the reverse.
        CREATE FUNCTION {S}.check_closed_pair() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'settlement_period' THEN
                IF NOT EXISTS (SELECT 1 FROM {S}.settlement_statement
                                WHERE period_id = NEW.id AND state = 'closed') THEN
                    RAISE EXCEPTION 'PERIOD_CLOSED: period % cannot be closed without its closed statement', NEW.id
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
            ELSIF NOT EXISTS (SELECT 1 FROM {S}.settlement_period WHERE id = NEW.period_id AND state = 'closed') THEN
                RAISE EXCEPTION 'PERIOD_CLOSED: the statement of period % is closed but the period is not',
                    NEW.period_id USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER settlement_period_closed_pair AFTER INSERT OR UPDATE ON {S}.settlement_period
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.state = 'closed')
            EXECUTE FUNCTION {S}.check_closed_pair();
        CREATE CONSTRAINT TRIGGER settlement_statement_closed_pair AFTER INSERT OR UPDATE ON {S}.settlement_statement
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.state = 'closed')
            EXECUTE FUNCTION {S}.check_closed_pair();

        -- Item 2: seed 004 accepts a service order once all its work orders are accepted; a work
        -- order added afterwards was never accepted, so an accepted (or rejected) service order
        -- takes no new work order. FOR SHARE waits for a concurrent acceptance to commit.
        CREATE FUNCTION {S}.refuse_work_order_under_closed_service_order() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            so_state text;
        BEGIN
            SELECT state INTO so_state FROM {S}.service_order WHERE id = NEW.service_order_id FOR SHARE;
            IF so_state IN ('accepted', 'rejected') THEN
                RAISE EXCEPTION 'WORK_ORDER_REFUSED: service order % is %; work order % cannot be added to it',
                    NEW.service_order_id, so_state, NEW.id USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER work_order_open_service_order BEFORE INSERT OR UPDATE OF service_order_id ON {S}.work_order
            FOR EACH ROW EXECUTE FUNCTION {S}.refuse_work_order_under_closed_service_order();

        -- Item 3: usage names an existing work order of its own item and unit, or none (the
        -- unassigned queue): a composite foreign key, not checked when work_order_id is NULL.
        ALTER TABLE {S}.work_order ADD CONSTRAINT uq_work_order_item_unit UNIQUE (id, service_item_code, unit);
        ALTER TABLE {S}.usage_event ADD CONSTRAINT fk_usage_event_work_order
            FOREIGN KEY (work_order_id, service_item_code, unit)
            REFERENCES {S}.work_order (id, service_item_code, unit) NOT VALID;
        """
    )
    # Rows metered before this revision may break the rule; the ledger is append-only, so they
    # cannot be removed: new rows are checked, and old ones are validated where they comply.
    op.execute(
        f"""
        DO $$
        BEGIN
            ALTER TABLE {S}.usage_event VALIDATE CONSTRAINT fk_usage_event_work_order;
        EXCEPTION WHEN foreign_key_violation THEN
            RAISE WARNING 'fk_usage_event_work_order: earlier usage names unknown or mismatched work orders; '
                'the constraint holds for new usage only';
        END $$;
        """
    )
    for table in PROTECTED:
        op.execute(
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {S}.{table}
                FOR EACH STATEMENT EXECUTE FUNCTION {S}.refuse_truncate()"""
        )
    # No application role may truncate them: the owner (the role that migrates and runs the
    # services), PUBLIC, and the settlement reader.
    tables = ", ".join(f"{S}.{t}" for t in PROTECTED)
    op.execute(
        f"""
        REVOKE TRUNCATE ON {tables} FROM PUBLIC, CURRENT_USER;
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                REVOKE TRUNCATE ON {tables} FROM govops_settlement_reader;
            END IF;
        END $$;
        """
    )
    # Item 6: one row per work order of each service-order and adjustment line (with its
    # quantities and amount), besides the line's own row; columns are only appended.
    op.execute(
        f"""
        CREATE OR REPLACE VIEW {S}.settlement_line_v1 AS
        SELECT v.*, NULL::numeric AS work_order_amount, NULL::text AS catalog_version,
               NULL::bigint AS event_count, NULL::bigint AS last_usage_event_id
          FROM ({_LINE_VIEW_V1}) v
        UNION ALL
        SELECT s.period_id, s.state, (l ->> 'line_no')::int, l ->> 'kind', l ->> 'service_order_id',
               w ->> 'work_order_id', w ->> 'service_item_code', w ->> 'unit', (w ->> 'raw_quantity')::bigint,
               (w ->> 'billing_quantity')::numeric, (w ->> 'difficulty')::numeric, (l ->> 'coefficient')::numeric,
               NULL::numeric, (w ->> 'amount')::numeric, w ->> 'catalog_version', (w ->> 'event_count')::bigint,
               (w ->> 'last_usage_event_id')::bigint
          FROM {S}.settlement_statement s, jsonb_array_elements(s.statement -> 'lines') AS l,
               jsonb_array_elements(coalesce(l -> 'work_orders', '[]'::jsonb)) AS w;
        COMMENT ON VIEW {S}.settlement_line_v1 IS
            'One row per statement line (amount = the line''s amount; work_order_id NULL), and one row per '
            'work order of each service-order and adjustment line (work_order_id, raw_quantity, '
            'billing_quantity, difficulty and work_order_amount set; amount NULL, so sum(amount) is the lines'' sum).';
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP VIEW {S}.settlement_line_v1;
        CREATE VIEW {S}.settlement_line_v1 AS {_LINE_VIEW_V1};
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                GRANT SELECT ON {S}.settlement_line_v1 TO govops_settlement_reader;
            END IF;
        END $$;
        GRANT TRUNCATE ON {", ".join(f"{S}.{t}" for t in PROTECTED)} TO CURRENT_USER;
        """
    )
    for table in PROTECTED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {S}.{table}")
    op.execute(
        f"""
        ALTER TABLE {S}.usage_event DROP CONSTRAINT IF EXISTS fk_usage_event_work_order;
        ALTER TABLE {S}.work_order DROP CONSTRAINT IF EXISTS uq_work_order_item_unit;
        DROP TRIGGER IF EXISTS work_order_open_service_order ON {S}.work_order;
        DROP FUNCTION IF EXISTS {S}.refuse_work_order_under_closed_service_order();
        DROP TRIGGER IF EXISTS settlement_period_closed_pair ON {S}.settlement_period;
        DROP TRIGGER IF EXISTS settlement_statement_closed_pair ON {S}.settlement_statement;
        DROP FUNCTION IF EXISTS {S}.check_closed_pair();
        DROP FUNCTION IF EXISTS {S}.refuse_truncate();
        """
    )
