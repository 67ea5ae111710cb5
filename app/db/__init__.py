"""The drivers behind app.database's seam: raw sqlite3 on the event loop, and asyncpg."""
