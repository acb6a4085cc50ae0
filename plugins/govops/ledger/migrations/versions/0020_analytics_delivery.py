"""Application services (issue 20): an analysis past the cap of 20 programs per work order
and library (item 14) is recorded in ``analytics_run`` with ``billing = 'over_cap'`` (no
ledger row), so the billing check accepts that value too.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

S = "govops"
BEFORE = "('delivery', 'correction', 'automatic_refresh', 'manual_refresh')"
AFTER = "('delivery', 'correction', 'automatic_refresh', 'manual_refresh', 'over_cap')"


def upgrade() -> None:
    op.execute(
        f"""ALTER TABLE {S}.analytics_run DROP CONSTRAINT analytics_run_billing_check;
            ALTER TABLE {S}.analytics_run ADD CONSTRAINT analytics_run_billing_check CHECK (billing IN {AFTER});"""
    )


def downgrade() -> None:
    from sqlalchemy import text

    over = op.get_bind().execute(text(f"SELECT count(*) FROM {S}.analytics_run WHERE billing = 'over_cap'")).scalar()
    if over:  # run records are kept, never dropped to fit an older schema
        raise RuntimeError(f"{over} analytics run(s) are recorded as over_cap: revision 0019 cannot hold them")
    op.execute(
        f"""ALTER TABLE {S}.analytics_run DROP CONSTRAINT analytics_run_billing_check;
            ALTER TABLE {S}.analytics_run ADD CONSTRAINT analytics_run_billing_check CHECK (billing IN {BEFORE});"""
    )
