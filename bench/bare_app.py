"""The denominator: a bare FastAPI app whose one `async def` route returns a small constant
JSON. Served by the same uvicorn, flags and worker count as the service, it is the ceiling
the framework and server allow on this machine; every service figure is read as a ratio to it.

`/hop` gives the same answer from a worker thread: the least any route pays that keeps
blocking work (a database call) off the event loop (`bench/request_cost.py` measures both).
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

app = FastAPI()
_thread = ThreadPoolExecutor(1)


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}


def _constant() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/hop")
async def hop() -> dict[str, str]:
    return await asyncio.get_running_loop().run_in_executor(_thread, _constant)
