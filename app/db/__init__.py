"""The database: one seam for transactions, a driver per engine, and what /readyz knows of it.

In: a rule's unit of work, `await database.read(unit, ...)` / `database.write(unit, ...)`, and
`Sql` statements with `:name` placeholders. Out: rows as dicts, committed or rolled back as one
transaction; storage errors as `ApiError`s (and to whoever listens, `on_storage_error`).

base.py holds the seam's types (`Database`, `Connection`, `Sql`, the errors) and imports no
driver; sqlite.py (sqlite3 on the event loop) and postgresql.py (asyncpg, with pg_pool.py's
connections) implement it; connect.py opens the one the settings name and hands it to routes;
traced.py wraps it, with traces on, in a span per unit of work.
readiness.py keeps the state /readyz reports, from readiness_probe.py's statements and
schema_check.py's comparison with the migration head. Nothing here imports a rule or a router.
"""
