"""Collection (采集接入): the data catalog (编目) of onboarded datasets, and whether each
collection run was a new onboarding or a refresh (保鲜), which price differently.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "govops"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {S}.data_catalog (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            dataset text NOT NULL UNIQUE,          -- <zone>/<dataset> in the lake
            name text NOT NULL,                    -- 资源名称
            provider_department text NOT NULL,     -- 提供部门
            source_system text NOT NULL,           -- 来源系统
            database_type text NOT NULL,           -- 数据库类型 (PostgreSQL, file (csv)...)
            source_object text NOT NULL,           -- the table or path collected
            schema jsonb NOT NULL,                 -- [{{name, type, description}}] 信息项
            update_frequency text NOT NULL,        -- 更新频率
            share_type text NOT NULL,              -- 共享属性
            open_type text NOT NULL,               -- 开放属性
            classification text NOT NULL,          -- 资源分类
            pipeline text NOT NULL,
            first_run_id text NOT NULL,            -- the run that onboarded it (new)
            onboarded_at timestamptz NOT NULL DEFAULT now(),
            refreshed_at timestamptz,              -- the last refresh (保鲜)
            refreshes integer NOT NULL DEFAULT 0,
            records bigint NOT NULL DEFAULT 0,     -- rows in the last collection
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE {S}.extraction_run ADD COLUMN onboarding text
            CHECK (onboarding IN ('new', 'refresh'));
        ALTER TABLE {S}.extraction_run ADD COLUMN work_order_id text;
        """
    )


def downgrade() -> None:
    op.execute(f"ALTER TABLE {S}.extraction_run DROP COLUMN IF EXISTS onboarding")
    op.execute(f"ALTER TABLE {S}.extraction_run DROP COLUMN IF EXISTS work_order_id")
    op.execute(f"DROP TABLE IF EXISTS {S}.data_catalog")
