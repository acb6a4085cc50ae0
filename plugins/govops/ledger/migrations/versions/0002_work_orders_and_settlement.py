"""Work orders (seed 004) and settlement: plans, tasks, service orders, work orders, event
orders, usage assignments, periods, penalties, statements; closed periods are immutable.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "govops"
ORDER_STATES = "('draft', 'approved', 'in_progress', 'delivered', 'accepted', 'rejected', 'rework')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.service_task_plan (
            id text PRIMARY KEY,
            name text NOT NULL,
            year integer,
            description text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {S}.service_task (
            id text PRIMARY KEY,
            plan_id text REFERENCES {S}.service_task_plan (id),
            name text NOT NULL,
            category text,
            description text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {S}.service_order (                 -- 服务单
            id text PRIMARY KEY,                         -- 服务单编号
            task_id text REFERENCES {S}.service_task (id),
            name text NOT NULL,
            category text,
            requesting_department text,                  -- 需求部门
            operator_owner text,                         -- 运营方负责人
            purchaser_owner text,                        -- 采购方负责人
            start_date date,
            end_date date,
            objectives text,
            plan text,
            state text NOT NULL DEFAULT 'draft' CHECK (state IN {ORDER_STATES}),
            quality_score numeric(5, 2) CHECK (quality_score BETWEEN 0 AND 100),   -- 交付质量评分
            rework_score numeric(5, 2) CHECK (rework_score BETWEEN 0 AND 100),
            operator_opinion text,                       -- 运营方验收意见
            purchaser_opinion text,                      -- 采购方验收意见
            accepted_on date,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (state <> 'accepted' OR (accepted_on IS NOT NULL AND quality_score IS NOT NULL))
        );
        CREATE TABLE {S}.work_order (                    -- 工单: exactly one service item
            id text PRIMARY KEY,
            service_order_id text NOT NULL REFERENCES {S}.service_order (id),
            service_item_code varchar(8) NOT NULL,
            unit varchar(32) NOT NULL,
            urgency text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('low', 'normal', 'urgent')),
            estimated_workload numeric,
            difficulty numeric(6, 3) NOT NULL DEFAULT 1 CHECK (difficulty > 0),
            cap numeric(14, 2) CHECK (cap >= 0),         -- overrides the catalog's cap when set
            order_date date NOT NULL,                    -- picks the catalog version in force
            state text NOT NULL DEFAULT 'draft' CHECK (state IN {ORDER_STATES}),
            deliverables jsonb NOT NULL DEFAULT '[]'::jsonb,
            operator_opinion text,
            purchaser_opinion text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_work_order_service_order ON {S}.work_order (service_order_id);
        CREATE TABLE {S}.event_order (                   -- 事件单
            id text PRIMARY KEY,
            title text NOT NULL,
            incident_type text,
            occurred_on date NOT NULL,
            description text,
            work_order_id text REFERENCES {S}.work_order (id),
            dag_id text, run_id text, task_id text,
            state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'handled', 'evaluated', 'closed')),
            evaluation text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- Assigning unassigned usage to a work order: the ledger row itself never changes.
        CREATE TABLE {S}.usage_assignment (
            usage_event_id bigint PRIMARY KEY REFERENCES {S}.usage_event (id),
            work_order_id text NOT NULL REFERENCES {S}.work_order (id),
            assigned_by text NOT NULL,
            assigned_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TRIGGER usage_assignment_append_only
            BEFORE UPDATE OR DELETE ON {S}.usage_assignment
            FOR EACH ROW EXECUTE FUNCTION {S}.usage_event_append_only();

        CREATE TABLE {S}.settlement_period (
            id text PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('monthly', 'bimonthly', 'quarterly')),
            start_date date NOT NULL,
            end_date date NOT NULL CHECK (end_date >= start_date),
            service_quality numeric(5, 2) CHECK (service_quality BETWEEN 0 AND 100),
            satisfaction numeric(5, 2) CHECK (satisfaction BETWEEN 0 AND 100),
            state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
            closed_at timestamptz,
            EXCLUDE USING gist (daterange(start_date, end_date, '[]') WITH &&)
        );
        CREATE TABLE {S}.period_penalty (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            period_id text NOT NULL REFERENCES {S}.settlement_period (id),
            incident_type text NOT NULL,
            event_order_id text REFERENCES {S}.event_order (id),
            amount numeric(14, 2) NOT NULL CHECK (amount >= 0),
            note text
        );
        CREATE TABLE {S}.settlement_statement (
            period_id text PRIMARY KEY REFERENCES {S}.settlement_period (id),
            state text NOT NULL CHECK (state IN ('draft', 'closed')),
            content_hash text NOT NULL,
            statement jsonb NOT NULL,
            inputs jsonb NOT NULL,
            computed_at timestamptz NOT NULL DEFAULT now()
        );

        -- R9: a closed period never changes, whoever writes to the database.
        CREATE FUNCTION {S}.refuse_closed_period() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            pid text;
        BEGIN
            IF TG_TABLE_NAME = 'settlement_period' THEN
                IF OLD.state = 'closed' THEN
                    RAISE EXCEPTION 'PERIOD_CLOSED: settlement period % is closed', OLD.id
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
            END IF;
            pid := CASE WHEN TG_OP = 'INSERT' THEN NEW.period_id ELSE OLD.period_id END;
            IF TG_OP = 'UPDATE' AND NEW.period_id <> OLD.period_id THEN
                pid := OLD.period_id;
            END IF;
            IF EXISTS (SELECT 1 FROM {S}.settlement_period WHERE id = pid AND state = 'closed') THEN
                RAISE EXCEPTION 'PERIOD_CLOSED: settlement period % is closed', pid
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF TG_TABLE_NAME = 'settlement_statement' AND TG_OP <> 'INSERT' THEN
                IF OLD.state = 'closed' THEN
                    RAISE EXCEPTION 'PERIOD_CLOSED: the statement of period % is closed', pid
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$;
        CREATE TRIGGER settlement_period_closed BEFORE UPDATE OR DELETE ON {S}.settlement_period
            FOR EACH ROW EXECUTE FUNCTION {S}.refuse_closed_period();
        CREATE TRIGGER settlement_statement_closed BEFORE INSERT OR UPDATE OR DELETE ON {S}.settlement_statement
            FOR EACH ROW EXECUTE FUNCTION {S}.refuse_closed_period();
        CREATE TRIGGER period_penalty_closed BEFORE INSERT OR UPDATE OR DELETE ON {S}.period_penalty
            FOR EACH ROW EXECUTE FUNCTION {S}.refuse_closed_period();

        -- Contract views for the settlement system (read-only role below).
        CREATE VIEW {S}.work_order_usage_v1 AS
        SELECT coalesce(u.work_order_id, a.work_order_id) AS work_order_id,
               u.service_item_code, u.unit,
               sum(u.quantity)::bigint AS quantity,
               sum(u.records)::bigint AS records,
               count(*)::bigint AS event_count,
               max(u.id) AS last_usage_event_id,
               min(u.event_time) AS first_event_time,
               max(u.event_time) AS last_event_time
          FROM {S}.usage_event u
          LEFT JOIN {S}.usage_assignment a ON a.usage_event_id = u.id
         WHERE coalesce(u.work_order_id, a.work_order_id) IS NOT NULL
         GROUP BY 1, 2, 3;
        COMMENT ON VIEW {S}.work_order_usage_v1 IS
            'Cumulative metered usage per work order (own or assigned), item and unit: raw base units.';
        CREATE VIEW {S}.unassigned_usage_v1 AS
        SELECT u.* FROM {S}.usage_event u
         WHERE u.work_order_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM {S}.usage_assignment a WHERE a.usage_event_id = u.id);
        COMMENT ON VIEW {S}.unassigned_usage_v1 IS
            'The unassigned queue: usage without a work order; reported by settlement, never billed.';
        CREATE VIEW {S}.settlement_statement_v1 AS
        SELECT s.period_id, p.kind, p.start_date, p.end_date, s.state, s.content_hash, s.computed_at,
               (s.statement #>> '{{totals,gross}}')::numeric AS gross,
               (s.statement #>> '{{totals,retained}}')::numeric AS retained,
               (s.statement #>> '{{totals,deduction}}')::numeric AS deduction,
               (s.statement #>> '{{totals,penalties}}')::numeric AS penalties,
               (s.statement #>> '{{totals,net}}')::numeric AS net,
               (s.statement #>> '{{totals,prepayment_offset}}')::numeric AS prepayment_offset,
               (s.statement #>> '{{totals,payable}}')::numeric AS payable,
               (s.statement #>> '{{totals,prepayment_remaining}}')::numeric AS prepayment_remaining,
               (s.statement #>> '{{totals,shortfall_out}}')::numeric AS shortfall_carried
          FROM {S}.settlement_statement s JOIN {S}.settlement_period p ON p.id = s.period_id;
        CREATE VIEW {S}.settlement_line_v1 AS
        SELECT s.period_id, s.state, (l ->> 'line_no')::int AS line_no, l ->> 'kind' AS kind,
               l ->> 'service_order_id' AS service_order_id, l ->> 'work_order_id' AS work_order_id,
               l ->> 'service_item_code' AS service_item_code, l ->> 'unit' AS unit,
               (l ->> 'raw_quantity')::bigint AS raw_quantity, (l ->> 'billing_quantity')::numeric AS billing_quantity,
               (l ->> 'difficulty')::numeric AS difficulty, (l ->> 'coefficient')::numeric AS coefficient,
               (l ->> 'amount')::numeric AS amount
          FROM {S}.settlement_statement s, jsonb_array_elements(s.statement -> 'lines') AS l;
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                GRANT SELECT ON {S}.work_order_usage_v1, {S}.unassigned_usage_v1, {S}.settlement_statement_v1,
                    {S}.settlement_line_v1 TO govops_settlement_reader;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'grants to govops_settlement_reader skipped';
        END $$;
        """
    )


def downgrade() -> None:
    for view in ("settlement_line_v1", "settlement_statement_v1", "unassigned_usage_v1", "work_order_usage_v1"):
        op.execute(f"DROP VIEW IF EXISTS {S}.{view}")
    for table in (
        "settlement_statement", "period_penalty", "settlement_period", "usage_assignment", "event_order",
        "work_order", "service_order", "service_task", "service_task_plan",
    ):
        op.execute(f"DROP TABLE IF EXISTS {S}.{table}")
    op.execute(f"DROP FUNCTION IF EXISTS {S}.refuse_closed_period()")
