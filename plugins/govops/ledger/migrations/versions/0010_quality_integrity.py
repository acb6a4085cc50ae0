"""Quality fixes (placeholder).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
