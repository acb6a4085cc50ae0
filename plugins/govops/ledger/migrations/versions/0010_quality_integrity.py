"""Quality check log: the error of a rule that could not run (a column the data does not
have, an error inside Great Expectations), so the log says why, not only that it failed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE {S}.quality_check_result ADD COLUMN error text;
        ALTER TABLE {S}.quality_check_result ADD CONSTRAINT quality_check_result_error_fails
            CHECK (error IS NULL OR NOT success);
        """
    )


def downgrade() -> None:
    op.execute(f"ALTER TABLE {S}.quality_check_result DROP COLUMN IF EXISTS error")
