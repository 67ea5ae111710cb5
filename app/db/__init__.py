"""The drivers behind app.db.base's seam: raw sqlite3 on the event loop, and asyncpg."""
