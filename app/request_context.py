"""What the request path tells the code below it about the request being served.

`client_gone` holds a function saying whether the client has disconnected, so a unit of work
can roll back instead of committing an order nobody will hear of. The data layer owns the
variable (`app.database.client_gone`) once it checks it before COMMIT; until then it is
defined here, and either way there is one variable.
"""

from collections.abc import Callable
from contextvars import ContextVar

try:
    from app.database import client_gone  # type: ignore[attr-defined]
except ImportError:
    client_gone: ContextVar[Callable[[], bool] | None] = ContextVar(  # type: ignore[no-redef]
        "client_gone", default=None
    )

__all__ = ["client_gone"]
