"""Quality services: the check log of data checks (items 07, 08), the file checks and file
replacements (item 09) and the catalog quality issues sent back to departments (item 11).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    # --- items 07 / 08: one row per suite run, one per rule of it (the check log) ---
    op.execute(
        f"""
        CREATE TABLE {S}.quality_check_run (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            task_id text NOT NULL,
            dataset text NOT NULL,               -- <zone>/<dataset> in the lake
            side text NOT NULL CHECK (side IN ('ingestion', 'application')),
            suite text NOT NULL,
            suite_sha256 text NOT NULL,          -- the suite file's content, as run
            mode text NOT NULL CHECK (mode IN ('batch', 'stream')),
            rows_checked bigint NOT NULL,
            anomaly_rows bigint NOT NULL,        -- rows failing at least one rule
            score numeric(5, 2) NOT NULL,        -- 0-100, weighted over dimensions
            dimension_scores jsonb NOT NULL,
            status text NOT NULL CHECK (status IN ('pass', 'warn', 'fail')),
            anomalies_uri text,
            report_uri text,
            data_docs_uri text,
            work_order_id text,
            finished_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id, task_id, dataset)
        );
        CREATE INDEX quality_check_run_dataset ON {S}.quality_check_run (dataset, finished_at);
        CREATE TABLE {S}.quality_check_result (
            check_run_id bigint NOT NULL REFERENCES {S}.quality_check_run (id) ON DELETE CASCADE,
            rule text NOT NULL,                  -- the expectation's id in the suite
            expectation_type text NOT NULL,
            column_name text,
            dimension text NOT NULL,
            severity text NOT NULL CHECK (severity IN ('fail', 'warn')),
            rows_checked bigint NOT NULL,
            unexpected bigint NOT NULL,
            unexpected_percent double precision,
            success boolean NOT NULL,
            PRIMARY KEY (check_run_id, rule)
        );
        """
    )
    # --- item 09: file checks and the replacement workflow ---
    op.execute(
        f"""
        CREATE TABLE {S}.quality_file_check (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            location text NOT NULL,              -- a local path or an http(s) URL
            zone text,                           -- sharing / open
            catalog_dataset text,                -- the catalog entry it belongs to
            status text NOT NULL CHECK (status IN ('ok', 'failed')),
            problems text[] NOT NULL DEFAULT '{{}}',
            content_type text,
            size_bytes bigint,
            sha256 text,
            checked_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id, location)
        );
        CREATE TABLE {S}.quality_file_replacement (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            failed_location text NOT NULL,
            file_check_id bigint REFERENCES {S}.quality_file_check (id),
            state text NOT NULL DEFAULT 'requested'
                CHECK (state IN ('requested', 'replaced', 'verified')),
            replacement_location text,
            requested_at timestamptz NOT NULL DEFAULT now(),
            replaced_by text,
            replaced_at timestamptz,
            verified_at timestamptz
        );
        CREATE UNIQUE INDEX quality_file_replacement_open
            ON {S}.quality_file_replacement (failed_location) WHERE state <> 'verified';
        """
    )
    # --- item 11: catalog quality issues, per department, with their rectification ---
    op.execute(
        f"""
        CREATE TABLE {S}.catalog_quality_issue (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            dataset text NOT NULL,               -- the catalog entry
            department text NOT NULL,
            field text NOT NULL,
            problem text NOT NULL,               -- a reason code
            detail text,
            state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'fixed', 'reverified')),
            found_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz,
            UNIQUE (run_id, dataset, field, problem)
        );
        CREATE INDEX catalog_quality_issue_department ON {S}.catalog_quality_issue (department, state);
        """
    )


def downgrade() -> None:
    for table in (
        "catalog_quality_issue",
        "quality_file_replacement",
        "quality_file_check",
        "quality_check_result",
        "quality_check_run",
    ):
        op.execute(f"DROP TABLE IF EXISTS {S}.{table}")
