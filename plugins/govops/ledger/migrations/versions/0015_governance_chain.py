"""The governance chain run by Assets (issue 17): no schema change (the chain lives in Airflow).

Kept so that databases already at this revision stay on the chain.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
