"""Data sharing and open API service, items 12 and 13 (issue 19): callers (请求方) and their
API keys (hashes only), applications for conditional sets (有条件开放), the registered
interface sets (the API list, and the data list 资源信息 as a view over it and the data
catalog), and the call records (调用记录), one row per call.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.api_caller (                    -- 请求方: a department or company calling the API
            caller_id text PRIMARY KEY,
            name text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('department', 'company', 'person')),
            contact text NOT NULL,
            roles text[] NOT NULL DEFAULT '{{}}',        -- masking rights (clear_for of the sets' specs)
            allowed_sets text[],                          -- NULL: every set its kind may call
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz
        );
        CREATE TABLE {S}.api_key (
            key_id text PRIMARY KEY,                      -- the public part (appKey)
            caller_id text NOT NULL REFERENCES {S}.api_caller (caller_id),
            secret_sha256 text NOT NULL,                  -- the secret itself is never stored
            master_version integer NOT NULL,              -- master key version the secret derives from
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            revoked_reason text
        );
        CREATE TABLE {S}.api_application (               -- 申请: a caller's request for a conditional set
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            caller_id text NOT NULL REFERENCES {S}.api_caller (caller_id),
            set_name text NOT NULL,
            purpose text NOT NULL,
            status text NOT NULL CHECK (status IN ('pending', 'approved', 'refused', 'withdrawn')),
            decided_by text,
            decided_at timestamptz,
            expires_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX api_application_open ON {S}.api_application (caller_id, set_name)
            WHERE status IN ('pending', 'approved');
        CREATE TABLE {S}.api_set (                       -- API接口列表: a set published by sharing_publish
            set_name text PRIMARY KEY,
            title text NOT NULL,
            dataset text NOT NULL,
            catalog_dataset text NOT NULL,
            open_type text NOT NULL,
            spec_sha256 text NOT NULL,                    -- the spec file of the last publication
            dataset_version text NOT NULL,                -- X-Dataset-Version when it was tested
            openapi_sha256 text NOT NULL,
            interfaces text[] NOT NULL,                   -- the interfaces' paths
            open_state text NOT NULL CHECK (open_state IN ('open', 'closed')),
            opened_at timestamptz NOT NULL,               -- 开放时间: the first publication
            published_at timestamptz NOT NULL,            -- the last publication
            publish_run_id text NOT NULL,
            publications integer NOT NULL DEFAULT 1,
            tests_passed integer NOT NULL,
            tests_total integer NOT NULL,
            docs_uri text NOT NULL,
            report_uri text NOT NULL,
            work_order_id text,                           -- the work order item 12 was metered against
            usage_event_id bigint REFERENCES {S}.usage_event (id)
        );
        -- 资源信息: the data list of the published sets, with the catalog entry they serve.
        CREATE VIEW {S}.api_resource AS
            SELECT s.set_name, s.title, s.dataset, s.catalog_dataset, c.name AS catalog_name,
                   c.provider_department, c.update_frequency, s.open_type, s.open_state, s.opened_at,
                   s.published_at, s.dataset_version
            FROM {S}.api_set s LEFT JOIN {S}.data_catalog c ON c.dataset = s.catalog_dataset;
        CREATE TABLE {S}.api_call (                      -- 调用记录: every call, refused ones too
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_id uuid NOT NULL UNIQUE,
            set_name text NOT NULL,
            interface text NOT NULL,
            caller_id text,                               -- NULL: no valid key was given
            key_id text,
            called_at timestamptz NOT NULL,
            status integer NOT NULL,
            error_code text,
            rows bigint,                                  -- NULL while a stream is still being sent
            bytes bigint,
            latency_ms double precision,
            completed boolean NOT NULL DEFAULT true       -- false: a stream not (yet) sent to the end
        );
        CREATE INDEX api_call_time ON {S}.api_call (called_at);
        CREATE INDEX api_call_caller_month ON {S}.api_call (caller_id, set_name, called_at);
        CREATE FUNCTION {S}.api_call_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'govops.api_call keeps every call record (% refused)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER api_call_no_delete BEFORE DELETE ON {S}.api_call
            FOR EACH ROW EXECUTE FUNCTION {S}.api_call_no_delete();
        CREATE TRIGGER api_call_no_truncate BEFORE TRUNCATE ON {S}.api_call
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.refuse_truncate();
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP TABLE IF EXISTS {S}.api_call;
        DROP FUNCTION IF EXISTS {S}.api_call_no_delete();
        DROP VIEW IF EXISTS {S}.api_resource;
        DROP TABLE IF EXISTS {S}.api_set;
        DROP TABLE IF EXISTS {S}.api_application;
        DROP TABLE IF EXISTS {S}.api_key;
        DROP TABLE IF EXISTS {S}.api_caller;
        """
    )
