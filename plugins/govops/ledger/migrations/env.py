"""Alembic environment of the usage ledger; the version table lives in schema govops."""

from alembic import context
from sqlalchemy import create_engine, text

from govops.ledger.models import SCHEMA, Base

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url)
with engine.begin() as connection:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    # Two processes migrating at once (tests, a scheduler) wait instead of colliding.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('govops-migrations'))"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
