"""The request path: what stands between the server and the routes, and the HTTP helpers the
routers share.

In: an ASGI request from the server. `request_path.RequestPath` is the one ASGI layer, in order:
request id, header limits (request_limits), /healthz, CORS (cors), the API key (api_keys),
routes known before routing (known_routes), readiness, the admission queue (request_queue), the
body read whole, the client's disconnect (client_disconnect), metrics and the access line
(metrics_endpoint). Out: the request handed to FastAPI's routes, or a problem+json refusal.

For the routers: strict JSON bodies and orjson responses (json_payloads), the shared path and
query parameters (route_params); for the app: the OpenAPI document (openapi) and FastAPI's
parameter lookups memoized (fastapi_param_memo). Nothing here imports a router or a rule.
"""
