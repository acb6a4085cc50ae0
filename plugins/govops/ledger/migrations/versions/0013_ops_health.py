"""Job health and notifications (issue 17): the kinds of event orders the monitoring pass
opens (``failure`` becomes ``failed``; ``stuck``, ``slow``, ``late``, ``import_error``), and
the record of the notifications sent, one per order, state change and channel, so a retry
or a repeated pass never sends twice.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

S = "govops"
KINDS = "('failed', 'quality_gate', 'reconciliation', 'refusal', 'stuck', 'slow', 'late', 'import_error', 'manual')"


def upgrade() -> None:
    op.execute(
        f"""
        UPDATE {S}.event_order SET kind = 'failed' WHERE kind = 'failure';
        ALTER TABLE {S}.event_order ADD CONSTRAINT event_order_kind_check CHECK (kind IN {KINDS});
        -- The monitoring pass resolves the open orders of a kind that it no longer detects.
        CREATE INDEX event_order_open_kind ON {S}.event_order (kind) WHERE state IN ('open', 'acknowledged');

        CREATE TABLE {S}.event_order_notification (      -- what was sent, once per state change
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_order_id text NOT NULL REFERENCES {S}.event_order (id),
            event text NOT NULL CHECK (event IN ('opened', 'acknowledged', 'resolved', 'evaluated')),
            channel text NOT NULL,                       -- smtp, dingtalk
            recipients text NOT NULL,
            subject text NOT NULL,
            sent_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (event_order_id, event, channel)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP TABLE IF EXISTS {S}.event_order_notification;
        DROP INDEX IF EXISTS {S}.event_order_open_kind;
        ALTER TABLE {S}.event_order DROP CONSTRAINT IF EXISTS event_order_kind_check;
        UPDATE {S}.event_order SET kind = 'failure' WHERE kind = 'failed';
        """
    )
