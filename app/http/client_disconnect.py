"""What the request path tells the code below it about the request being served.

`client_gone` (defined with the data layer, which checks it before COMMIT) holds a function
saying whether the client has disconnected; the request path sets it for each admitted
request (app/http/request_path.py), so a unit of work rolls back an order nobody will hear of.
"""

from app.db.base import client_gone

__all__ = ["client_gone"]
