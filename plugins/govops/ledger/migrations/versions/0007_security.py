"""Security services: column labels and the labeling log (item 06), the data keys and the
masking execution log (item 20), assessment findings and access grants (item 19), archive /
restore / destruction operations and approvals (item 21), and the tamper-evident audit log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    # --- item 06: versioned column labels; one row per run and dataset in the labeling log ---
    op.execute(
        f"""
        CREATE TABLE {S}.security_label (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dataset text NOT NULL,               -- <zone>/<dataset> in the lake
            column_name text NOT NULL,
            version int NOT NULL CHECK (version > 0),
            category text NOT NULL,              -- business category (e.g. identity, contact, location)
            data_type text,                      -- what the detectors found (resident_id, mobile, ...)
            grade text NOT NULL CHECK (grade IN ('core', 'important', 'general')),
            level text NOT NULL,                 -- the sub-grade of the grading table (e.g. L4)
            source text NOT NULL CHECK (source IN ('detected', 'confirmed', 'override')),
            evidence jsonb NOT NULL DEFAULT '{{}}'::jsonb,  -- detector match ratios, name hints
            decided_by text,                     -- who confirmed or overrode it
            reason text,
            dag_id text,
            run_id text,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dataset, column_name, version)
        );
        CREATE TABLE {S}.security_labeling_run (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            dataset text NOT NULL,
            rows_labeled bigint NOT NULL,
            columns_labeled int NOT NULL,
            sensitive_columns int NOT NULL,
            labels jsonb NOT NULL,               -- column -> {{category, grade, level, version}}
            work_order_id text,
            finished_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id, dataset)
        );
        """
    )
    # --- item 20: data keys wrapped by the master key; the masking execution log ---
    op.execute(
        f"""
        CREATE TABLE {S}.security_data_key (
            name text NOT NULL,
            version int NOT NULL CHECK (version > 0),
            wrapped_key bytea,                   -- NULL once destroyed (crypto-shredding)
            master_key_version int NOT NULL,
            state text NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
            created_at timestamptz NOT NULL DEFAULT now(),
            destroyed_at timestamptz,
            destroyed_by text,
            PRIMARY KEY (name, version),
            CHECK ((state = 'destroyed') = (wrapped_key IS NULL))
        );
        CREATE TABLE {S}.security_masking_run (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            dataset text NOT NULL,
            output_dataset text NOT NULL,
            policy jsonb NOT NULL,               -- the rules applied, as run (no key material)
            policy_sha256 text NOT NULL,
            rows_controlled bigint NOT NULL,
            work_order_id text,
            finished_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id, dataset)
        );
        CREATE TABLE {S}.security_masking_column (
            masking_run_id bigint NOT NULL REFERENCES {S}.security_masking_run (id) ON DELETE CASCADE,
            column_name text NOT NULL,
            rule text NOT NULL,
            reversible boolean NOT NULL,
            key_name text,
            key_version int,
            records_controlled bigint NOT NULL,  -- non-null values the rule changed
            PRIMARY KEY (masking_run_id, column_name)
        );
        """
    )
    # --- item 19: access grants to review, findings with their rectification record ---
    op.execute(
        f"""
        CREATE TABLE {S}.security_access_grant (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            principal text NOT NULL,             -- a named account (no shared accounts)
            dataset text NOT NULL,
            privilege text NOT NULL DEFAULT 'read',
            granted_by text NOT NULL,
            granted_at timestamptz NOT NULL DEFAULT now(),
            last_access_at timestamptz,
            revoked_at timestamptz,
            revoked_by text,
            UNIQUE (principal, dataset, privilege)
        );
        CREATE TABLE {S}.security_assessment_run (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            datasets int NOT NULL,
            rows_assessed bigint NOT NULL,
            findings_open int NOT NULL,
            summary jsonb NOT NULL,
            report_uri text,
            work_order_id text,
            assessed_at timestamptz NOT NULL,    -- the time stale access is judged against
            finished_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (dag_id, run_id)
        );
        CREATE TABLE {S}.security_finding (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,                  -- UNMASKED_SENSITIVE, UNLABELED_DATASET, STALE_ACCESS, ...
            dataset text NOT NULL,
            subject text NOT NULL DEFAULT '',    -- the column or the principal, '' for the dataset
            severity text NOT NULL CHECK (severity IN ('high', 'medium', 'low')),
            detail text NOT NULL,
            status text NOT NULL CHECK (status IN ('open', 'fixed', 'reverified')),
            found_run_id bigint NOT NULL REFERENCES {S}.security_assessment_run (id),
            last_seen_run_id bigint NOT NULL REFERENCES {S}.security_assessment_run (id),
            found_at timestamptz NOT NULL DEFAULT now(),
            fixed_at timestamptz,
            fixed_by text,
            fix_note text,
            reverified_at timestamptz,
            reverified_run_id bigint REFERENCES {S}.security_assessment_run (id),
            -- the rectification record: [{{event: found|fixed|reverified|resolved|reopened, at, run, by, note}}]
            history jsonb NOT NULL DEFAULT '[]'::jsonb,
            UNIQUE (kind, dataset, subject)
        );
        """
    )
    # --- item 21: archive / restore / destroy operations, destruction approvals ---
    op.execute(
        f"""
        CREATE TABLE {S}.security_archive_operation (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('archive', 'restore', 'destroy')),
            dataset text NOT NULL,
            partition text NOT NULL,             -- e.g. dt=2025-01-01
            state text NOT NULL CHECK (state IN ('planned', 'copied', 'inventoried', 'verified', 'removed',
                                                 'restored', 'destroyed', 'superseded')),  -- the step (resumable)
            rows bigint,
            bytes bigint,
            files int,
            manifest jsonb,                      -- files, sizes, sha256, row counts
            dag_id text NOT NULL,
            run_id text NOT NULL,
            work_order_id text,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            UNIQUE (kind, dataset, partition, dag_id, run_id)
        );
        -- every operation of a partition, whatever its run (taking over unfinished ones)
        CREATE INDEX security_archive_operation_partition_idx
            ON {S}.security_archive_operation (dataset, partition);
        CREATE TABLE {S}.security_destruction_approval (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            work_order_id text NOT NULL REFERENCES {S}.work_order (id),
            dataset text NOT NULL,
            partitions jsonb NOT NULL,           -- the partitions approved for destruction, or ["*"]
            requested_by text NOT NULL,
            approved_by text NOT NULL,
            approved_at timestamptz NOT NULL DEFAULT now(),
            CHECK (approved_by <> requested_by)  -- two people: who asks is not who approves
        );
        """
    )
    # --- the audit log: each entry hashes the previous one (tamper-evident) ---
    op.execute(
        f"""
        CREATE TABLE {S}.security_audit_log (
            seq bigint PRIMARY KEY,
            at timestamptz NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            dataset text,
            details jsonb NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL UNIQUE
        );
        """
    )


def downgrade() -> None:
    for table in (
        "security_audit_log", "security_destruction_approval", "security_archive_operation", "security_finding",
        "security_assessment_run", "security_access_grant", "security_masking_column", "security_masking_run",
        "security_data_key", "security_labeling_run", "security_label",
    ):  # fmt: skip
        op.execute(f"DROP TABLE IF EXISTS {S}.{table}")
