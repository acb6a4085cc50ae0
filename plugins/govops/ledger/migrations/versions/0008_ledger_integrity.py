"""Ledger and settlement integrity (placeholder, filled by the settlement fixes).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op  # noqa: F401

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
