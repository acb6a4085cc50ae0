"""Application services, items 14 to 18 (issue 20): placeholder revision, filled in by the work of that issue.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
