"""Background jobs: one small interface, procrastinate on PostgreSQL, in-process on SQLite."""
