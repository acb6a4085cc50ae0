"""Data sharing and open API service, items 12 and 13 (issue 19): placeholder revision.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
