"""Operations reports and lineage (issue 17): placeholder revision, filled in by the work of that issue.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
