"""The usage ledger: every metered quantity, exactly once, in PostgreSQL.

Services meter through one API, :func:`govops.ledger.usage.meter_manifest`, which turns a
Spark job's manifest into usage events; :func:`record_usage` is the batched writer below it.
"""
