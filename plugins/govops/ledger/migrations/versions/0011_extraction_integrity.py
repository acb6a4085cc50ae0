"""Extraction runs know their data interval: a run of an interval that a committed run
already delivered is a re-run of that run (``rerun_of``), metered with quantity 0.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE {S}.extraction_run
            ADD COLUMN data_interval_start timestamptz,
            ADD COLUMN data_interval_end timestamptz,
            ADD COLUMN rerun_of text;
        CREATE INDEX extraction_run_interval ON {S}.extraction_run (pipeline, data_interval_start, data_interval_end);
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP INDEX IF EXISTS {S}.extraction_run_interval;
        ALTER TABLE {S}.extraction_run DROP COLUMN data_interval_start, DROP COLUMN data_interval_end,
            DROP COLUMN rerun_of;
        """
    )
