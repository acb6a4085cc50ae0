"""Sharing service operations (issue 19): closing an interface set (关闭: the API list and the
data list show it closed and when; its interfaces answer 410), the history of a set's
publications and closures, and the cascade exchanges with other platforms (级联对接记录:
a set's catalog registration, change and revocation sent to an upstream platform).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE {S}.api_set ADD COLUMN closed_at timestamptz;      -- 关闭时间 (NULL while open)
        ALTER TABLE {S}.api_set ADD COLUMN closed_reason text;
        CREATE TABLE {S}.api_set_event (                 -- a set's publications and closures, in order
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            set_name text NOT NULL REFERENCES {S}.api_set (set_name),
            event text NOT NULL CHECK (event IN ('published', 'republished', 'reopened', 'closed')),
            at timestamptz NOT NULL,
            by_whom text NOT NULL,                        -- the run id, or the operator who closed it
            reason text
        );
        CREATE OR REPLACE VIEW {S}.api_resource AS
            SELECT s.set_name, s.title, s.dataset, s.catalog_dataset, c.name AS catalog_name,
                   c.provider_department, c.update_frequency, s.open_type, s.open_state, s.opened_at,
                   s.published_at, s.dataset_version, s.closed_at
            FROM {S}.api_set s LEFT JOIN {S}.data_catalog c ON c.dataset = s.catalog_dataset;
        CREATE TABLE {S}.api_cascade (                   -- 级联对接记录: one row per message sent
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id uuid NOT NULL,                     -- the same on every attempt of one message
            platform text NOT NULL,
            set_name text NOT NULL,
            action text NOT NULL CHECK (action IN ('register', 'change', 'revoke')),
            sent_at timestamptz NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('accepted', 'refused', 'unreachable')),
            http_status integer,
            detail text,                                  -- the platform's answer (cut), or the error
            payload jsonb NOT NULL
        );
        CREATE INDEX api_cascade_set ON {S}.api_cascade (platform, set_name, sent_at);
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP TABLE IF EXISTS {S}.api_cascade;
        DROP TABLE IF EXISTS {S}.api_set_event;
        DROP VIEW {S}.api_resource;
        CREATE VIEW {S}.api_resource AS
            SELECT s.set_name, s.title, s.dataset, s.catalog_dataset, c.name AS catalog_name,
                   c.provider_department, c.update_frequency, s.open_type, s.open_state, s.opened_at,
                   s.published_at, s.dataset_version
            FROM {S}.api_set s LEFT JOIN {S}.data_catalog c ON c.dataset = s.catalog_dataset;
        ALTER TABLE {S}.api_set DROP COLUMN closed_reason;
        ALTER TABLE {S}.api_set DROP COLUMN closed_at;
        """
    )
