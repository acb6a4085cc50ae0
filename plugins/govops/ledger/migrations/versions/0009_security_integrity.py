"""Security integrity (placeholder, filled by the security fixes).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
