"""`./run.sh chores` (`python -m app.chores`): one round of the background chores, then exit.

The web workers run the chores while they serve (app/housekeeping.py). A service that sleeps
when idle (Render's free plan) runs none of them until a request wakes it: unpaid orders keep
their stock, events wait. A scheduler running this every few minutes keeps them going
(render.yaml's cron job, docs/deploy-render.md). It is safe beside running workers: an order
expires once however many run, a delivery is sent by whoever holds its lease.

Exit status: 0 when every chore ran, 1 when one failed (its warning is in the log).
"""

import asyncio
import logging
import sys

from app import housekeeping
from app.core import currencies
from app.core.config import get_settings
from app.core.logs import configure_logging
from app.db.connect import create_database

log = logging.getLogger("app.chores")


async def run() -> dict[str, int | None]:
    settings = get_settings()
    currencies.use(settings.currency)  # the events' order views show it
    database = create_database(settings)
    try:
        return await housekeeping.run_once(database, settings)
    finally:
        await database.close()


def main() -> int:
    configure_logging(get_settings().log_level)
    done = asyncio.run(run())
    failed = sorted(chore for chore, count in done.items() if count is None)
    log.info("chores failed" if failed else "chores done", extra={**done, "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
