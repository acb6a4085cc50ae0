"""Settlement (结算): the versioned service catalog, work orders, and the engine that turns
accepted, metered usage into a reproducible period statement.

``rules`` holds the contract's formulas as pure Decimal functions; ``engine`` computes a
statement from its inputs (pure); ``store`` gathers the inputs from PostgreSQL and keeps
statements, drafts and closed periods.
"""
