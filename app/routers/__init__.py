"""HTTP in, calls to the rules, HTTP out: one module per resource, named after its rule module
(routers/products.py calls app/products.py). Each route declares its OpenAPI operation id, and
each router its tag.

In: a request the request path (app/http/) admitted. Out: one call to a rule through the
database seam, and its answer as JSON. `ROUTERS` is the one list of the API's routers, in the
order their routes are matched (the busiest first); `TAGS` their tags, in the documentation's
order. The app (app/main.py) and the tests take both from here.
"""

from app.http import metrics_endpoint
from app.routers import (
    catalog,
    events,
    health,
    orders,
    payments,
    products,
    refunds,
    shipments,
    stock,
    stripe_events,
)

ROUTERS = (
    catalog.router,  # before products: `/products/{product_id}` would take `import`, `export`
    products.router,
    stock.router,
    orders.router,
    shipments.router,
    refunds.router,
    payments.router,
    stripe_events.router,
    events.router,
    health.router,
    metrics_endpoint.router,
)
TAGS = [
    products.TAG,
    catalog.TAG,
    orders.TAG,
    shipments.TAG,
    refunds.TAG,
    stock.TAG,
    payments.TAG,
    events.TAG,
    health.TAG,
]
