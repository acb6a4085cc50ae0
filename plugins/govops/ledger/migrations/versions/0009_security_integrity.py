"""Security integrity: the audit log is append-only in the database (UPDATE, DELETE and
TRUNCATE refused, and revoked from the application's roles), and its entries say how they
are chained: ``chain_version`` 1 (plain SHA-256, the entries written before this revision)
or 2 (HMAC-SHA256 under the master key's audit-chain sub-key, ``key_version`` = the master
key version; govops.security.audit).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

S = "govops"
T = f"{S}.security_audit_log"


def upgrade() -> None:
    # The entries already there keep their plain hashes (chain_version 1); no default
    # afterwards, so every new entry says how it is chained.
    op.execute(
        f"""
        ALTER TABLE {T} ADD COLUMN chain_version smallint NOT NULL DEFAULT 1, ADD COLUMN key_version integer;
        ALTER TABLE {T} ALTER COLUMN chain_version DROP DEFAULT;
        ALTER TABLE {T} ADD CONSTRAINT ck_security_audit_log_chain
            CHECK ((chain_version = 1 AND key_version IS NULL) OR (chain_version = 2 AND key_version >= 1));
        COMMENT ON COLUMN {T}.chain_version IS
            '1: hash = SHA-256 (entries written before migration 0009); 2: hash = HMAC-SHA256 under the '
            'audit-chain sub-key of master key version key_version';

        CREATE FUNCTION {S}.security_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'AUDIT_LOG_APPEND_ONLY: govops.security_audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$;
        CREATE TRIGGER security_audit_log_append_only BEFORE UPDATE OR DELETE ON {T}
            FOR EACH ROW EXECUTE FUNCTION {S}.security_audit_log_append_only();
        -- TRUNCATE skips row triggers: the statement-level function of revision 0008.
        CREATE TRIGGER security_audit_log_no_truncate BEFORE TRUNCATE ON {T}
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.refuse_truncate();

        -- No application role may change or empty it: the owner (the role that migrates and runs
        -- the services), PUBLIC and the settlement reader.
        REVOKE UPDATE, DELETE, TRUNCATE ON {T} FROM PUBLIC, CURRENT_USER;
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'govops_settlement_reader') THEN
                REVOKE UPDATE, DELETE, TRUNCATE ON {T} FROM govops_settlement_reader;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    # Keyed entries stay keyed: the code of revision 0008 cannot verify them.
    op.execute(
        f"""
        GRANT UPDATE, DELETE, TRUNCATE ON {T} TO CURRENT_USER;
        DROP TRIGGER IF EXISTS security_audit_log_no_truncate ON {T};
        DROP TRIGGER IF EXISTS security_audit_log_append_only ON {T};
        DROP FUNCTION IF EXISTS {S}.security_audit_log_append_only();
        ALTER TABLE {T} DROP CONSTRAINT IF EXISTS ck_security_audit_log_chain;
        ALTER TABLE {T} DROP COLUMN IF EXISTS key_version, DROP COLUMN IF EXISTS chain_version;
        """
    )
