"""The denominator: a bare FastAPI app whose one `async def` route returns a small constant
JSON. Served by the same uvicorn, flags and worker count as the service, it is the ceiling
the framework and server allow on this machine; every service figure is read as a ratio to it.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}
