"""Spatial verification: the correction log. An automatic correction (swapped coordinates
restored, a batch converted from GCJ-02 / BD-09) is proposed by a run, applied by a named
approver and can be reverted; only applied corrections reach the written-back dataset.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.spatial_correction (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dataset text NOT NULL,
            record_id text NOT NULL,
            dag_id text NOT NULL,
            run_id text NOT NULL,
            rule text NOT NULL,                  -- the reason codes the correction fixes
            before_lon text,                     -- as the source held them
            before_lat text,
            after_lon double precision NOT NULL, -- WGS-84
            after_lat double precision NOT NULL,
            state text NOT NULL DEFAULT 'proposed'
                CHECK (state IN ('proposed', 'applied', 'reverted', 'rejected')),
            proposed_at timestamptz NOT NULL DEFAULT now(),
            approver text,
            applied_at timestamptz,
            reverted_by text,
            reverted_at timestamptz,
            UNIQUE (dataset, record_id, run_id)
        );
        CREATE INDEX spatial_correction_run ON {S}.spatial_correction (dataset, run_id, state);
        """
    )


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {S}.spatial_correction")
