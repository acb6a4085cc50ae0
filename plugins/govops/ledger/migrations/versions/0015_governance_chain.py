"""The governance chain run by Assets (issue 17): placeholder revision, filled in by the work of that issue.

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
