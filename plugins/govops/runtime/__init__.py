"""Local runtime: the embedded PostgreSQL server, the JDK, and the environment ./dev exports."""
